"""Domain errors shared by every service, and their one mapping to gRPC status codes.

A service raises these; the shared server interceptor turns them into a gRPC status with a
google.rpc.ErrorInfo detail (domain "concord.health", a stable UPPER_SNAKE reason) and, when a
field is named, a google.rpc.BadRequest field violation. Messages must never carry PHI: name the
field, never its value.
"""

from __future__ import annotations

import grpc

ERROR_DOMAIN = "concord.health"


class ConcordError(Exception):
    code: grpc.StatusCode = grpc.StatusCode.INTERNAL
    default_reason = "INTERNAL"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        field: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason
        self.field = field
        self.metadata = dict(metadata or {})
        if field:
            self.metadata.setdefault("field", field)


class InvalidArgument(ConcordError):
    code = grpc.StatusCode.INVALID_ARGUMENT
    default_reason = "INVALID_ARGUMENT"


class NotFound(ConcordError):
    code = grpc.StatusCode.NOT_FOUND
    default_reason = "NOT_FOUND"


class AlreadyExists(ConcordError):
    code = grpc.StatusCode.ALREADY_EXISTS
    default_reason = "ALREADY_EXISTS"


class FailedPrecondition(ConcordError):
    code = grpc.StatusCode.FAILED_PRECONDITION
    default_reason = "FAILED_PRECONDITION"


class Aborted(ConcordError):
    code = grpc.StatusCode.ABORTED
    default_reason = "ABORTED"


class PermissionDenied(ConcordError):
    code = grpc.StatusCode.PERMISSION_DENIED
    default_reason = "PERMISSION_DENIED"


class Unauthenticated(ConcordError):
    code = grpc.StatusCode.UNAUTHENTICATED
    default_reason = "UNAUTHENTICATED"


class Unavailable(ConcordError):
    code = grpc.StatusCode.UNAVAILABLE
    default_reason = "UNAVAILABLE"


class ResourceExhausted(ConcordError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    default_reason = "RESOURCE_EXHAUSTED"


_BY_CODE = {cls.code: cls for cls in ConcordError.__subclasses__()}


def error_for_code(code: grpc.StatusCode) -> type[ConcordError]:
    return _BY_CODE.get(code, ConcordError)
