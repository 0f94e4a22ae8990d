"""Hub appointments -> Zenoti, through its booking flow, and provider availability.

Zenoti has no "create appointment" call: a booking is made in steps, every one on the center's wall
clock (so the config names the center's IANA zone, ``options.booking.center_time_zone``):

    POST /v1/bookings {center_id, date, guests: [{id, items: [{item: {id}, therapist: {id}}]}]}
    POST /v1/bookings/{id}/slots/reserve {slot_time}      refused -> the record fails SLOT_UNAVAILABLE
    POST /v1/bookings/{id}/slots/confirm {notes}          -> invoice.appointments[0].id

A reschedule is the same flow with the confirmed booking's ``invoice_id`` (on the guest) and
``invoice_item_id`` (on the item); confirming moves the same appointment. Status changes are their own
calls: cancel is the invoice's (``PUT /v1/invoices/{id}/cancel``), check-in, undo check-in and no-show
the group's. Before booking, the guest's appointments of that day are read: one already there with
the same service at the same time is this record (a retried batch, or a confirm whose answer was
lost), adopted instead of booked twice.

Availability reads the slots of a booking made for the day and never reserved (nothing is held).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from temporalio.exceptions import ApplicationError

from libs.protos.concord.registry.v1 import registry_pb2
from services.adapters.zenoti.client import ZenotiClient, ZenotiError, ZenotiMalformed

BOOKED, CONFIRMED, CHECKED_IN, CLOSED, CANCELLED, NO_SHOW = 0, 4, 2, 1, -1, -2
MOVABLE = (BOOKED, CONFIRMED)
WALL_CLOCK = "%Y-%m-%dT%H:%M:%S"


def center_zone(options: registry_pb2.VendorOptions) -> ZoneInfo:
    """The connected center's time zone, which every booking call speaks; a config error when unset."""
    name = options.booking.center_time_zone
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ApplicationError(
            "CENTER_TIME_ZONE_MISSING: set the config's options.booking.center_time_zone (IANA) to book at Zenoti",
            type="FailedPrecondition",
            non_retryable=True,
        ) from None


def refused(reason: str, message: str) -> ZenotiError:
    """A refusal of this one record (the rest of the batch goes on); the message names no value."""
    return ZenotiError(400, reason, message)


def _malformed(what: str) -> ApplicationError:
    return ApplicationError(f"malformed booking answer: {what}", type="VendorMalformedPage")


@dataclass(frozen=True)
class Intent:
    """What the mapper asks for (services/mapping/mappers/zenoti_appointments.py ``to_vendor``)."""

    guest_id: str
    service_id: str
    therapist_id: str | None
    start_utc: datetime | None
    status: int
    notes: str | None

    @classmethod
    def of(cls, record: dict) -> Intent:
        raw = record.get("start_time_utc")
        start = _utc_of(record)
        if raw and start is None:  # this record fails alone; the message names no value
            raise refused("INVALID_START_TIME", "start_time_utc is not a date and time")
        notes = record.get("notes")
        return cls(
            guest_id=str(record.get("guest_id") or ""),
            service_id=str(record.get("service_id") or ""),
            therapist_id=record.get("therapist_id") or None,
            start_utc=start,
            status=int(record.get("status") or 0),
            notes=notes if isinstance(notes, str) else None,
        )


def _local(moment: datetime, zone: ZoneInfo) -> datetime:
    return moment.astimezone(zone).replace(tzinfo=None)


def _utc_of(record: dict) -> datetime | None:
    raw = record.get("start_time_utc")
    try:
        return datetime.fromisoformat(raw).replace(tzinfo=UTC) if isinstance(raw, str) and raw else None
    except ValueError:
        return None


async def _json(client: ZenotiClient, method: str, path: str, **kwargs: Any) -> Any:
    try:
        return await client.request(method, path, **kwargs)
    except ZenotiMalformed:
        raise _malformed(f"{method} {path.split('/')[2]} is not JSON") from None


async def get_appointment(client: ZenotiClient, appointment_id: str) -> dict:
    """``GET /v1/appointments/{id}``: the same object as in the window list (a 404 is a ZenotiError)."""
    appointment = await _json(client, "GET", f"/v1/appointments/{appointment_id}")
    if not isinstance(appointment, dict) or not appointment.get("appointment_id"):
        raise _malformed("the appointment has no id")
    return appointment


