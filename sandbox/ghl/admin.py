"""Simulator-only test surface under /_sandbox (no auth)."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from sandbox.common.admin import common_routes, json_body
from sandbox.common.faults import FaultError, apply_patch

from . import conversations, model, oauth, scheduling, seed
from .errors import GhlError
from .scopes import ALL_SCOPES
from .settings import AppRegistration
from .state import Sandbox


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
    scope = body.get("scope", ALL_SCOPES)
    return JSONResponse(oauth.issue_tokens(sb, app, location_id, scope), status_code=201)


async def seed_contacts(request: Request) -> Response:
    sb, body = _sb(request), await _body(request)
    location_id, count = body.get("locationId"), body.get("count")
    if not isinstance(location_id, str) or not location_id:
        return _error(400, "locationId is required")
    if count is not None and (not isinstance(count, int) or count < 0):
        return _error(400, "count must be a non-negative integer")
    location = sb.create_location(location_id)
    ids, made = seed.seed(
        sb, location, count, notify=bool(body.get("notify", False)), appointments=bool(body.get("appointments", True))
    )
    return JSONResponse(
        {"locationId": location.id, "count": len(ids), "ids": ids, "appointments": made}, status_code=201
    )


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


async def delete_contact(request: Request) -> Response:
    """A GHL user deleting the contact in the GHL UI: fires ContactDelete."""
    sb = _sb(request)
    found = sb.find_contact(request.path_params["contactId"])
    if found is None:
        return _error(404, "unknown contact")
    location, contact = found
    model.delete_contact(sb, location, contact)
    return JSONResponse({"deleted": contact["id"]})


async def set_clock_skew(request: Request) -> Response:
    """``{"skew_seconds": -600}``: GHL's clock runs that far behind (or, positive, ahead of) true time."""
    sb, body = _sb(request), await _body(request)
    skew = body.get("skew_seconds")
    if isinstance(skew, bool) or not isinstance(skew, int | float) or abs(skew) > 86_400:
        return _error(400, "skew_seconds must be a number of seconds within a day")
    sb.clock_skew = float(skew)
    return JSONResponse({"skew_seconds": sb.clock_skew})


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


def _guarded(handler: Any) -> Any:
    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except GhlError as err:
            return JSONResponse(err.body, status_code=err.status)

    return endpoint


async def list_appointments(request: Request) -> Response:
    sb, location_id = _sb(request), request.query_params.get("locationId")
    found = [
        scheduling.render_event(loc, a)
        for loc in sb.locations.values()
        if location_id in (None, loc.id)
        for a in sorted(loc.appointments.values(), key=lambda a: (a["start"], a["id"]))
    ]
    return JSONResponse({"appointments": found, "total": len(found)})


async def list_messages(request: Request) -> Response:
    """Every message sent through POST /conversations/messages (and every DND refusal), oldest first."""
    sb, params = _sb(request), request.query_params

    def wanted(entry: dict[str, Any]) -> bool:
        return all(params.get(k) in (None, entry[k]) for k in ("locationId", "contactId"))

    sent = [conversations.outbox_json(m) for m in sb.outbox if wanted(m)]
    return JSONResponse({"messages": sent, "refused": [r for r in sb.refused if wanted(r)]})


async def list_enrollments(request: Request) -> Response:
    sb, location_id = _sb(request), request.query_params.get("locationId")
    found = [
        {"locationId": loc.id, "contactId": contact_id, "workflowId": workflow_id, **enrollment}
        for loc in sb.locations.values()
        if location_id in (None, loc.id)
        for contact_id, workflows in loc.enrollments.items()
        for workflow_id, enrollment in workflows.items()
    ]
    return JSONResponse({"enrollments": found})


def _guarded(handler: Any) -> Any:
    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except GhlError as err:
            return JSONResponse(err.body, status_code=err.status)

    return endpoint


def _shared_routes(sb: Sandbox) -> list[Route]:
    """/_sandbox/stats, /stats/reset, /faults GET/POST/DELETE and /reset from sandbox.common, with GHL's
    old fault name `malformed_next_page` still accepted for `malformed_page`."""

    async def on_actions(actions: set[str]) -> None:
        if "expire_all_tokens" in actions:
            oauth.expire_all(sb)
        if "revoke_tokens" in actions:
            oauth.revoke_all(sb)

    async def reset() -> None:
        sb.reset()

    async def set_faults(request: Request) -> Response:
        try:
            body = await json_body(request)
            if "malformed_next_page" in body:
                body.setdefault("malformed_page", body.pop("malformed_next_page"))
            actions = apply_patch(sb.faults, body)
        except FaultError as error:
            return JSONResponse({"error": str(error)}, status_code=400)
        await on_actions(actions)
        return JSONResponse(sb.faults.as_json())

    shared = common_routes(
        stats=sb.stats, faults=lambda: sb.faults, reset_faults=sb.clear_faults, on_actions=on_actions, reset=reset
    )
    posts_faults = [r for r in shared if r.path == "/_sandbox/faults" and "POST" in (r.methods or ())]
    return [Route("/_sandbox/faults", set_faults, methods=["POST"]), *(r for r in shared if r not in posts_faults)]


def routes(sb: Sandbox) -> list[Route]:
    table = [
        ("POST", "/_sandbox/apps", create_app_registration),
        ("POST", "/_sandbox/locations", create_location),
        ("POST", "/_sandbox/tokens", mint_token),
        ("POST", "/_sandbox/seed", seed_contacts),
        ("GET", "/_sandbox/contacts", list_contacts),
        ("PATCH", "/_sandbox/contacts/{contactId}", edit_contact),
        ("DELETE", "/_sandbox/contacts/{contactId}", delete_contact),
        ("POST", "/_sandbox/clock", set_clock_skew),
        ("GET", "/_sandbox/appointments", list_appointments),
        ("GET", "/_sandbox/messages", list_messages),
        ("GET", "/_sandbox/enrollments", list_enrollments),
        ("POST", "/_sandbox/webhooks", register_webhook),
        ("GET", "/_sandbox/webhooks/deliveries", deliveries),
        ("GET", "/_sandbox/webhook-public-key", public_key),
    ]
    own = [Route(path, _guarded(handler), methods=[method]) for method, path, handler in table]
    return [*own, *_shared_routes(sb)]
