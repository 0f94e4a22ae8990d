"""ASGI app factory: the vendor routes behind GHL's request pipeline, plus the /_sandbox admin surface."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from . import admin, contacts, oauth
from .errors import SCOPE_DENIED, GhlError, bad_request, not_found, unauthorized
from .settings import GhlSandboxSettings
from .state import Sandbox

API_VERSION = "2021-07-28"
READ, WRITE = "contacts.readonly", "contacts.write"


async def _inject_faults(sb: Sandbox) -> None:
    faults = sb.faults
    if faults.latency_ms:
        await asyncio.sleep(faults.latency_ms / 1000)
    if faults.outage_until is not None and sb.clock() < faults.outage_until:
        raise GhlError(503, {"statusCode": 503, "message": "Service Unavailable"})
    if faults.status_5xx_rate and sb.fault_rng.random() < faults.status_5xx_rate:
        raise GhlError(500, {"statusCode": 500, "message": "Internal server error"})


def _vendor_route(
    sb: Sandbox,
    method: str,
    template: str,
    handler: Callable[..., Awaitable[Response]],
    scope: str | None = None,
    aliases: tuple[str, ...] = (),
) -> list[Route]:
    """Counts, injects faults, then (for API routes) authenticates, rate-limits, checks Version and scope."""
    stat_key = f"{method} {template}"

    async def endpoint(request: Request) -> Response:
        sb.stats[stat_key] += 1
        headers: dict[str, str] = {}
        try:
            await _inject_faults(sb)
            if scope is None:
                return await handler(request, sb)
            headers = sb.limiter.idle_headers()
            grant = oauth.authenticate(request, sb)
            if sb.faults.rate_limit_enabled:
                allowed, headers = sb.limiter.hit((grant.client_id, grant.location_id))
                if not allowed:
                    raise GhlError(429, {"statusCode": 429, "message": "Too Many Requests"})
            version = request.headers.get("version")
            if version is None:
                raise bad_request("Version header was not found")
            if version != API_VERSION:
                raise bad_request(f"Version header is not valid: {version}")
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
    routes: list[Any] = [
        *_vendor_route(
            sb, "GET", "/oauth/chooselocation", oauth.choose_location, aliases=("/v2/oauth/chooselocation",)
        ),
        *_vendor_route(sb, "POST", "/oauth/token", oauth.token),
        *_vendor_route(sb, "POST", "/contacts/search", contacts.search, READ),
        *_vendor_route(sb, "POST", "/contacts/upsert", contacts.upsert, WRITE),
        *_vendor_route(sb, "POST", "/contacts/", contacts.create, WRITE, aliases=("/contacts",)),
        *_vendor_route(sb, "GET", "/contacts/", contacts.list_contacts, READ, aliases=("/contacts",)),
        *_vendor_route(sb, "GET", "/contacts/{contactId}", contacts.get, READ),
        *_vendor_route(sb, "PUT", "/contacts/{contactId}", contacts.update, WRITE),
        *_vendor_route(sb, "DELETE", "/contacts/{contactId}", contacts.delete, WRITE),
        *admin.routes(),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        await sb.webhooks.aclose()

    app = Starlette(
        routes=routes,
        exception_handlers={404: _nest_not_found, 405: _nest_not_found},
        lifespan=lifespan,
    )
    # Express matches with or without a trailing slash instead of redirecting; unknown paths are 404s.
    app.router.redirect_slashes = False
    app.state.sandbox = sb
    return app