class Booker:
    """The writes of ENTITY_TYPE_APPOINTMENT and the availability reads, for one activity."""

    def __init__(self, client: ZenotiClient, center_id: str, zone: ZoneInfo) -> None:
        self._client = client
        self._center_id = center_id
        self._zone = zone

    # --- writes -----------------------------------------------------------------------------------

    async def write(self, appointment_id: str, record: dict) -> tuple[dict, bool]:
        intent = Intent.of(record)
        if appointment_id:
            return await self._update(appointment_id, intent), False
        if intent.start_utc is None or intent.status in (CANCELLED, NO_SHOW):
            raise refused(
                "NOT_BOOKABLE", "Zenoti books an appointment only for a time, and not as cancelled or no-show"
            )
        found = await self._already_booked(intent)
        if found is not None:
            return await self._update(found, intent), False
        appointment_id = await self._book(intent)
        current = await self._get(appointment_id)
        return await self._set_status(current, intent.status), True

    async def _update(self, appointment_id: str, intent: Intent) -> dict:
        current = await self._get(appointment_id)
        status = current.get("status")
        if intent.status == CANCELLED:
            if status != CANCELLED:
                await self._cancel(current)
                current = await self._get(appointment_id)
            return current
        if self._moved(current, intent):
            if status not in MOVABLE:
                raise refused("NOT_RESCHEDULABLE", "Zenoti reschedules only booked or confirmed appointments")
            await self._book(intent, moving=current)
            current = await self._get(appointment_id)
        return await self._set_status(current, intent.status)

    def _moved(self, current: dict, intent: Intent) -> bool:
        service = (current.get("service") or {}).get("id")
        therapist = (current.get("therapist") or {}).get("id")
        return (
            (intent.start_utc is not None and intent.start_utc != _utc_of(current))
            or intent.service_id.lower() != str(service or "").lower()
            or (intent.therapist_id is not None and intent.therapist_id.lower() != str(therapist or "").lower())
        )

    async def _set_status(self, current: dict, wanted: int) -> dict:
        """One call moves an appointment between booked, checked in and no-show; Zenoti closes an
        appointment only with its paid invoice, and never reopens a cancelled or no-show one."""
        status, group = current.get("status"), current.get("appointment_group_id")
        same = {BOOKED: MOVABLE}.get(wanted, (wanted,))
        if status in same:
            return current
        if wanted == CHECKED_IN and status in MOVABLE:
            call = "check_in"
        elif wanted == BOOKED and status == CHECKED_IN:
            call = "undo_check_in"
        elif wanted == NO_SHOW and status in MOVABLE:
            call = "no_show"
        elif wanted == CLOSED:
            raise refused("STATUS_NOT_WRITABLE", "Zenoti closes an appointment only when its invoice is paid there")
        else:
            raise refused("STATUS_NOT_WRITABLE", "Zenoti does not allow this status change")
        await _json(self._client, "PUT", f"/v1/appointments/{group}/{call}", json={})
        return await self._get(current["appointment_id"])

    async def _cancel(self, current: dict) -> None:
        """Cancelling is the invoice's: refused when the invoice holds other appointments too (a
        front-desk booking of several services), which it would cancel with this one."""
        siblings = [s for s in await self._services_of(current) if s.get("appointment_status") != CANCELLED]
        if len(siblings) > 1:
            raise refused("GROUP_CANCEL_UNSUPPORTED", "the appointment shares its Zenoti invoice with others")
        await _json(self._client, "PUT", f"/v1/invoices/{current['invoice_id']}/cancel", json={})

    async def _book(self, intent: Intent, moving: dict | None = None) -> str:
        """booking -> reserve -> confirm; the appointment's id (the moved one's for a reschedule)."""
        local = _local(intent.start_utc, self._zone)
        item: dict[str, Any] = {"item": {"id": intent.service_id}}
        if intent.therapist_id:
            item["therapist"] = {"id": intent.therapist_id}
        guest: dict[str, Any] = {"id": intent.guest_id, "items": [item]}
        if moving is not None:
            guest["invoice_id"] = moving["invoice_id"]
            item["invoice_item_id"] = await self._invoice_item_of(moving)
        booking_id = await self._new_booking(local.date(), guest)
        try:
            reserved = await _json(
                self._client,
                "POST",
                f"/v1/bookings/{booking_id}/slots/reserve",
                json={"slot_time": local.strftime(WALL_CLOCK)},
            )
        except ZenotiError as error:
            if error.status != 400:
                raise
            reserved = {"is_reserved": False}
        if not isinstance(reserved, dict) or reserved.get("is_reserved") is not True:
            raise refused("SLOT_UNAVAILABLE", "Zenoti has no free slot for this service and provider at that time")
        body = {"notes": intent.notes} if intent.notes else {}
        confirmed = await _json(self._client, "POST", f"/v1/bookings/{booking_id}/slots/confirm", json=body)
        if moving is not None:
            return moving["appointment_id"]
        appointments = (
            ((confirmed or {}).get("invoice") or {}).get("appointments") if isinstance(confirmed, dict) else None
        )
        if not appointments or not isinstance(appointments[0], dict) or not appointments[0].get("id"):
            raise _malformed("the confirmed booking names no appointment")
        return appointments[0]["id"]

    async def _new_booking(self, day: date, guest: dict) -> str:
        body = {"center_id": self._center_id, "date": day.isoformat(), "is_only_catalog_employees": False,
                "guests": [guest]}  # fmt: skip
        created = await _json(self._client, "POST", "/v1/bookings", json=body)
        if not isinstance(created, dict) or not isinstance(created.get("id"), str):
            raise _malformed("the booking has no id")
        return created["id"]

    async def _already_booked(self, intent: Intent) -> str | None:
        """The guest's appointment of this service at this time, unless cancelled: a booking an
        earlier attempt made (or the front desk did)."""
        local = _local(intent.start_utc, self._zone)
        wanted = local.strftime(WALL_CLOCK)
        for service in await self._guest_services(intent.guest_id, local.date()):
            if (
                str((service.get("service") or {}).get("id") or "").lower() == intent.service_id.lower()
                and service.get("start_time") == wanted
                and service.get("appointment_status") not in (CANCELLED, NO_SHOW)
                and service.get("appointment_id")
            ):
                return service["appointment_id"]
        return None

    async def _services_of(self, current: dict) -> list[dict]:
        """The appointments on ``current``'s invoice, as the guest's appointment list shows them."""
        guest = (current.get("guest") or {}).get("id") or ""
        day = datetime.fromisoformat(current["start_time"]).date()
        groups = await self._guest_groups(guest, day)
        return [
            s for g in groups if g.get("invoice_id") == current.get("invoice_id") for s in g["appointment_services"]
        ]

    async def _invoice_item_of(self, current: dict) -> str:
        for service in await self._services_of(current):
            if service.get("appointment_id") == current["appointment_id"] and service.get("invoice_item_id"):
                return service["invoice_item_id"]
        raise _malformed("the guest's appointments do not list the appointment's invoice item")

    async def _guest_services(self, guest_id: str, day: date) -> Iterator[dict]:
        return (s for g in await self._guest_groups(guest_id, day) for s in g["appointment_services"])

    async def _guest_groups(self, guest_id: str, day: date) -> list[dict]:
        params = {"start_date": day.isoformat(), "end_date": day.isoformat(), "page": 1, "size": 100}
        body = await _json(self._client, "GET", f"/v1/guests/{guest_id}/appointments", params=params)
        groups = body.get("appointments") if isinstance(body, dict) else None
        if not isinstance(groups, list) or not all(
            isinstance(g, dict) and isinstance(g.get("appointment_services"), list) for g in groups
        ):
            raise _malformed("the guest's appointments are not a list of groups")
        return groups

    async def _get(self, appointment_id: str) -> dict:
        return await get_appointment(self._client, appointment_id)

    # --- availability ---------------------------------------------------------------------------

    async def available(
        self, guest_id: str, service_id: str, therapist_id: str, first: date, days: int
    ) -> list[tuple[datetime, str]]:
        """(UTC start, wall-clock start) of every free slot on ``days`` days from ``first``: one
        booking and one slots read a day (2 calls), nothing reserved."""
        item: dict[str, Any] = {"item": {"id": service_id}}
        if therapist_id:
            item["therapist"] = {"id": therapist_id}
        found: list[tuple[datetime, str]] = []
        for n in range(days):
            booking_id = await self._new_booking(first + timedelta(days=n), {"id": guest_id, "items": [item]})
            body = await _json(self._client, "GET", f"/v1/bookings/{booking_id}/slots")
            slots = body.get("slots") if isinstance(body, dict) else None
            if not isinstance(slots, list):
                raise _malformed("no slot list")
            for slot in slots:
                if isinstance(slot, dict) and slot.get("Available") is True and isinstance(slot.get("Time"), str):
                    wall = datetime.fromisoformat(slot["Time"])
                    found.append((wall.replace(tzinfo=self._zone).astimezone(UTC), wall.strftime(WALL_CLOCK)))
        return found
