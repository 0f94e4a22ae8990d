"""ASGI app factory: Zenoti's /v1 routes behind its request pipeline, plus the /_sandbox surface."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from sandbox.common.stats import StatsMiddleware

from . import admin, appointments, auth, catalog, guests
from .errors import ZenotiError, method_not_allowed, outage, route_not_found, server_error, too_many_requests
from .settings import ZenotiSandboxSettings
from .state import Sandbox

Handler = Callable[..., Awaitable[Response]]


class PathNormalizer:
    """ASP.NET routing ignores case and a trailing slash (/v1/Centers/ is /v1/centers)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope["path"].lower()
            scope = {**scope, "path": path.rstrip("/") if len(path) > 1 else path}
        await self.app(scope, receive, send)


def _vendor(sb: Sandbox, method: str, path: str, handler: Handler, *, authenticated: bool = True) -> Route:
    """Faults -> authentication (401) -> organization rate limit (429) -> handler; then webhooks go out."""

    async def endpoint(request: Request) -> Response:
        fault = await sb.gate.before_request()
        if fault == "outage":
            return outage()
        if fault == "5xx":
            return server_error()
        if fault == "rate_limit":
            try:
                key: str | None = auth.authenticate(request, sb).org.id
            except ZenotiError:
                key = None
            return too_many_requests(sb.limiter.storm_headers(key))
        headers: dict[str, str] = {}
        try:
            if not authenticated:
                response = await handler(request, sb)
            else:
                caller = auth.authenticate(request, sb)
                if sb.faults.rate_limit_enabled:
                    allowed, headers = sb.limiter.hit(caller.org.id)
                    if not allowed:
                        return too_many_requests(headers)
                response = await handler(request, sb, caller)
        except ZenotiError as err:
            response = err.response()
        response.headers.update(headers)
        sb.webhooks.after_request()
        return response

    return Route(path, endpoint, methods=[method])


async def _not_found(request: Request, exc: Exception) -> Response:
    return route_not_found(str(request.url))


async def _not_allowed(request: Request, exc: Exception) -> Response:
    return method_not_allowed(request.method)


def create_app(settings: ZenotiSandboxSettings | None = None) -> Starlette:
    sb = Sandbox(settings or ZenotiSandboxSettings())
    g, a, c = guests, appointments, catalog
    routes: list[Any] = [
        _vendor(sb, "POST", "/v1/tokens", auth.tokens, authenticated=False),
        _vendor(sb, "DELETE", "/v1/tokens/sessions/revoke", auth.revoke),
        _vendor(sb, "GET", "/v1/centers", c.centers),
        _vendor(sb, "GET", "/v1/centers/{center_id}", c.center),
        _vendor(sb, "GET", "/v1/centers/{center_id}/services", c.services),
        _vendor(sb, "GET", "/v1/centers/{center_id}/services/{service_id}", c.service),
        _vendor(sb, "GET", "/v1/centers/{center_id}/categories", c.categories),
        _vendor(sb, "GET", "/v1/centers/{center_id}/memberships", c.memberships),
        _vendor(sb, "GET", "/v1/centers/{center_id}/therapists", c.therapists),
        _vendor(sb, "POST", "/v1/guests", g.create),
        _vendor(sb, "GET", "/v1/guests", g.list_guests),
        _vendor(sb, "GET", "/v1/guests/search", g.search),
        _vendor(sb, "GET", "/v1/guests/{guest_id}", g.get),
        _vendor(sb, "PUT", "/v1/guests/{guest_id}", g.update),
        _vendor(sb, "GET", "/v1/guests/{guest_id}/appointments", g.appointments),
        _vendor(sb, "GET", "/v1/guests/{guest_id}/memberships", g.memberships),
        _vendor(sb, "GET", "/v1/appointments", a.list_appointments),
        _vendor(sb, "GET", "/v1/appointments/{appointment_id}", a.get),
        _vendor(sb, "PUT", "/v1/appointments/{group_id}/check_in", a.check_in),
        _vendor(sb, "PUT", "/v1/appointments/{group_id}/undo_check_in", a.undo_check_in),
        _vendor(sb, "PUT", "/v1/appointments/{group_id}/no_show", a.no_show),
        _vendor(sb, "PUT", "/v1/appointments/{appointment_id}/progress", a.progress),
        _vendor(sb, "PUT", "/v1/invoices/{invoice_id}/cancel", a.cancel_invoice),
        _vendor(sb, "POST", "/v1/bookings", a.create_booking),
        _vendor(sb, "GET", "/v1/bookings/{booking_id}/slots", a.slots),
        _vendor(sb, "POST", "/v1/bookings/{booking_id}/slots/reserve", a.reserve),
        _vendor(sb, "POST", "/v1/bookings/{booking_id}/slots/confirm", a.confirm),
        *admin.routes(sb),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        await sb.webhooks.aclose()

    app = Starlette(
        routes=routes,
        middleware=[Middleware(PathNormalizer), Middleware(StatsMiddleware, stats=sb.stats, routes=routes)],
        exception_handlers={404: _not_found, 405: _not_allowed},
        lifespan=lifespan,
    )
    app.router.redirect_slashes = False
    app.state.sandbox = sb
    return app
