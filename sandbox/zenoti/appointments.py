"""Appointments: list by center and date window, retrieve, the three-step service booking
(POST /v1/bookings -> slots/reserve -> slots/confirm) and status changes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from . import render
from .api import center_of, guid, json_object, listing, parse_day
from .auth import Caller
from .errors import bad_request, not_found
from .model import (
    BOOKED,
    CANCELLED,
    CHECKED_IN,
    CLOSED,
    COMPLETED,
    CONFIRMED,
    NO_SHOW,
    OPEN,
    STARTED,
    Appointment,
    Booking,
    Center,
    Org,
    day_bounds,
    fmt,
    new_guid,
    utc,
)
from .state import Sandbox

SLOT_MINUTES = 15  # the center's "Appointment Time Slot" setting


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() == "true"


async def list_appointments(request: Request, sb: Sandbox, caller: Caller) -> Response:
    """GET /v1/appointments?center_id=&start_date=&end_date=&include_no_show_cancel= -> a bare JSON array.

    Dates are the center's wall clock; a date-only end_date includes that whole day. The window may span
    at most ``max_appointment_days`` days (simulator-chosen: 7)."""
    org, params = caller.org, request.query_params
    center = center_of(org, params.get("center_id"))
    start, end = parse_day(params.get("start_date"), "start_date"), parse_day(params.get("end_date"), "end_date")
    if end < start:
        raise bad_request("end_date should be greater than start_date.")
    if end - start > timedelta(days=sb.settings.max_appointment_days):
        raise bad_request(f"The date range cannot be more than {sb.settings.max_appointment_days} days.")
    if len(params["end_date"]) <= 10:
        end += timedelta(days=1)
    include = _flag(params.get("include_no_show_cancel"))
    found = sorted(
        (
            a
            for a in org.appointments.values()
            if a.center_id == center.id
            and start <= center.local(a.start) < end
            and (include or a.status not in (CANCELLED, NO_SHOW))
        ),
        key=lambda a: (a.start, a.id),
    )
    return listing(sb, [render.appointment(org, a) for a in found])


def find(org: Org, appointment_id: str) -> Appointment:
    appt = org.appointments.get(guid(appointment_id, "appointment id"))
    if appt is None:
        raise not_found("Appointment")
    return appt


async def get(request: Request, sb: Sandbox, caller: Caller) -> Response:
    return JSONResponse(render.appointment(caller.org, find(caller.org, request.path_params["appointment_id"])))


# --- booking ---------------------------------------------------------------------------------------


async def create_booking(request: Request, sb: Sandbox, caller: Caller) -> Response:
    """POST /v1/bookings: ``{center_id, date, is_only_catalog_employees, guests: [{id, items: [{item: {id},
    therapist: {id}}]}]}`` -> ``{id, error: null}``."""
    org, body = caller.org, await json_object(request)
    center = center_of(org, body.get("center_id"))
    day = parse_day(body.get("date") if isinstance(body.get("date"), str) else None, "date").date()
    if day < center.local(utc(sb.clock())).date():
        raise bad_request("Bookings cannot be created for a past date.")
    guests = body.get("guests")
    if not isinstance(guests, list) or not guests:
        raise bad_request("guests is required.")
    if len(guests) > 1:
        raise bad_request("Group bookings are not supported by the sandbox.")
    entry = guests[0] if isinstance(guests[0], dict) else {}
    guest_id = guid(entry.get("id"), "guest id")
    if guest_id not in org.guests:
        raise bad_request("Invalid guest id.")
    items = entry.get("items")
    if not isinstance(items, list) or not items:
        raise bad_request("items is required.")
    invoice_id = entry.get("invoice_id")
    moving = org.invoice(guid(invoice_id, "invoice id")) if invoice_id else []
    if invoice_id and not moving:
        raise bad_request("Invalid invoice id.")
    parsed: list[tuple[str, str | None]] = []
    reschedules: list[str] = []
    for item in items:
        service_id = ((item or {}).get("item") or {}).get("id") if isinstance(item, dict) else None
        service_id = guid(service_id, "service id")
        if service_id not in org.services:
            raise bad_request("Invalid service id.")
        therapist_id = (item.get("therapist") or {}).get("id")
        if therapist_id:
            therapist = org.therapists.get(guid(therapist_id, "therapist id"))
            if therapist is None or therapist.center_id != center.id:
                raise bad_request("Invalid therapist id.")
            therapist_id = therapist.id
        if invoice_id:
            reschedules.append(_rescheduled(moving, item.get("invoice_item_id"), guest_id).id)
        parsed.append((service_id, therapist_id or None))
    double = _flag(request.query_params.get("is_double_booking_enabled"))
    booking = Booking(new_guid(sb.rng), center.id, day, guest_id, parsed, double, reschedules=reschedules)
    org.bookings[booking.id] = booking
    return JSONResponse({"id": booking.id, "error": None})


def _rescheduled(moving: list[Appointment], invoice_item_id: object, guest_id: str) -> Appointment:
    """The appointment of the invoice a reschedule item names; Zenoti's 5001 for one that cannot move."""
    if not isinstance(invoice_item_id, str) or not invoice_item_id:
        raise bad_request("invoice_item_id is required to reschedule.")
    appt = next((a for a in moving if a.invoice_item_id.lower() == invoice_item_id.lower()), None)
    if appt is None:
        raise bad_request("Invalid invoice item id.")
    if appt.guest_id != guest_id or appt.status not in (BOOKED, CONFIRMED):
        raise bad_request("Appointment cannot be rescheduled.")
    return appt


