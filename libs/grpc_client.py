"""Channels to other services: OpenTelemetry, the caller's identity, and rich errors turned
back into domain errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from opentelemetry.instrumentation.grpc import aio_client_interceptors

from libs import service_auth, tls
from libs.errors import ConcordError, error_for_code
from libs.identity import current_caller

StubT = TypeVar("StubT")


def open_channel(address: str) -> grpc.aio.Channel:
    """A channel to a peer: TLS with this process's client certificate where certificates are
    configured (libs/tls.py), plaintext otherwise."""
    interceptors = [*aio_client_interceptors(), _IdentityInterceptor()]
    options = [("grpc.max_receive_message_length", 64 * 1024 * 1024)]
    material = tls.installed()
    if material is not None:
        return grpc.aio.secure_channel(address, material.channel_credentials(), options, interceptors=interceptors)
    return grpc.aio.insecure_channel(address, options, interceptors=interceptors)


class _IdentityInterceptor(grpc.aio.UnaryUnaryClientInterceptor):
    """Sends the current caller, signed with the service key (libs/service_auth.py)."""

    async def intercept_unary_unary(self, continuation, client_call_details, request):  # noqa: ANN001
        token = service_auth.token_for(current_caller())
        metadata = [item for item in client_call_details.metadata or () if item[0] != service_auth.METADATA_KEY]
        if token is not None:
            metadata.append((service_auth.METADATA_KEY, token))
        details = client_call_details._replace(metadata=grpc.aio.Metadata(*metadata))
        return await continuation(details, request)


def to_domain_error(error: grpc.aio.AioRpcError) -> ConcordError:
    """Rebuilds the domain error a peer raised from its rich status."""
    reason, field, metadata = None, None, {}
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    if status is not None:
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                reason, metadata = info.reason, dict(info.metadata)
            elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                if bad.field_violations:
                    field = bad.field_violations[0].field
    cls = error_for_code(error.code())
    return cls(error.details() or error.code().name, reason=reason, field=field, metadata=metadata)


async def call(method: Callable[..., Any], request: Any, deadline: float | None = 30.0) -> Any:
    """Calls a stub method, raising the peer's domain error on failure."""
    try:
        return await method(request, timeout=deadline)
    except grpc.aio.AioRpcError as error:
        raise to_domain_error(error) from None
