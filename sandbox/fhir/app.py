"""ASGI app factory: the FHIR R4 API per tenant (/fhir/{tenant}), the SMART token endpoint, and /_sandbox."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.common.stats import StatsMiddleware

from . import admin, api, capability
from .auth import authenticate, issue_token
from .outcome import FhirError, OAuthError, error, not_found
from .settings import FhirSandboxSettings
from .state import Sandbox

Handler = Callable[[Request, api.Ctx], Awaitable[Response]]
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_FORMATS = {"json": api.FHIR_JSON, "application/fhir+json": api.FHIR_JSON, "application/json+fhir": api.FHIR_JSON,
            "application/json": "application/json"}  # fmt: skip


def root_url(sb: Sandbox, request: Request) -> str:
    if sb.settings.base_url:
        return sb.settings.base_url.rstrip("/")
    return f"{request.url.scheme}://{request.headers.get('host', request.url.netloc)}"


def negotiate(request: Request) -> str:
    """The response media type from _format, else Accept; 406 when only other formats (XML) would do."""
    fmt = request.query_params.get("_format")
    if fmt is not None:
        if fmt.strip().lower() in _FORMATS:
            return _FORMATS[fmt.strip().lower()]
        raise error(406, "not-supported", "This server only supports JSON (_format=json)")
    accept = request.headers.get("accept", "").strip()
    if not accept:
        return api.FHIR_JSON
    choices = []
    for position, part in enumerate(accept.split(",")):
        mime, *params = (p.strip() for p in part.split(";"))
        options = dict(p.partition("=")[::2] for p in params)
        try:
            q = float(options.get("q", "1"))
        except ValueError:
            q = 0.0
        choices.append((-q, position, mime.lower(), options.get("fhirVersion")))
    for neg_q, _, mime, version in sorted(choices):
        if neg_q == 0:
            continue
        if version is not None and not version.startswith("4.0"):
            raise error(406, "not-supported", "This server only supports fhirVersion 4.0")
        if mime in ("application/fhir+json", "application/json+fhir", "*/*", "application/*"):
            return api.FHIR_JSON
        if mime == "application/json":
            return "application/json"
    raise error(406, "not-supported", "This server only supports JSON (application/fhir+json)")


def _fault(sb: Sandbox, kind: str) -> FhirError:
    if kind == "outage":
        wait = (sb.faults.outage_until or sb.clock()) - sb.clock()
        return error(503, "transient", "The FHIR server is temporarily unavailable",
                     headers={"Retry-After": api.retry_after(wait)})  # fmt: skip
    if kind == "rate_limit":
        return error(429, "throttled", "Too many requests: the request rate limit was exceeded",
                     headers={"Retry-After": str(sb.settings.storm_retry_after)})  # fmt: skip
    if sb.fault_rng.random() < 0.5:
        return error(503, "transient", "Service temporarily unavailable", headers={"Retry-After": "1"})
    return error(500, "exception", "Internal server error")


def fhir_route(sb: Sandbox, path: str, handler: Handler, methods: list[str], *, public: bool = False) -> Route:
    """Content negotiation, faults, tenant, bearer token (401), rate limit (429), then the handler; every
    error is an OperationOutcome."""

    async def endpoint(request: Request) -> Response:
        media, pretty = api.FHIR_JSON, request.query_params.get("_pretty") == "true"
        try:
            media = negotiate(request)
            fault = await sb.gate.before_request()
            if fault is not None:
                raise _fault(sb, fault)
            tenant = sb.tenants.get(request.path_params["tenant"])
            if tenant is None:
                raise not_found("Unknown FHIR server (tenant)")
            base = f"{root_url(sb, request)}/fhir/{tenant.name}"
            ctx = api.Ctx(sb, tenant, base, media, pretty, prefer=api.parse_prefer(request))
            if not public:
                ctx.grant = authenticate(request, sb, tenant.name)
                if sb.faults.rate_limit_enabled and (wait := sb.limiter.hit(ctx.grant.client_id)) is not None:
                    raise error(429, "throttled", "Too many requests: the request rate limit was exceeded",
                                headers={"Retry-After": str(wait)})  # fmt: skip
            return await handler(request, ctx)
        except FhirError as err:
            return api.render(err.body, err.status, err.headers, media, pretty)

    return Route(path, endpoint, methods=methods)


async def metadata(request: Request, ctx: api.Ctx) -> Response:
    root = ctx.base.rsplit("/fhir/", 1)[0]
    body = capability.capability_statement(ctx.base, root, ctx.sb.settings, ctx.sb.stamp_ms())
    return api.respond(ctx, body)


async def smart_configuration(request: Request, ctx: api.Ctx) -> Response:
    return JSONResponse(capability.smart_configuration(ctx.base.rsplit("/fhir/", 1)[0]))


def token_route(sb: Sandbox) -> Route:
    async def token(request: Request) -> Response:
        try:
            if sb.faults.outage_until is not None and sb.clock() < sb.faults.outage_until:
                raise OAuthError("temporarily_unavailable", "The authorization server is unavailable", 503)
            mime = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if mime != "application/x-www-form-urlencoded":
                raise OAuthError("invalid_request", "The token request must be application/x-www-form-urlencoded")
            pairs = parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)
            form = dict(pairs)
            if len(form) != len(pairs):
                raise OAuthError("invalid_request", "A parameter was sent more than once")
            body = await issue_token(sb, form, f"{root_url(sb, request)}/auth/token")
            return JSONResponse(body, headers=_NO_STORE)
        except OAuthError as err:
            return JSONResponse(err.body, status_code=err.status, headers=_NO_STORE)

    return Route("/auth/token", token, methods=["POST"])


async def authorize(request: Request) -> Response:
    body = {
        "error": "unsupported_response_type",
        "error_description": "This server supports SMART Backend Services (client_credentials) only",
    }
    return JSONResponse(body, status_code=400)


def _fallback(status: int, code: str, text: str) -> Callable[[Request, Exception], Awaitable[Response]]:
    async def handler(request: Request, exc: Exception) -> Response:
        body = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": code, "diagnostics": text}]}
        return Response(json.dumps(body), status_code=status, media_type=f"{api.FHIR_JSON};charset=utf-8")

    return handler


def create_app(settings: FhirSandboxSettings | None = None) -> Starlette:
    sb = Sandbox(settings or FhirSandboxSettings())
    base = "/fhir/{tenant}"
    routes: list[Any] = [
        Route("/auth/authorize", authorize, methods=["GET"]),
        token_route(sb),
        fhir_route(sb, f"{base}/metadata", metadata, ["GET"], public=True),
        fhir_route(sb, f"{base}/.well-known/smart-configuration", smart_configuration, ["GET"], public=True),
        fhir_route(sb, base, api.page, ["GET"]),
        fhir_route(sb, f"{base}/{{type}}/_search", api.search_type, ["POST"]),
        fhir_route(sb, f"{base}/{{type}}/{{id}}/_history/{{vid}}", api.vread, ["GET"]),
        fhir_route(sb, f"{base}/{{type}}/{{id}}/_history", api.history, ["GET"]),
        fhir_route(sb, f"{base}/{{type}}/{{id}}", api.read, ["GET"]),
        fhir_route(sb, f"{base}/{{type}}/{{id}}", api.update, ["PUT"]),
        fhir_route(sb, f"{base}/{{type}}/{{id}}", api.delete, ["DELETE"]),
        fhir_route(sb, f"{base}/{{type}}", api.search_type, ["GET"]),
        fhir_route(sb, f"{base}/{{type}}", api.create, ["POST"]),
        *admin.routes(sb),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        await sb.sender.aclose()

    app = Starlette(
        routes=routes,
        middleware=[Middleware(StatsMiddleware, stats=sb.stats, routes=routes)],
        exception_handlers={
            404: _fallback(404, "not-found", "Unknown path"),
            405: _fallback(405, "not-supported", "Method not allowed for this path"),
        },
        lifespan=lifespan,
    )
    app.router.redirect_slashes = False
    app.state.sandbox = sb
    return app