def _booking(org: Org, booking_id: str) -> Booking:
    booking = org.bookings.get(guid(booking_id, "booking id"))
    if booking is None:
        raise not_found("Booking")
    return booking


def _held(org: Org, center: Center, now: float, skip: str) -> Iterator[tuple[str, datetime, datetime]]:
    """(therapist, start, end) in UTC of every live reservation other than booking ``skip``."""
    for other in org.bookings.values():
        if other.id == skip or other.confirmed or other.slot is None or other.reserved_until <= now:
            continue
        for (service_id, _), therapist_id, start in zip(other.items, other.assigned, _starts(org, other), strict=True):
            begin = center.to_utc(start)
            yield therapist_id, begin, begin + timedelta(minutes=org.services[service_id].duration)


def _starts(org: Org, booking: Booking, at: datetime | None = None) -> list[datetime]:
    """Wall-clock start of each item: services run back to back from the slot."""
    t, starts = at or booking.slot, []
    for service_id, _ in booking.items:
        starts.append(t)
        t += timedelta(minutes=org.services[service_id].duration)
    return starts


def _assign(sb: Sandbox, org: Org, booking: Booking, at: datetime) -> list[str] | None:
    """Therapists for each item if the booking fits at wall-clock ``at``, else None."""
    center, now = org.centers[booking.center_id], sb.clock()
    if center.to_utc(at) <= utc(now):
        return None
    held = list(_held(org, center, now, booking.id))
    staff = sorted((t for t in org.therapists.values() if t.center_id == center.id), key=lambda t: t.code)
    chosen: list[str] = []
    for (service_id, wanted), start in zip(booking.items, _starts(org, booking, at), strict=True):
        begin = center.to_utc(start)
        end = begin + timedelta(minutes=org.services[service_id].duration)

        def free(therapist_id: str, begin: datetime = begin, end: datetime = end) -> bool:
            if booking.double_booking:
                return True
            clash = any(t == therapist_id and s < end and begin < e for t, s, e in held)
            return not clash and not org.booked(therapist_id, begin, end, ignore=booking.reschedules)

        pick = (wanted if free(wanted) else None) if wanted else next((t.id for t in staff if free(t.id)), None)
        if pick is None:
            return None
        chosen.append(pick)
    return chosen


