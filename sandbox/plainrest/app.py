"""ASGI app factory: PlainREST's /api/v1 routes behind its request pipeline, plus /_sandbox."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.common.stats import StatsMiddleware

from . import admin, api
from .api import ApiError
from .settings import PlainRestSandboxSettings
from .state import Sandbox

Handler = Callable[..., Awaitable[Response]]
_FAULTS = {
    "outage": ApiError(503, "unavailable", "the service is unavailable"),
    "5xx": ApiError(500, "internal", "an internal error occurred"),
}
RATE_LIMITED = ApiError(429, "rate_limited", "too many requests")


def _vendor(sb: Sandbox, method: str, path: str, handler: Handler) -> Route:
    """Faults -> X-Api-Key (401) -> the account's rate limit (429) -> handler."""

    async def endpoint(request: Request) -> Response:
        fault = await sb.gate.before_request()
        if fault == "rate_limit":
            return RATE_LIMITED.response({"Retry-After": "1"})
        if fault is not None:
            return _FAULTS[fault].response()
        account = sb.account_by_key(request.headers.get("x-api-key", ""))
        if account is None:
            return ApiError(401, "unauthorized", "missing or invalid API key").response()
        headers: dict[str, str] = {}
        if sb.faults.rate_limit_enabled:
            allowed, headers = sb.limiter.hit(account.id)
            if not allowed:
                return RATE_LIMITED.response(headers)
        try:
            response = await handler(request, sb, account)
        except ApiError as error:
            response = error.response()
        response.headers.update(headers)
        return response

    return Route(path, endpoint, methods=[method])


async def _not_found(request: Request, exc: Exception) -> Response:
    return JSONResponse({"error": {"code": "not_found", "message": "no such route"}}, status_code=404)


async def _not_allowed(request: Request, exc: Exception) -> Response:
    return JSONResponse({"error": {"code": "method_not_allowed", "message": "method not allowed"}}, status_code=405)


def create_app(settings: PlainRestSandboxSettings | None = None) -> Starlette:
    sb = Sandbox(settings or PlainRestSandboxSettings())
    routes: list[Any] = [
        _vendor(sb, "GET", "/api/v1/patients", api.list_patients),
        _vendor(sb, "POST", "/api/v1/patients", api.create_patient),
        _vendor(sb, "GET", "/api/v1/patients/{patient_id}", api.get_patient),
        _vendor(sb, "PUT", "/api/v1/patients/{patient_id}", api.update_patient),
        *admin.routes(sb),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(StatsMiddleware, stats=sb.stats, routes=routes)],
        exception_handlers={404: _not_found, 405: _not_allowed},
    )
    app.state.sandbox = sb
    return app
