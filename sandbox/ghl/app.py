"""ASGI app factory: the vendor routes behind GHL's request pipeline, plus the /_sandbox admin surface."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.common.stats import StatsMiddleware

from . import admin, calendars, contacts, conversations, locations, oauth
from .errors import SCOPE_DENIED, GhlError, bad_request, not_found, unauthorized
from .scopes import (
    CALENDARS_READ,
    EVENTS_READ,
    EVENTS_WRITE,
    FIELDS_READ,
    FIELDS_WRITE,
    MESSAGES_READ,
    MESSAGES_WRITE,
    READ,
    WORKFLOWS_READ,
    WRITE,
)
from .settings import GhlSandboxSettings
from .state import Sandbox

# The Version header each API family requires (every apps/*.json lists exactly one value).
V2021_07_28, V2021_04_15 = "2021-07-28", "2021-04-15"
API_VERSION = V2021_07_28
_FAULTS = {
    "outage": GhlError(503, {"statusCode": 503, "message": "Service Unavailable"}),
    "rate_limit": GhlError(429, {"statusCode": 429, "message": "Too Many Requests"}),
    "5xx": GhlError(500, {"statusCode": 500, "message": "Internal server error"}),
}


def _vendor_route(
    sb: Sandbox,
    method: str,
    template: str,
    handler: Callable[..., Awaitable[Response]],
    scope: str | None = None,
    version: str = V2021_07_28,
    aliases: tuple[str, ...] = (),
) -> list[Route]:
    """Injects faults, then (for API routes) authenticates, rate-limits, checks Version and scope."""

    async def endpoint(request: Request) -> Response:
        headers: dict[str, str] = {}
        try:
            fault = await sb.gate.before_request()
            if fault == "rate_limit":
                headers = {**sb.limiter.idle_headers(), "X-RateLimit-Remaining": "0"}
            if fault is not None:
                raise _FAULTS[fault]
            if scope is None:
                return await handler(request, sb)
            headers = sb.limiter.idle_headers()
            grant = oauth.authenticate(request, sb)
            if sb.faults.rate_limit_enabled:
                allowed, headers = sb.limiter.hit((grant.client_id, grant.location_id))
                if not allowed:
                    raise _FAULTS["rate_limit"]
            sent = request.headers.get("version")
            if sent is None:
                raise bad_request("Version header was not found")
            if sent != version:
                raise bad_request(f"Version header is not valid: {sent}")
            if scope not in grant.scope.split():
                raise unauthorized(SCOPE_DENIED)
            response = await handler(request, sb, grant)
        except GhlError as err:
            response = JSONResponse(err.body, status_code=err.status, headers=err.headers)
        response.headers.update(headers)
        return response

    return [Route(path, endpoint, methods=[method]) for path in (template, *aliases)]


async def _nest_not_found(request: Request, exc: Exception) -> Response:
    err = not_found(request.method, request.url.path)
    return JSONResponse(err.body, status_code=err.status)


def create_app(settings: GhlSandboxSettings | None = None) -> Starlette:
    sb = Sandbox(settings or GhlSandboxSettings())
    cal, conv = V2021_04_15, V2021_04_15

    def route(method: str, template: str, handler: Any, scope: str | None = None, **kw: Any) -> list[Route]:
        return _vendor_route(sb, method, template, handler, scope, **kw)

    routes: list[Any] = [
        *route("GET", "/oauth/chooselocation", oauth.choose_location, aliases=("/v2/oauth/chooselocation",)),
        *route("POST", "/oauth/token", oauth.token),
        *route("POST", "/contacts/search", contacts.search, READ),
        *route("POST", "/contacts/upsert", contacts.upsert, WRITE),
        *route("POST", "/contacts/", contacts.create, WRITE, aliases=("/contacts",)),
        *route("GET", "/contacts/", contacts.list_contacts, READ, aliases=("/contacts",)),
        *route("GET", "/contacts/{contactId}", contacts.get, READ),
        *route("PUT", "/contacts/{contactId}", contacts.update, WRITE),
        *route("DELETE", "/contacts/{contactId}", contacts.delete, WRITE),
        *route("POST", "/contacts/{contactId}/tags", contacts.add_tags, WRITE),
        *route("DELETE", "/contacts/{contactId}/tags", contacts.remove_tags, WRITE),
        *route("POST", "/contacts/{contactId}/workflow/{workflowId}", contacts.add_to_workflow, WRITE),
        *route("DELETE", "/contacts/{contactId}/workflow/{workflowId}", contacts.remove_from_workflow, WRITE),
        *route("GET", "/contacts/{contactId}/appointments", contacts.appointments, READ),
        *route("GET", "/locations/{locationId}/customFields", locations.list_custom_fields, FIELDS_READ),
        *route("POST", "/locations/{locationId}/customFields", locations.create_custom_field, FIELDS_WRITE),
        *route("GET", "/workflows/", locations.list_workflows, WORKFLOWS_READ, aliases=("/workflows",)),
        *route("GET", "/calendars/", calendars.list_calendars, CALENDARS_READ, version=cal, aliases=("/calendars",)),
        *route("GET", "/calendars/events", calendars.list_events, EVENTS_READ, version=cal),
        *route("POST", "/calendars/events/appointments", calendars.create_appointment, EVENTS_WRITE, version=cal),
        *route("GET", "/calendars/events/appointments/{eventId}", calendars.get_appointment, EVENTS_READ, version=cal),
        *route(
            "PUT", "/calendars/events/appointments/{eventId}", calendars.update_appointment, EVENTS_WRITE, version=cal
        ),
        *route("DELETE", "/calendars/events/{eventId}", calendars.delete_event, EVENTS_WRITE, version=cal),
        *route("GET", "/calendars/{calendarId}/free-slots", calendars.free_slots, CALENDARS_READ, version=cal),
        *route("GET", "/calendars/{calendarId}", calendars.get_calendar, CALENDARS_READ, version=cal),
        *route("POST", "/conversations/messages", conversations.send, MESSAGES_WRITE, version=conv),
        *route("GET", "/conversations/messages/email/{id}", conversations.get_email, MESSAGES_READ, version=conv),
        *route("GET", "/conversations/messages/{id}", conversations.get_message, MESSAGES_READ, version=conv),
        *admin.routes(sb),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        await sb.webhooks.aclose()

    app = Starlette(
        routes=routes,
        middleware=[Middleware(StatsMiddleware, stats=sb.stats, routes=routes)],
        exception_handlers={404: _nest_not_found, 405: _nest_not_found},
        lifespan=lifespan,
    )
    # Express matches with or without a trailing slash instead of redirecting; unknown paths are 404s.
    app.router.redirect_slashes = False
    app.state.sandbox = sb
    return app