def _slot_times(org: Org, booking: Booking) -> Iterator[datetime]:
    center = org.centers[booking.center_id]
    opening, closing = day_bounds(center, booking.day)
    total = timedelta(minutes=sum(org.services[s].duration for s, _ in booking.items))
    t = opening
    while t + total <= closing:
        yield t
        t += timedelta(minutes=SLOT_MINUTES)


def _available_on(sb: Sandbox, org: Org, booking: Booking, day: date) -> bool:
    probe = Booking(booking.id, booking.center_id, day, booking.guest_id, booking.items, booking.double_booking)
    return any(_assign(sb, org, probe, t) for t in _slot_times(org, probe))


async def slots(request: Request, sb: Sandbox, caller: Caller) -> Response:
    """GET /v1/bookings/{booking_id}/slots?check_future_day_availability= (PascalCase slot fields)."""
    org = caller.org
    booking = _booking(org, request.path_params["booking_id"])
    items = [
        {"Time": fmt(t), "Warnings": None, "Priority": 0, "Available": _assign(sb, org, booking, t) is not None,
         "SalePrice": None}
        for t in _slot_times(org, booking)
    ]  # fmt: skip
    future, next_day = [], None
    if _flag(request.query_params.get("check_future_day_availability")):
        for n in range(1, 8):
            day = booking.day + timedelta(days=n)
            available = _available_on(sb, org, booking, day)
            future.append({"Day": f"{day.isoformat()}T00:00:00", "IsAvailable": available, "HolidayType": None})
            next_day = next_day or (f"{day.isoformat()}T00:00:00" if available else None)
    return JSONResponse({"slots": items, "future_days": future, "next_available_day": next_day, "Error": None})


async def reserve(request: Request, sb: Sandbox, caller: Caller) -> Response:
    """POST /v1/bookings/{booking_id}/slots/reserve ``{slot_time}`` (the center's wall clock)."""
    org = caller.org
    booking = _booking(org, request.path_params["booking_id"])
    body = await json_object(request)
    failed = {"is_reserved": False, "reservation_id": None}
    if booking.confirmed:
        raise bad_request("The booking is already confirmed.", **failed)
    slot_time = body.get("slot_time")
    at = parse_day(slot_time if isinstance(slot_time, str) else None, "slot_time")
    assigned = (
        _assign(sb, org, booking, at) if at.date() == booking.day and at in set(_slot_times(org, booking)) else None
    )
    if assigned is None:
        raise bad_request("The selected slot is not available.", **failed)
    booking.slot, booking.assigned = at, assigned
    booking.reserved_until = sb.clock() + sb.settings.reservation_ttl
    booking.reservation_id = new_guid(sb.rng)
    return JSONResponse({"is_reserved": True, "reservation_id": booking.reservation_id, "error": None})


async def confirm(request: Request, sb: Sandbox, caller: Caller) -> Response:
    """POST /v1/bookings/{booking_id}/slots/confirm ``{notes?}`` -> ``{is_confirmed, invoice, error}``."""
    org = caller.org
    booking = _booking(org, request.path_params["booking_id"])
    raw = await request.body()
    body = await json_object(request) if raw.strip() else {}
    failed = {"is_confirmed": False, "invoice": None}
    if booking.confirmed:
        raise bad_request("The booking is already confirmed.", **failed)
    if booking.slot is None:
        raise bad_request("Reserve a slot before confirming the booking.", **failed)
    if booking.reserved_until <= sb.clock():
        raise bad_request("The slot reservation has expired.", **failed)
    notes = body.get("notes") if isinstance(body.get("notes"), str) else None
    items = [
        (service_id, therapist_id, wanted is not None, start)
        for (service_id, wanted), therapist_id, start in zip(
            booking.items, booking.assigned, _starts(org, booking), strict=True
        )
    ]
    center = org.centers[booking.center_id]
    if booking.reschedules:
        appts = _move(sb, org, center, booking.reschedules, items, notes)
    else:
        appts = create_group(sb, org, center, booking.guest_id, items, notes, source=1)
    booking.confirmed = True
    return JSONResponse({"is_confirmed": True, "invoice": _invoice(org, appts), "error": None})


