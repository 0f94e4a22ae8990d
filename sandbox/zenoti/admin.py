"""Simulator-only surface under /_sandbox (no auth): what a Zenoti user does in the web app, webhook
configuration, delivery records, credentials; stats/faults/reset come from sandbox.common.admin."""

from __future__ import annotations

import secrets
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.common.admin import common_routes

from . import appointments, guests, render
from .api import guid, json_object, parse_day
from .errors import ZenotiError
from .model import STATUS_NAMES, Appointment, Org, utc
from .settings import WebhookConfig
from .state import Sandbox
from .webhooks import EVENTS


class AdminError(ZenotiError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(status, {"error": message})


def _guest(sb: Sandbox, guest_id: str) -> tuple[Org, dict[str, Any]]:
    key = guid(guest_id, "guest id")
    for org in sb.orgs.values():
        if key in org.guests:
            return org, org.guests[key]
    raise AdminError(404, "unknown guest")


def _appointment(sb: Sandbox, appointment_id: str) -> tuple[Org, Appointment]:
    key = guid(appointment_id, "appointment id")
    for org in sb.orgs.values():
        if key in org.appointments:
            return org, org.appointments[key]
    raise AdminError(404, "unknown appointment")


def _org(sb: Sandbox, body: dict[str, Any]) -> Org:
    org = sb.org(str(body.get("account_name") or sb.settings.orgs[0].account_name))
    if org is None:
        raise AdminError(404, "unknown account_name")
    return org


def _merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in patch.items():
        merged[key] = _merge(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return merged


async def orgs(request: Request, sb: Sandbox) -> Response:
    """Credentials and centers of every organization, for demos and tests."""
    return JSONResponse(
        [
            {
                "account_name": org.account_name,
                "organization_id": org.id,
                "api_key": org.api_key,
                "app_id": org.config.app_id,
                "app_secret": org.config.app_secret,
                "users": sorted(org.config.users),
                "centers": [{"id": c.id, "code": c.code, "name": c.name} for c in org.centers.values()],
                "guests": len(org.guests),
                "appointments": len(org.appointments),
            }
            for org in sb.orgs.values()
        ]
    )


async def rotate_api_key(request: Request, sb: Sandbox) -> Response:
    """Admin > Setup > Apps > regenerate: the old key stops working at once."""
    org = sb.org(request.path_params["account_name"])
    if org is None:
        raise AdminError(404, "unknown account_name")
    org.api_key = secrets.token_hex(32)
    return JSONResponse({"account_name": org.account_name, "api_key": org.api_key})


async def edit_guest(request: Request, sb: Sandbox) -> Response:
    """A Zenoti user editing the guest profile: a deep merge (not a replace); sends Guest.Updated."""
    org, record = _guest(sb, request.path_params["guest_id"])
    patch = await json_object(request)
    merged = _merge(render.guest(record), patch)
    fields = guests.build(org, merged, utc(sb.clock()).date())
    guests.check_duplicates(org, fields, exclude=record["id"])
    record.update(fields, updated=sb.clock())
    sb.webhooks.emit(org.account_name, "Guest.Updated", render.guest_event(org, record))
    return JSONResponse(render.guest(record))


async def delete_guest(request: Request, sb: Sandbox) -> Response:
    """Deleting a guest in the web app (the API has no delete); sends Guest.Deleted."""
    org, record = _guest(sb, request.path_params["guest_id"])
    data = render.guest_event(org, record)
    del org.guests[record["id"]]
    sb.webhooks.emit(org.account_name, "Guest.Deleted", data)
    return JSONResponse({"deleted": record["id"]})


async def book(request: Request, sb: Sandbox) -> Response:
    """Front-desk booking in the Appointment Book: ``{center_id, guest_id, service_id, therapist_id?,
    start_time (center wall clock), notes?, account_name?}``; sends AppointmentGroup.Created."""
    body = await json_object(request)
    org = _org(sb, body)
    center = org.centers.get(guid(body.get("center_id"), "center id"))
    guest_id = guid(body.get("guest_id"), "guest id")
    service_id = guid(body.get("service_id"), "service id")
    therapist_id = guid(body["therapist_id"], "therapist id") if body.get("therapist_id") else None
    if center is None or guest_id not in org.guests or service_id not in org.services:
        raise AdminError(400, "center_id, guest_id and service_id must exist in the organization")
    if therapist_id is not None and therapist_id not in org.therapists:
        raise AdminError(400, "unknown therapist_id")
    start = parse_day(body.get("start_time"), "start_time")
    item = (service_id, therapist_id, therapist_id is not None, start)
    appts = appointments.create_group(sb, org, center, guest_id, [item], body.get("notes"))
    return JSONResponse(render.appointment(org, appts[0]), status_code=201)


async def reschedule(request: Request, sb: Sandbox) -> Response:
    """Dragging an appointment in the Appointment Book: ``{start_time?, therapist_id?, notes?}``.
    Zenoti sends no webhook for this; only polling GET /v1/appointments sees it."""
    org, appt = _appointment(sb, request.path_params["appointment_id"])
    body = await json_object(request)
    if body.get("start_time"):
        center = org.centers[appt.center_id]
        length = appt.end - appt.start
        appt.start = center.to_utc(parse_day(body["start_time"], "start_time"))
        appt.end = appt.start + length
    if "therapist_id" in body:
        therapist_id = guid(body["therapist_id"], "therapist id") if body["therapist_id"] else None
        if therapist_id is not None and therapist_id not in org.therapists:
            raise AdminError(400, "unknown therapist_id")
        appt.therapist_id = therapist_id
    if "notes" in body:
        appt.notes = body["notes"]
    appt.updated = utc(sb.clock())
    return JSONResponse(render.appointment(org, appt))


async def change_status(request: Request, sb: Sandbox) -> Response:
    """``{status: int | "checkin" | "noshow" | "cancelled" | "confirmed" | "booked" | "closed"}`` applied
    to the appointment's group, or ``{progress: 0|1|2}`` to the appointment; sends the webhooks the API
    would."""
    org, appt = _appointment(sb, request.path_params["appointment_id"])
    body = await json_object(request)
    if "progress" in body:
        appointments.set_progress(sb, org, appt, body["progress"])
    else:
        status = body.get("status")
        status = STATUS_NAMES.get(status.lower()) if isinstance(status, str) else status
        if not isinstance(status, int) or status not in STATUS_NAMES.values():
            raise AdminError(400, f"status must be one of {sorted(STATUS_NAMES)} or their integer values")
        appointments.set_status(sb, org, org.group(appt.group_id), status)
    return JSONResponse(render.appointment(org, appt))


async def register_webhook(request: Request, sb: Sandbox) -> Response:
    body = await json_object(request)
    url, events = body.get("url"), body.get("events")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise AdminError(400, "url must be an http(s) URL")
    if events is not None and (not isinstance(events, list) or set(events) - set(EVENTS)):
        raise AdminError(400, f"events must be a list drawn from {sorted(EVENTS)}")
    org = _org(sb, body)
    config = WebhookConfig(url, tuple(events) if events is not None else None, account_name=org.account_name)
    if body.get("secret"):
        config.secret = str(body["secret"])
    return JSONResponse(sb.webhooks.register(config).as_json(), status_code=201)


async def list_webhooks(request: Request, sb: Sandbox) -> Response:
    return JSONResponse([r.as_json() for r in sb.webhooks.registrations.values()])


async def delete_webhook(request: Request, sb: Sandbox) -> Response:
    if sb.webhooks.registrations.pop(request.path_params["webhook_id"], None) is None:
        raise AdminError(404, "unknown webhook")
    return JSONResponse({"deleted": request.path_params["webhook_id"]})


async def activate_webhook(request: Request, sb: Sandbox) -> Response:
    """Re-enabling a webhook Zenoti deactivated after repeated failures."""
    reg = sb.webhooks.registrations.get(request.path_params["webhook_id"])
    if reg is None:
        raise AdminError(404, "unknown webhook")
    reg.active, reg.consecutive_failures = True, 0
    return JSONResponse(reg.as_json())


async def deliveries(request: Request, sb: Sandbox) -> Response:
    return JSONResponse({"deliveries": [d.as_json() for d in sb.webhooks.sender.deliveries]})


async def flush(request: Request, sb: Sandbox) -> Response:
    sb.webhooks.flush()
    return JSONResponse({"flushed": True})


def routes(sb: Sandbox) -> list[Route]:
    def wrap(handler: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            try:
                response = await handler(request, sb)
            except ZenotiError as err:
                response = err.response()
            sb.webhooks.after_request()
            return response

        return endpoint

    async def on_actions(actions: set[str]) -> None:
        if "expire_all_tokens" in actions:
            sb.expire_all_tokens()
        if "revoke_tokens" in actions:
            sb.revoke_all_tokens()

    async def reset() -> None:
        sb.reset()

    table = [
        ("GET", "/_sandbox/orgs", orgs),
        ("POST", "/_sandbox/orgs/{account_name}/api-key", rotate_api_key),
        ("PATCH", "/_sandbox/guests/{guest_id}", edit_guest),
        ("DELETE", "/_sandbox/guests/{guest_id}", delete_guest),
        ("POST", "/_sandbox/appointments", book),
        ("PATCH", "/_sandbox/appointments/{appointment_id}", reschedule),
        ("POST", "/_sandbox/appointments/{appointment_id}/status", change_status),
        ("POST", "/_sandbox/webhooks", register_webhook),
        ("GET", "/_sandbox/webhooks", list_webhooks),
        ("GET", "/_sandbox/webhooks/deliveries", deliveries),
        ("POST", "/_sandbox/webhooks/flush", flush),
        ("DELETE", "/_sandbox/webhooks/{webhook_id}", delete_webhook),
        ("POST", "/_sandbox/webhooks/{webhook_id}/activate", activate_webhook),
    ]
    common = common_routes(
        stats=sb.stats,
        faults=lambda: sb.faults,
        reset_faults=sb.reset_faults,
        on_actions=on_actions,
        reset=reset,
    )
    return [*common, *(Route(path, wrap(handler), methods=[method]) for method, path, handler in table)]
