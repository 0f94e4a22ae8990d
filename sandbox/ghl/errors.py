"""GHL error bodies (common-schemas.json DTOs and NestJS HttpException shapes)."""

from __future__ import annotations

from typing import Any

BAD_BEARER = "Invalid token: access token is invalid"
EXPIRED_BEARER = "Invalid token: access token has expired"
SCOPE_DENIED = "The token is not authorized for this scope."
LOCATION_DENIED = "The token does not have access to this location."


class GhlError(Exception):
    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}


def bad_request(message: str, **extra: Any) -> GhlError:
    return GhlError(400, {"statusCode": 400, "message": message, **extra})


def unauthorized(message: str = BAD_BEARER) -> GhlError:
    return GhlError(401, {"statusCode": 401, "message": message, "error": "Unauthorized"})


def forbidden(message: str = LOCATION_DENIED) -> GhlError:
    return GhlError(403, {"statusCode": 403, "message": message, "error": "Forbidden"})


def unprocessable(messages: list[str]) -> GhlError:
    return GhlError(422, {"statusCode": 422, "message": messages, "error": "Unprocessable Entity"})


def not_found(method: str, path: str) -> GhlError:
    return GhlError(404, {"statusCode": 404, "message": f"Cannot {method} {path}", "error": "Not Found"})


def oauth_error(status: int, error: str, description: str) -> GhlError:
    return GhlError(status, {"error": error, "error_description": description})