def _move(
    sb: Sandbox,
    org: Org,
    center: Center,
    appointment_ids: list[str],
    items: list[tuple[str, str | None, bool, datetime]],
    notes: str | None,
) -> list[Appointment]:
    """A confirmed reschedule: the same appointments (ids, invoice, group) at the new time, service
    and therapist. Zenoti announces no event for it: only polling sees a reschedule."""
    now, moved = utc(sb.clock()), []
    for appointment_id, (service_id, therapist_id, requested, start) in zip(appointment_ids, items, strict=True):
        appt = org.appointments[appointment_id]
        if appt.status not in (BOOKED, CONFIRMED):
            raise bad_request("Appointment cannot be rescheduled.", is_confirmed=False, invoice=None)
        begin = center.to_utc(start)
        appt.service_id, appt.therapist_id, appt.requested_therapist = service_id, therapist_id, requested
        appt.start, appt.end = begin, begin + timedelta(minutes=org.services[service_id].duration)
        appt.notes = notes if notes is not None else appt.notes
        appt.updated = now
        moved.append(appt)
    return moved


def create_group(
    sb: Sandbox,
    org: Org,
    center: Center,
    guest_id: str,
    items: list[tuple[str, str | None, bool, datetime]],
    notes: str | None,
    source: int = 0,
) -> list[Appointment]:
    """Books (service, therapist, requested?, wall-clock start) items as one appointment group on one
    invoice, and announces it with AppointmentGroup.Created."""
    now = utc(sb.clock())
    group_id, invoice_id = new_guid(sb.rng), new_guid(sb.rng)
    org.next_invoice_number += 1
    appts = []
    for service_id, therapist_id, requested, start in items:
        begin = center.to_utc(start)
        appt = Appointment(
            id=new_guid(sb.rng),
            group_id=group_id,
            invoice_id=invoice_id,
            invoice_item_id=new_guid(sb.rng),
            invoice_number=org.next_invoice_number,
            center_id=center.id,
            guest_id=guest_id,
            service_id=service_id,
            therapist_id=therapist_id,
            start=begin,
            end=begin + timedelta(minutes=org.services[service_id].duration),
            status=BOOKED,
            created=now,
            updated=now,
            notes=notes,
            source=source,
            requested_therapist=requested,
        )
        org.appointments[appt.id] = appt
        appts.append(appt)
    sb.webhooks.emit(org.account_name, "AppointmentGroup.Created", render.group_created_event(org, appts))
    return appts


def _invoice(org: Org, appts: list[Appointment]) -> dict[str, Any]:
    first, center = appts[0], org.centers[appts[0].center_id]
    record = org.guests[first.guest_id]
    amounts = [org.services[a.service_id].price(center) for a in appts]
    net, tax = round(sum(a[0] for a in amounts), 2), round(sum(a[1] for a in amounts), 2)
    created = render.group_created_event(org, appts)
    return {
        "id": first.invoice_id,
        "invoice_number": str(first.invoice_number),
        "invoice_number_prefix": center.code,
        "receipt_number": "0",
        "appointment_group_id": first.group_id,
        "is_closed": False,
        "center_id": center.id,
        "total_price": {
            "currency_id": center.currency_id,
            "net_price": net,
            "tax": tax,
            "rounding_adjustment": 0,
            "sum_total": round(net + tax, 2),
        },
        "guest": {
            "id": record["id"],
            "first_name": record["personal_info"]["first_name"],
            "last_name": record["personal_info"]["last_name"],
        },
        "appointments": created["appointments"],
    }


# --- status ----------------------------------------------------------------------------------------

