"""Calendars and appointments endpoints (apps/calendars.json, Version 2021-04-15).

The spec lists 400 and 401 only for these operations: validation errors are 400 BadRequestDTO bodies
whose `message` joins every complaint (simulator-chosen)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfoNotFoundError

from starlette.requests import Request
from starlette.responses import JSONResponse

from . import scheduling
from .contacts import json_body
from .errors import bad_request, forbidden
from .state import Grant, Location, Sandbox

_MEETING_TYPES = ("custom", "zoom", "gmeet", "phone", "address", "ms_teams", "google")
_EDIT_FIELDS: dict[str, Any] = {
    "title": str, "meetingLocationType": _MEETING_TYPES, "meetingLocationId": str, "overrideLocationConfig": bool,
    "appointmentStatus": scheduling.APPOINTMENT_STATUSES, "assignedUserId": str, "description": str, "address": str,
    "ignoreDateRange": bool, "toNotify": bool, "ignoreFreeSlotValidation": bool, "rrule": str, "calendarId": str,
    "startTime": str, "endTime": str,
}  # fmt: skip
_CREATE_FIELDS = {**_EDIT_FIELDS, "locationId": str, "contactId": str}
_CREATE_REQUIRED = ("calendarId", "locationId", "contactId", "startTime")
_MAX_SLOT_RANGE_MS = 31 * 86_400_000
SLOT_TAKEN = "The slot you have selected is no longer available."
NOT_FOUND = "Event not found"


def _check_location(grant: Grant, location_id: Any) -> None:
    """A token for another location is refused before the body is validated."""
    if isinstance(location_id, str) and location_id and location_id != grant.location_id:
        raise forbidden()


def _validate(body: Any, allowed: dict[str, Any], required: Iterable[str] = ()) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise bad_request("Bad Request")
    errors = [f"property {k} should not exist" for k in body if k not in allowed]
    errors += [f"{k} should not be empty" for k in required if body.get(k) in (None, "")]
    for key, kind in allowed.items():
        value = body.get(key)
        if value is None:
            continue
        if isinstance(kind, tuple):
            if value not in kind:
                errors.append(f"{key} must be one of the following values: {', '.join(kind)}")
        elif kind is bool and not isinstance(value, bool):
            errors.append(f"{key} must be a boolean value")
        elif kind is str and not isinstance(value, str):
            errors.append(f"{key} must be a string")
    if body.get("rrule") is not None:
        errors.append("rrule: recurring appointments are not simulated by the sandbox")
    if errors:
        raise bad_request(", ".join(errors))
    return body


def _calendar(location: Location, calendar_id: str) -> dict[str, Any]:
    calendar = location.calendars.get(calendar_id)
    if calendar is None:
        raise bad_request("Calendar not found")
    return calendar


def _event(sb: Sandbox, grant: Grant, event_id: str) -> tuple[Location, dict[str, Any]]:
    found = sb.find_appointment(event_id)
    if found is None:
        raise bad_request(NOT_FOUND)
    if found[0].id != grant.location_id:
        raise forbidden()
    return found


def _times(location: Location, values: dict[str, Any], start: int, end: int) -> tuple[int, int]:
    """(start, end) in epoch ms after applying startTime/endTime; a moved start keeps the duration."""
    duration = end - start
    if "startTime" in values:
        parsed = scheduling.parse_time(values["startTime"], location.timezone)
        if parsed is None:
            raise bad_request("startTime must be a valid ISO 8601 date string")
        start, end = parsed, parsed + duration
    if "endTime" in values:
        parsed = scheduling.parse_time(values["endTime"], location.timezone)
        if parsed is None:
            raise bad_request("endTime must be a valid ISO 8601 date string")
        end = parsed
    if end <= start:
        raise bad_request("endTime must be after startTime")
    return start, end


def _assignee(
    sb: Sandbox,
    location: Location,
    calendar: dict[str, Any],
    values: dict[str, Any],
    start: int,
    end: int,
    assigned: str | None,
    exclude: str | None = None,
) -> str:
    if assigned is not None and assigned not in scheduling.team(calendar):
        raise bad_request("The user is not a team member of this calendar.")
    user = scheduling.pick_user(
        sb,
        location,
        calendar,
        start,
        end,
        assigned,
        check_slot=not values.get("ignoreFreeSlotValidation", False),
        ignore_window=bool(values.get("ignoreDateRange")),
        exclude=exclude,
    )
    if user is None:
        raise bad_request(SLOT_TAKEN)
    return user


def _extras(values: dict[str, Any]) -> dict[str, Any]:
    extra = {k: values[k] for k in ("title", "appointmentStatus", "description", "address") if values.get(k)}
    if values.get("meetingLocationType") or values.get("address"):
        extra["meetingLocationType"] = values.get("meetingLocationType") or "custom"
    return extra


async def create_appointment(request: Request, sb: Sandbox, grant: Grant) -> JSONResponse:
    body = await json_body(request)
    if isinstance(body, dict):
        _check_location(grant, body.get("locationId"))
    values = _validate(body, _CREATE_FIELDS, _CREATE_REQUIRED)
    location = sb.locations[grant.location_id]
    calendar = _calendar(location, values["calendarId"])
    found = sb.find_contact(values["contactId"])
    if found is None:
        raise bad_request("Contact not found")
    if found[0].id != location.id:
        raise forbidden()
    start = scheduling.parse_time(values["startTime"], location.timezone) or 0
    start, end = _times(location, values, start, start + calendar["slotDuration"] * 60_000)
    user = _assignee(sb, location, calendar, values, start, end, values.get("assignedUserId"))
    appt = scheduling.new_appointment(sb, location, calendar, values["contactId"], start, end, user, **_extras(values))
    scheduling.notify(sb, location, "AppointmentCreate", appt)
    return JSONResponse(scheduling.render_saved(location, appt))


async def update_appointment(request: Request, sb: Sandbox, grant: Grant) -> JSONResponse:
    location, appt = _event(sb, grant, request.path_params["eventId"])
    values = _validate(await json_body(request), _EDIT_FIELDS)
    calendar = _calendar(location, values.get("calendarId") or appt["calendarId"])
    start, end = _times(location, values, appt["start"], appt["end"])
    moved = (start, end, calendar["id"]) != (appt["start"], appt["end"], appt["calendarId"])
    assigned = values.get("assignedUserId")
    status = values.get("appointmentStatus") or appt["appointmentStatus"]
    user = appt["assignedUserId"]
    if (moved or (assigned and assigned != user)) and status not in scheduling.FREEING_STATUSES:
        user = _assignee(sb, location, calendar, values, start, end, assigned or user, exclude=appt["id"])
    appt.update(_extras(values))
    appt.update(
        calendarId=calendar["id"], groupId=calendar["groupId"], start=start, end=end, assignedUserId=user,
        appointmentStatus=status, dateUpdated=sb.stamp_ms(),
    )  # fmt: skip
    scheduling.notify(sb, location, "AppointmentUpdate", appt)
    return JSONResponse(scheduling.render_saved(location, appt))


async def get_appointment(request: Request, sb: Sandbox, grant: Grant) -> JSONResponse:
    location, appt = _event(sb, grant, request.path_params["eventId"])
    return JSONResponse({"event": scheduling.render_event(location, appt)})


async def delete_event(request: Request, sb: Sandbox, grant: Grant) -> JSONResponse:
    location, appt = _event(sb, grant, request.path_params["eventId"])
    _validate(await json_body(request), {})
    del location.appointments[appt["id"]]
    del sb.appointment_location[appt["id"]]
    scheduling.notify(sb, location, "AppointmentDelete", appt)
    return JSONResponse({"succeeded": True}, status_code=201)


def _epoch_ms(params: Any, name: str) -> int:
    raw = params.get(name)
    try:
        return int(float(raw))
    except (TypeError, ValueError):
        raise bad_request(f"{name} must be a number (epoch milliseconds)") from None


def _location_param(sb: Sandbox, grant: Grant, params: Any) -> Location:
    location_id = params.get("locationId")
    if not location_id:
        raise bad_request("locationId should not be empty")
    _check_location(grant, location_id)
    return sb.locations[location_id]


async def list_events(request: Request, sb: Sandbox, grant: Grant) -> JSONResponse:
    params = request.query_params
    location = _location_param(sb, grant, params)
    start, end = _epoch_ms(params, "startTime"), _epoch_ms(params, "endTime")
    calendar_id, user_id, group_id = params.get("calendarId"), params.get("userId"), params.get("groupId")
    if not (calendar_id or user_id or group_id):
        raise bad_request("Either of calendarId, userId or groupId is required")

    def wanted(appt: dict[str, Any]) -> bool:
        return (
            start <= appt["start"] <= end
            and (not calendar_id or appt["calendarId"] == calendar_id)
            and (not group_id or appt["groupId"] == group_id)
            and (not user_id or user_id == appt["assignedUserId"] or user_id in appt["users"])
        )

    found = sorted((a for a in location.appointments.values() if wanted(a)), key=lambda a: (a["start"], a["id"]))
    events = [scheduling.render_event(location, a) for a in found]
    if events and sb.gate.take_malformed_page():  # a half-migrated record: its dateUpdated missing
        events = [{k: v for k, v in event.items() if k != "dateUpdated"} for event in events]
    return JSONResponse({"events": events})


async def list_calendars(request: Request, sb: Sandbox, grant: Grant) -> JSONResponse:
    params = request.query_params
    location = _location_param(sb, grant, params)
    group_id = params.get("groupId")
    calendars = [c for c in location.calendars.values() if not group_id or c["groupId"] == group_id]
    return JSONResponse({"calendars": calendars})


async def get_calendar(request: Request, sb: Sandbox, grant: Grant) -> JSONResponse:
    calendar = _calendar(sb.locations[grant.location_id], request.path_params["calendarId"])
    return JSONResponse({"calendar": calendar})


async def free_slots(request: Request, sb: Sandbox, grant: Grant) -> JSONResponse:
    location = sb.locations[grant.location_id]
    calendar = _calendar(location, request.path_params["calendarId"])
    params = request.query_params
    start, end = _epoch_ms(params, "startDate"), _epoch_ms(params, "endDate")
    if end < start:
        raise bad_request("endDate must not be before startDate")
    if end - start > _MAX_SLOT_RANGE_MS:
        raise bad_request("Date range cannot be more than 31 days")
    try:
        tz = scheduling.zone(params.get("timezone") or location.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise bad_request("timezone must be a valid IANA time zone") from None
    asked = [u for value in params.getlist("userIds") for u in value.split(",") if u]
    if params.get("userId"):
        asked.append(params["userId"])
    members = scheduling.team(calendar)
    users = [u for u in asked if u in members] if asked else members
    days: dict[str, dict[str, list[str]]] = {}
    for ms in scheduling.free_slots(sb, location, calendar, start, end, users):
        local = datetime.fromtimestamp(ms / 1000, tz)
        days.setdefault(local.date().isoformat(), {"slots": []})["slots"].append(local.isoformat(timespec="seconds"))
    return JSONResponse(days)
