"""Zenoti's error bodies.

API errors carry an ``error`` object ``{code, message}`` (guides/response-and-error-codes.md and
guides/pagination.md); authorization failures and unhandled faults use ASP.NET Web API's
``{"Message": ...}``; the rate limiter and an outage answer from in front of the API.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import HTMLResponse, JSONResponse, Response

DENIED = "Authorization has been denied for this request."
TOO_MANY_ITEMS = "You cannot request more than 100 items."


class ZenotiError(Exception):
    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}

    def response(self) -> Response:
        return JSONResponse(self.body, status_code=self.status, headers=self.headers)


def api_error(status: int, message: str, **extra: Any) -> ZenotiError:
    return ZenotiError(status, {**extra, "error": {"code": status, "message": message}})


def bad_request(message: str, **extra: Any) -> ZenotiError:
    return api_error(400, message, **extra)


def not_found(what: str) -> ZenotiError:
    return api_error(404, f"{what} not found.")


def unauthorized() -> ZenotiError:
    return ZenotiError(401, {"Message": DENIED})


def server_error() -> Response:
    return JSONResponse({"Message": "An error has occurred."}, status_code=500)


def outage() -> Response:
    body = "<h2>Service Unavailable</h2><hr><p>HTTP Error 503. The service is unavailable.</p>"
    return HTMLResponse(body, status_code=503)


def too_many_requests(headers: dict[str, str]) -> Response:
    seconds = headers.get("Retry-After", "60")
    body = {"statusCode": 429, "message": f"Rate limit is exceeded. Try again in {seconds} seconds."}
    return JSONResponse(body, status_code=429, headers=headers)


def route_not_found(url: str) -> Response:
    return JSONResponse({"Message": f"No HTTP resource was found that matches the request URI '{url}'."}, 404)


def method_not_allowed(method: str) -> Response:
    return JSONResponse({"Message": f"The requested resource does not support http method '{method}'."}, 405)
