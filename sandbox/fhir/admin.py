"""Simulator-only surface under /_sandbox (no auth): clients, token minting, tenants, clinician edits,
notification deliveries; stats, faults and reset come from sandbox.common.admin."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.common.admin import common_routes

from . import subscriptions
from .auth import grant_scopes, mint
from .outcome import FhirError, OAuthError
from .settings import ClientRegistration
from .state import Sandbox
from .validation import RESOURCE_TYPES, validate


class AdminError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _sb(request: Request) -> Sandbox:
    return request.app.state.sandbox


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = json.loads(raw) if raw.strip() else {}
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise AdminError(400, "body must be a JSON object")
    return body


async def register_client(request: Request) -> Response:
    body = await _body(request)
    known = {"client_id", "jwks", "jwks_url", "scopes", "tenants"}
    if unknown := set(body) - known:
        raise AdminError(400, f"unknown fields: {sorted(unknown)}")
    try:
        client = _sb(request).register_client(ClientRegistration(**{"scopes": "", **body}))
    except (TypeError, ValueError) as exc:
        raise AdminError(400, str(exc)) from None
    return JSONResponse(client.as_json(), status_code=201)


async def list_clients(request: Request) -> Response:
    return JSONResponse({"clients": [c.as_json() for c in _sb(request).clients.values()]})


async def mint_token(request: Request) -> Response:
    """A token as POST /auth/token would issue it, without building an assertion (extension)."""
    sb, body = _sb(request), await _body(request)
    client = sb.clients.get(str(body.get("client_id")))
    if client is None:
        raise AdminError(404, "unknown client_id")
    try:
        scopes = grant_scopes(client, str(body.get("scope") or client.scope_text))
    except OAuthError as exc:
        raise AdminError(400, exc.body["error_description"]) from None
    return JSONResponse(mint(sb, client, scopes), status_code=201)


async def add_tenant(request: Request) -> Response:
    sb, body = _sb(request), await _body(request)
    name = body.get("id")
    if not isinstance(name, str) or not name.replace("-", "").isalnum() or len(name) > 64:
        raise AdminError(400, "id must be 1-64 letters, digits or '-'")
    tenant = sb.add_tenant(name, seeded=bool(body.get("seed", True)))
    return JSONResponse({"id": tenant.name, "counts": tenant.counts()}, status_code=201)


async def list_tenants(request: Request) -> Response:
    return JSONResponse({"tenants": {name: t.counts() for name, t in _sb(request).tenants.items()}})


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON Merge Patch."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


async def edit_resource(request: Request) -> Response:
    """A clinician editing the record in the EMR: merge-patches it, bumps the version, fires subscriptions."""
    sb = _sb(request)
    kind, rid = request.path_params["type"], request.path_params["id"]
    tenant = sb.tenants.get(request.query_params.get("tenant") or next(iter(sb.tenants), ""))
    if tenant is None:
        raise AdminError(404, "unknown tenant")
    if kind not in RESOURCE_TYPES:
        raise AdminError(404, "unknown resource type")
    current = tenant.resource(kind, rid)
    if current is None:
        raise AdminError(404, "unknown or deleted resource")
    patch = {k: v for k, v in (await _body(request)).items() if k not in ("resourceType", "id", "meta")}
    merged = merge_patch(current, patch)
    try:
        validate(kind, merged)
        if kind == "Subscription":
            subscriptions.check(merged, default_count=sb.settings.default_count, max_count=sb.settings.max_count)
    except FhirError as exc:
        return JSONResponse(exc.body, status_code=exc.status)
    record, _ = sb.write(tenant, kind, rid, merged, "PUT")
    return JSONResponse(record.current.resource)


async def deliveries(request: Request) -> Response:
    return JSONResponse({"deliveries": [d.as_json() for d in _sb(request).sender.deliveries]})


def _guarded(handler: Any) -> Any:
    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except AdminError as err:
            return JSONResponse({"error": err.message}, status_code=err.status)

    return endpoint


def routes(sb: Sandbox) -> list[Route]:
    table = [
        ("POST", "/_sandbox/clients", register_client),
        ("GET", "/_sandbox/clients", list_clients),
        ("POST", "/_sandbox/tokens", mint_token),
        ("POST", "/_sandbox/tenants", add_tenant),
        ("GET", "/_sandbox/tenants", list_tenants),
        ("PATCH", "/_sandbox/resources/{type}/{id}", edit_resource),
        ("GET", "/_sandbox/deliveries", deliveries),
    ]
    own = [Route(path, _guarded(handler), methods=[method]) for method, path, handler in table]
    return own + common_routes(
        stats=sb.stats,
        faults=lambda: sb.faults,
        reset_faults=sb.reset_faults,
        on_actions=sb.on_actions,
        reset=sb.reset_all,
    )
