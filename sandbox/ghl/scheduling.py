"""Calendars and appointments: open hours, free slots, rendering (apps/calendars.json) and webhooks."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from . import model
from .state import Location, Sandbox

# Appointments in these states hold no slot.
FREEING_STATUSES = ("cancelled", "invalid")
APPOINTMENT_STATUSES = ("new", "confirmed", "cancelled", "showed", "noshow", "invalid")
# Simulator-chosen standard availability: Monday to Friday (GHL counts 0 = Sunday), 9:00-17:00 local.
OPEN_DAYS = [1, 2, 3, 4, 5]
OPEN_HOURS = {"openHour": 9, "openMinute": 0, "closeHour": 17, "closeMinute": 0}
SLOT_INTERVAL_MINUTES = 30
BOOKING_WINDOW_DAYS = 60


@functools.cache
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def parse_time(value: Any, tz: str) -> int | None:
    """ISO 8601 (a time without offset is read in the location's zone) to epoch ms; None if invalid."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone(tz))
    return int(parsed.timestamp() * 1000)


def local_iso(ms: int, tz: str) -> str:
    """ "2023-09-25T16:00:00+05:30", as GHL shows appointment times."""
    return datetime.fromtimestamp(ms / 1000, zone(tz)).isoformat(timespec="seconds")


def new_calendar(
    sb: Sandbox, location: Location, code: str, name: str, minutes: int, team: list[str]
) -> dict[str, Any]:
    calendar_id = sb.new_id()
    slug = f"{code}-{calendar_id[:6].lower()}"
    return {
        "id": calendar_id,
        "locationId": location.id,
        "groupId": location.group_id,
        "name": name,
        "description": f"{name} ({minutes} minutes)",
        "slug": slug,
        "widgetSlug": slug,
        "calendarType": "round_robin",
        "eventType": "RoundRobin_OptimizeForAvailability",
        "widgetType": "classic",
        "eventTitle": name,
        "eventColor": "#039be5",
        "isActive": True,
        "teamMembers": [{"userId": u, "priority": 0.5, "isPrimary": i == 0} for i, u in enumerate(team)],
        "locationConfigurations": [{"kind": "physical", "location": location.name}],
        "slotDuration": minutes,
        "slotDurationUnit": "mins",
        "slotInterval": SLOT_INTERVAL_MINUTES,
        "slotIntervalUnit": "mins",
        "slotBuffer": 0,
        "preBuffer": 0,
        "appoinmentPerSlot": 1,
        "appoinmentPerDay": 0,
        "allowBookingAfter": 0,
        "allowBookingAfterUnit": "hours",
        "allowBookingFor": BOOKING_WINDOW_DAYS,
        "allowBookingForUnit": "days",
        "openHours": [{"daysOfTheWeek": OPEN_DAYS, "hours": [dict(OPEN_HOURS)]}],
        "enableRecurring": False,
        "autoConfirm": True,
        "allowReschedule": True,
        "allowCancellation": True,
        "stickyContact": False,
        "shouldAssignContactToTeamMember": False,
        "availabilityType": 0,
    }


def team(calendar: dict[str, Any]) -> list[str]:
    return [m["userId"] for m in calendar["teamMembers"]]


def slot_starts(location: Location, calendar: dict[str, Any], start_ms: int, end_ms: int) -> Iterator[int]:
    """Every slot boundary of the calendar's open hours (location zone) starting within [start, end]."""
    tz = zone(location.timezone)
    duration = timedelta(minutes=calendar["slotDuration"])
    step = timedelta(minutes=calendar["slotInterval"])
    day = datetime.fromtimestamp(start_ms / 1000, tz).date()
    last = datetime.fromtimestamp(end_ms / 1000, tz).date()
    while day <= last:
        for hours in calendar["openHours"]:
            if (day.weekday() + 1) % 7 not in hours["daysOfTheWeek"]:
                continue
            for block in hours["hours"]:
                t = datetime(day.year, day.month, day.day, block["openHour"], block["openMinute"], tzinfo=tz)
                close = datetime(day.year, day.month, day.day, block["closeHour"], block["closeMinute"], tzinfo=tz)
                while t + duration <= close:
                    ms = int(t.timestamp() * 1000)
                    if start_ms <= ms <= end_ms:
                        yield ms
                    t += step
        day += timedelta(days=1)


class Busy:
    """Who is booked when, over one time range, from the location's holding appointments."""

    def __init__(self, location: Location, start_ms: int, end_ms: int, exclude: str | None = None) -> None:
        self.by_user: dict[str, list[tuple[int, int]]] = {}
        for appt in location.appointments.values():
            if appt["id"] == exclude or appt["appointmentStatus"] in FREEING_STATUSES:
                continue
            if appt["end"] < start_ms or appt["start"] > end_ms:
                continue
            for user in {appt["assignedUserId"], *appt["users"]}:
                self.by_user.setdefault(user, []).append((appt["start"], appt["end"]))

    def free(self, user_id: str, start: int, end: int) -> bool:
        return all(end <= s or start >= e for s, e in self.by_user.get(user_id, ()))


def booking_window(sb: Sandbox, calendar: dict[str, Any]) -> tuple[int, int]:
    now = int(sb.clock() * 1000)
    return now, now + calendar["allowBookingFor"] * 86_400_000


def free_slots(
    sb: Sandbox, location: Location, calendar: dict[str, Any], start_ms: int, end_ms: int, users: list[str]
) -> list[int]:
    earliest, latest = booking_window(sb, calendar)
    start_ms, end_ms = max(start_ms, earliest + 1), min(end_ms, latest)
    if start_ms > end_ms:
        return []
    duration = calendar["slotDuration"] * 60_000
    busy = Busy(location, start_ms, end_ms + duration)
    return [
        t
        for t in slot_starts(location, calendar, start_ms, end_ms)
        if any(busy.free(u, t, t + duration) for u in users)
    ]


def pick_user(
    sb: Sandbox,
    location: Location,
    calendar: dict[str, Any],
    start: int,
    end: int,
    assigned: str | None,
    *,
    check_slot: bool,
    ignore_window: bool,
    exclude: str | None = None,
) -> str | None:
    """The user who takes the appointment, or None when the slot is not available for anyone asked."""
    candidates = [assigned] if assigned else team(calendar)
    if not check_slot:
        return candidates[0] if candidates else location.user_id
    if start not in set(slot_starts(location, calendar, start, start)):
        return None
    earliest, latest = booking_window(sb, calendar)
    if not ignore_window and not earliest < start <= latest:
        return None
    busy = Busy(location, start, end, exclude=exclude)
    return next((u for u in candidates if busy.free(u, start, end)), None)


def new_appointment(
    sb: Sandbox,
    location: Location,
    calendar: dict[str, Any],
    contact_id: str,
    start: int,
    end: int,
    user: str,
    stamp: int | None = None,
    **extra: Any,
) -> dict[str, Any]:
    stamp = stamp or sb.stamp_ms()
    appt = {
        "id": sb.new_id(),
        "calendarId": calendar["id"],
        "locationId": location.id,
        "contactId": contact_id,
        "groupId": calendar["groupId"],
        "title": calendar["eventTitle"],
        "appointmentStatus": "confirmed" if calendar["autoConfirm"] else "new",
        "assignedUserId": user,
        "users": [],
        "start": start,
        "end": end,
        "dateAdded": stamp,
        "dateUpdated": stamp,
        "source": "third_party",
        "createdBy": {"source": "third_party"},
    }
    appt.update({k: v for k, v in extra.items() if v is not None})
    location.appointments[appt["id"]] = appt
    sb.appointment_location[appt["id"]] = location.id
    return appt


def render_event(location: Location, appt: dict[str, Any]) -> dict[str, Any]:
    """CalendarEventDTO."""
    tz = location.timezone
    out = {
        "id": appt["id"],
        "title": appt["title"],
        "calendarId": appt["calendarId"],
        "locationId": appt["locationId"],
        "contactId": appt["contactId"],
        "groupId": appt["groupId"],
        "appointmentStatus": appt["appointmentStatus"],
        "assignedUserId": appt["assignedUserId"],
        "users": list(appt["users"]),
        "notes": appt.get("notes"),
        "description": appt.get("description"),
        "address": appt.get("address"),
        "isRecurring": False,
        "startTime": local_iso(appt["start"], tz),
        "endTime": local_iso(appt["end"], tz),
        "dateAdded": model.iso_ms(appt["dateAdded"]),
        "dateUpdated": model.iso_ms(appt["dateUpdated"]),
        "assignedResources": [],
        "createdBy": dict(appt["createdBy"]),
    }
    return {k: v for k, v in out.items() if v is not None}


def render_saved(location: Location, appt: dict[str, Any]) -> dict[str, Any]:
    """AppointmentSchemaResponse (create and update)."""
    tz = location.timezone
    out = {
        "id": appt["id"],
        "calendarId": appt["calendarId"],
        "locationId": appt["locationId"],
        "contactId": appt["contactId"],
        "startTime": local_iso(appt["start"], tz),
        "endTime": local_iso(appt["end"], tz),
        "title": appt["title"],
        "meetingLocationType": appt.get("meetingLocationType"),
        "appointmentStatus": appt["appointmentStatus"],
        "assignedUserId": appt["assignedUserId"],
        "address": appt.get("address"),
        "isRecurring": False,
    }
    return {k: v for k, v in out.items() if v is not None}


def render_contact_event(location: Location, appt: dict[str, Any]) -> dict[str, Any]:
    """GetEventSchema (GET /contacts/{id}/appointments)."""
    event = render_event(location, appt)
    keys = (
        "id", "calendarId", "title", "assignedUserId", "notes", "startTime", "endTime", "address", "locationId",
        "contactId", "groupId", "appointmentStatus", "users", "dateAdded", "dateUpdated", "assignedResources",
    )  # fmt: skip
    return {"status": appt["appointmentStatus"], **{k: event[k] for k in keys if k in event}}


def notify(sb: Sandbox, location: Location, event: str, appt: dict[str, Any]) -> None:
    """docs/webhook events/Appointment{Create,Update,Delete}.md: {type, locationId, appointment: {...}}."""
    rendered = render_event(location, appt)
    keys = (
        "id", "address", "title", "calendarId", "contactId", "groupId", "appointmentStatus", "assignedUserId",
        "users", "notes", "startTime", "endTime", "dateAdded", "dateUpdated",
    )  # fmt: skip
    body = {k: rendered[k] for k in keys if k in rendered}
    body["source"] = appt["source"]
    model.notify(sb, location, event, {"locationId": location.id, "appointment": body})