TRANSITIONS = {
    CHECKED_IN: {BOOKED, CONFIRMED},
    BOOKED: {CHECKED_IN, CONFIRMED},  # undo check-in / undo confirm
    CONFIRMED: {BOOKED},
    NO_SHOW: {BOOKED, CONFIRMED},
    CANCELLED: {BOOKED, CONFIRMED, CHECKED_IN},
    CLOSED: {BOOKED, CONFIRMED, CHECKED_IN},
}


def set_status(sb: Sandbox, org: Org, appts: list[Appointment], status: int) -> None:
    """Moves a group (or an invoice's appointments) to ``status`` and sends AppointmentGroup.Status."""
    if any(a.status not in TRANSITIONS.get(status, set()) for a in appts):
        raise bad_request("The appointment status does not allow this action.")
    now = utc(sb.clock())
    for appt in appts:
        appt.status, appt.updated = status, now
        appt.checkin_time = now if status == CHECKED_IN else (None if status == BOOKED else appt.checkin_time)
    for group_id in dict.fromkeys(a.group_id for a in appts):
        group = org.group(group_id)
        sb.webhooks.emit(org.account_name, "AppointmentGroup.Status", render.group_status_event(group, status))


def set_progress(sb: Sandbox, org: Org, appt: Appointment, progress: int) -> None:
    if progress not in (OPEN, STARTED, COMPLETED):
        raise bad_request("Invalid progress.")
    if appt.status in (CANCELLED, NO_SHOW):
        raise bad_request("The appointment status does not allow this action.")
    now = utc(sb.clock())
    appt.progress, appt.updated = progress, now
    appt.actual_start = now if progress == STARTED else (None if progress == OPEN else appt.actual_start or now)
    appt.completed = now if progress == COMPLETED else None
    if progress in (STARTED, COMPLETED):
        event = "Appointment.Started" if progress == STARTED else "Appointment.Completed"
        sb.webhooks.emit(org.account_name, event, render.progress_event(org, appt))


def _group(org: Org, group_id: str) -> list[Appointment]:
    appts = org.group(guid(group_id, "appointment group id"))
    if not appts:
        raise not_found("Appointment group")
    return appts


DONE = {"success": True, "error": None}  # simulator-chosen acknowledgement (the docs show no body)


async def check_in(request: Request, sb: Sandbox, caller: Caller) -> Response:
    set_status(sb, caller.org, _group(caller.org, request.path_params["group_id"]), CHECKED_IN)
    return JSONResponse(DONE)


async def undo_check_in(request: Request, sb: Sandbox, caller: Caller) -> Response:
    appts = _group(caller.org, request.path_params["group_id"])
    if any(a.status != CHECKED_IN for a in appts):
        raise bad_request("The appointment is not checked in.")
    set_status(sb, caller.org, appts, BOOKED)
    return JSONResponse(DONE)


async def no_show(request: Request, sb: Sandbox, caller: Caller) -> Response:
    set_status(sb, caller.org, _group(caller.org, request.path_params["group_id"]), NO_SHOW)
    return JSONResponse(DONE)


async def cancel_invoice(request: Request, sb: Sandbox, caller: Caller) -> Response:
    """PUT /v1/invoices/{invoice_id}/cancel ``{comments?}``: cancels the booking's appointments."""
    org = caller.org
    appts = org.invoice(guid(request.path_params["invoice_id"], "invoice id"))
    if not appts:
        raise not_found("Invoice")
    if any(a.status == CLOSED for a in appts):
        raise bad_request("A closed invoice cannot be cancelled.")
    set_status(sb, org, appts, CANCELLED)
    return JSONResponse(DONE)


async def progress(request: Request, sb: Sandbox, caller: Caller) -> Response:
    """PUT /v1/appointments/{appointment_id}/progress ``{progress: 0 open | 1 started | 2 completed}``."""
    appt = find(caller.org, request.path_params["appointment_id"])
    body = await json_object(request)
    value = body.get("progress")
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad_request("Invalid progress.")
    set_progress(sb, caller.org, appt, value)
    return JSONResponse(DONE)
