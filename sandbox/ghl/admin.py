"""Simulator-only test surface under /_sandbox (no auth)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from . import model, oauth, seed
from .errors import GhlError
from .settings import AppRegistration
from .state import Faults, Sandbox


def _sb(request: Request) -> Sandbox:
    return request.app.state.sandbox


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = json.loads(raw) if raw.strip() else {}
    except json.JSONDecodeError:
        body = None
    if not isinstance(body, dict):
        raise GhlError(400, {"error": "body must be a JSON object"})
    return body


async def reset(request: Request) -> Response:
    _sb(request).reset()
    return JSONResponse({"reset": True})


async def create_app_registration(request: Request) -> Response:
    body = await _body(request)
    uris = body.get("redirect_uris")
    if not body.get("client_id") or not body.get("client_secret") or not isinstance(uris, list) or not uris:
        return _error(400, "client_id, client_secret and a non-empty redirect_uris list are required")
    known = {"client_id", "client_secret", "redirect_uris", "company_id", "location_id", "webhook_url", "plan_id"}
    if unknown := set(body) - known:
        return _error(400, f"unknown fields: {sorted(unknown)}")
    app = _sb(request).register_app(AppRegistration(**body))
    return JSONResponse(app.as_json(), status_code=201)


async def create_location(request: Request) -> Response:
    body = await _body(request)
    location = _sb(request).create_location(body.get("id"), body.get("companyId"), body.get("name"))
    return JSONResponse(location.as_json(), status_code=201)


async def mint_token(request: Request) -> Response:
    """Skips the browser leg: tokens as POST /oauth/token would return them."""
    sb, body = _sb(request), await _body(request)
    app = sb.apps.get(body.get("client_id", ""))
    if app is None:
        return _error(404, "unknown client_id")
    location_id = body.get("location_id") or app.location_id
    if location_id not in sb.locations:
        return _error(404, "unknown location_id")
    scope = body.get("scope", "contacts.readonly contacts.write")
    return JSONResponse(oauth.issue_tokens(sb, app, location_id, scope), status_code=201)


async def seed_contacts(request: Request) -> Response:
    sb, body = _sb(request), await _body(request)
    location_id, count = body.get("locationId"), body.get("count")
    if not isinstance(location_id, str) or not location_id:
        return _error(400, "locationId is required")
    if count is not None and (not isinstance(count, int) or count < 0):
        return _error(400, "count must be a non-negative integer")
    location = sb.create_location(location_id)
    ids = seed.seed(sb, location, count, notify=bool(body.get("notify", False)))
    return JSONResponse({"locationId": location.id, "count": len(ids), "ids": ids}, status_code=201)


async def list_contacts(request: Request) -> Response:
    sb, location_id = _sb(request), request.query_params.get("locationId")
    locations = [sb.locations[location_id]] if location_id in sb.locations else []
    if location_id is None:
        locations = list(sb.locations.values())
    found = [model.render(c) for loc in locations for c in loc.contacts.values()]
    return JSONResponse({"contacts": found, "total": len(found)})


async def edit_contact(request: Request) -> Response:
    """A GHL user editing the contact in the GHL UI: bumps dateUpdated and fires ContactUpdate."""
    sb = _sb(request)
    found = sb.find_contact(request.path_params["contactId"])
    if found is None:
        return _error(404, "unknown contact")
    location, contact = found
    values = model.validate(await _body(request), model.UI_EDIT_DTO, contact.get("country") or "US")
    if match := model.find_duplicate(location, values.get("email"), values.get("phone"), exclude=contact["id"]):
        raise model.duplicate_error(location, match)
    model.update_contact(sb, location, contact, values)
    return JSONResponse({"contact": model.render(contact)})


async def register_webhook(request: Request) -> Response:
    sb, body = _sb(request), await _body(request)
    url = body.get("url")
    if url is not None and not (isinstance(url, str) and url.startswith(("http://", "https://"))):
        return _error(400, "url must be an http(s) URL or null")
    client_id = body.get("client_id")
    if client_id is None and len(sb.apps) == 1:
        client_id = next(iter(sb.apps))
    app = sb.apps.get(client_id or "")
    if app is None:
        return _error(400, "client_id is required (and must be registered) unless exactly one app exists")
    app.webhook_url = url
    return JSONResponse(app.as_json())


async def deliveries(request: Request) -> Response:
    return JSONResponse({"deliveries": [d.as_json() for d in _sb(request).webhooks.deliveries]})


async def public_key(request: Request) -> Response:
    return PlainTextResponse(_sb(request).webhooks.signer.public_pem, media_type="application/x-pem-file")


async def stats(request: Request) -> Response:
    return JSONResponse(dict(sorted(_sb(request).stats.items())))


async def reset_stats(request: Request) -> Response:
    _sb(request).stats.clear()
    return JSONResponse({"reset": True})


async def get_faults(request: Request) -> Response:
    return JSONResponse(_sb(request).faults.as_json())


async def set_faults(request: Request) -> Response:
    sb, body = _sb(request), await _body(request)
    actions = {"expire_all_tokens", "revoke_tokens"}
    if unknown := set(body) - set(sb.faults.as_json()) - actions:
        return _error(400, f"unknown faults: {sorted(unknown)}")
    try:
        if "rate_limit_enabled" in body:
            sb.faults.rate_limit_enabled = bool(body["rate_limit_enabled"])
        if "status_5xx_rate" in body:
            sb.faults.status_5xx_rate = min(max(float(body["status_5xx_rate"]), 0.0), 1.0)
        if "latency_ms" in body:
            sb.faults.latency_ms = max(int(body["latency_ms"]), 0)
        if "malformed_next_page" in body:
            sb.faults.malformed_next_page = bool(body["malformed_next_page"])
        if "outage_until" in body:
            sb.faults.outage_until = _epoch(body["outage_until"])
    except (TypeError, ValueError) as exc:
        return _error(400, f"invalid fault value: {exc}")
    if body.get("expire_all_tokens"):
        oauth.expire_all(sb)
    if body.get("revoke_tokens"):
        oauth.revoke_all(sb)
    return JSONResponse(sb.faults.as_json())


def _epoch(value: Any) -> float | None:
    """Epoch seconds or an ISO 8601 timestamp."""
    if value is None or isinstance(value, int | float):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


async def clear_faults(request: Request) -> Response:
    sb = _sb(request)
    sb.faults = Faults(rate_limit_enabled=sb.settings.rate_limit_enabled)
    return JSONResponse(sb.faults.as_json())


def _guarded(handler: Any) -> Any:
    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except GhlError as err:
            return JSONResponse(err.body, status_code=err.status)

    return endpoint


def routes() -> list[Route]:
    table = [
        ("POST", "/_sandbox/reset", reset),
        ("POST", "/_sandbox/apps", create_app_registration),
        ("POST", "/_sandbox/locations", create_location),
        ("POST", "/_sandbox/tokens", mint_token),
        ("POST", "/_sandbox/seed", seed_contacts),
        ("GET", "/_sandbox/contacts", list_contacts),
        ("PATCH", "/_sandbox/contacts/{contactId}", edit_contact),
        ("POST", "/_sandbox/webhooks", register_webhook),
        ("GET", "/_sandbox/webhooks/deliveries", deliveries),
        ("GET", "/_sandbox/webhook-public-key", public_key),
        ("GET", "/_sandbox/stats", stats),
        ("POST", "/_sandbox/stats/reset", reset_stats),
        ("GET", "/_sandbox/faults", get_faults),
        ("POST", "/_sandbox/faults", set_faults),
        ("DELETE", "/_sandbox/faults", clear_faults),
    ]
    return [Route(path, _guarded(handler), methods=[method]) for method, path, handler in table]
