"""Zenoti appointment pushes through the real booking flow (booking -> slots -> reserve -> confirm)
and provider availability, by the real adapter against the sandbox over HTTP: a retried batch adopts
what the first attempt booked, a reschedule moves the same appointment, a taken slot fails that
record alone (SLOT_UNAVAILABLE), statuses map to Zenoti's calls, and availability holds nothing."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from temporalio.exceptions import ApplicationError

from libs.protos.concord.adapter.v1 import adapter_pb2 as pb
from libs.protos.concord.common.v1 import common_pb2
from libs.protos.concord.registry.v1 import registry_pb2 as rpb
from libs.settings import Settings
from services.mapping.mappers.zenoti_appointments import ZenotiAppointmentMapper
from tests.adapters.conftest import plain, response_statuses, struct
from tests.adapters.harness_zenoti import ZenotiHarness
from tests.adapters.test_zenoti_adapter import _zenoti

APPOINTMENT = common_pb2.ENTITY_TYPE_APPOINTMENT
BOSTON = ZoneInfo("America/New_York")
OPTIONS = rpb.VendorOptions(booking=rpb.BookingOptions(center_time_zone="America/New_York"))
NOTES = "Treatment note: Vrexlin peel for Quorra Bramblewick"  # PHI canary


@pytest.fixture
async def zenoti(settings: Settings) -> AsyncIterator[ZenotiHarness]:
    async with _zenoti(settings) as (harness, _):
        yield harness


def _at(days: int, hour: int, minute: int = 0) -> datetime:
    """A wall-clock time at the Boston center, ``days`` from today, as a UTC instant."""
    day = datetime.now(BOSTON).date() + timedelta(days=days)
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=BOSTON).astimezone(UTC)


def _intent(guest: str, service: str, start: datetime, *, therapist: str | None = None, status: int = 0) -> dict:
    """What the mapper's to_vendor hands the adapter."""
    return {
        "guest_id": guest,
        "service_id": service,
        "therapist_id": therapist,
        "start_time_utc": start.strftime("%Y-%m-%dT%H:%M:%S"),
        "status": status,
        "notes": NOTES,
    }


async def _upsert(
    harness: ZenotiHarness, items: list[tuple[str, dict]], options: rpb.VendorOptions = OPTIONS
) -> pb.UpsertBatchResponse:
    return await harness.adapter.upsert_batch(
        pb.UpsertBatchRequest(
            config_id=harness.config_id,
            entity_type=APPOINTMENT,
            items=[
                pb.UpsertItem(ref=str(n), external_id=eid, record=struct(rec)) for n, (eid, rec) in enumerate(items)
            ],
            options=options,
        )
    )


async def _guest_and_service(harness: ZenotiHarness, code: str = "PEEL") -> tuple[str, str, int]:
    """A guest made at Zenoti, and the catalog service of ``code`` (its id and minutes)."""
    guest = (await harness.seed(1))[0]
    service = next(s for s in harness.org.services.values() if s.code == code)
    return guest, service.id, service.duration


async def _another_guest(harness: ZenotiHarness) -> str:
    record = {**harness.new_records(2)[1], "center_id": harness.center_id}
    response = await harness.http.post(
        f"{harness.sandbox_url}/v1/guests", json=record, headers={"Authorization": f"apikey {harness.org.api_key}"}
    )
    assert response.status_code == 200, response.text
    return response.json()["id"]


def _therapists(harness: ZenotiHarness) -> list[str]:
    staff = [t for t in harness.org.therapists.values() if t.center_id == harness.center_id]
    return [t.id for t in sorted(staff, key=lambda t: t.code)]


async def test_booking_then_a_retried_batch_adopts_the_appointment(zenoti: ZenotiHarness, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    guest, service, duration = await _guest_and_service(zenoti)
    start = _at(2, 10)
    first = await _upsert(zenoti, [("", _intent(guest, service, start))])
    (result,) = first.results
    assert result.success and result.created, result.error_message
    booked = zenoti.org.appointments[result.external_id]
    assert (booked.guest_id, booked.service_id, booked.start, booked.notes) == (guest, service, start, NOTES)
    assert booked.end == start + timedelta(minutes=duration)
    assert plain(result.record)["appointment_id"] == result.external_id
    # The record the adapter returns reads back through the mapper as the hub's appointment.
    hub = ZenotiAppointmentMapper().to_hub(plain(result.record)).resource
    assert hub["start"] == start.strftime("%Y-%m-%dT%H:%M:%SZ") and hub["comment"] == NOTES

    # Retried as if the first answer was lost: the appointment is found on the guest's day, not booked again.
    again = await _upsert(zenoti, [("", _intent(guest, service, start))])
    assert again.results[0].success and not again.results[0].created
    assert again.results[0].external_id == result.external_id
    assert [a.id for a in zenoti.org.appointments.values() if a.guest_id == guest] == [result.external_id]
    assert NOTES not in caplog.text and "Bramblewick" not in caplog.text


async def test_reschedule_moves_the_same_appointment_and_statuses_map_to_zenoti_calls(zenoti: ZenotiHarness) -> None:
    guest, service, _ = await _guest_and_service(zenoti)
    therapist = _therapists(zenoti)[2]
    start = _at(3, 11)
    (made,) = (await _upsert(zenoti, [("", _intent(guest, service, start, therapist=therapist))])).results
    appointment_id, invoice = made.external_id, zenoti.org.appointments[made.external_id].invoice_id

    later = _at(3, 14, 30)
    (moved,) = (await _upsert(zenoti, [(appointment_id, _intent(guest, service, later, therapist=therapist))])).results
    assert moved.success and not moved.created and moved.external_id == appointment_id
    appt = zenoti.org.appointments[appointment_id]
    assert (appt.start, appt.therapist_id, appt.invoice_id) == (later, therapist, invoice)
    assert len([a for a in zenoti.org.appointments.values() if a.guest_id == guest]) == 1

    async def to(status: int) -> pb.UpsertResult:
        return (await _upsert(zenoti, [(appointment_id, _intent(guest, service, later, status=status))])).results[0]

    assert (await to(2)).success and zenoti.org.appointments[appointment_id].status == 2  # check-in
    assert (await to(0)).success and zenoti.org.appointments[appointment_id].status == 0  # undo check-in
    closed = await to(1)
    assert (closed.success, closed.error_reason) == (False, "STATUS_NOT_WRITABLE")
    assert NOTES not in closed.error_message
    assert (await to(-1)).success and zenoti.org.appointments[appointment_id].status == -1  # the invoice cancelled
    unmoved = (await _upsert(zenoti, [(appointment_id, _intent(guest, service, start))])).results[0]
    assert (unmoved.success, unmoved.error_reason) == (False, "NOT_RESCHEDULABLE")


async def test_a_taken_slot_fails_that_record_alone(zenoti: ZenotiHarness) -> None:
    guest, service, _ = await _guest_and_service(zenoti)
    other = await _another_guest(zenoti)
    therapist = _therapists(zenoti)[0]
    start = _at(4, 9, 30)
    response = await _upsert(
        zenoti,
        [
            ("", _intent(guest, service, start, therapist=therapist)),
            ("", _intent(other, service, _at(4, 13), therapist=therapist)),
        ],
    )
    assert [r.success for r in response.results] == [True, True]
    clash = (await _upsert(zenoti, [("", _intent(other, service, start, therapist=therapist))])).results[0]
    assert (clash.success, clash.error_reason) == (False, "SLOT_UNAVAILABLE")
    assert NOTES not in clash.error_message and "Quorra" not in clash.error_message
    assert not any(b.reservation_id for b in zenoti.org.bookings.values() if not b.confirmed)
    outside = (await _upsert(zenoti, [("", _intent(other, service, _at(4, 20)))])).results[0]  # after closing
    assert outside.error_reason == "SLOT_UNAVAILABLE"
    cancelled = (await _upsert(zenoti, [("", _intent(other, service, _at(5, 10), status=-1))])).results[0]
    assert cancelled.error_reason == "NOT_BOOKABLE"


async def test_without_the_center_time_zone_nothing_is_sent(zenoti: ZenotiHarness) -> None:
    guest, service, _ = await _guest_and_service(zenoti)
    statuses = response_statuses(zenoti.adapter)
    with pytest.raises(ApplicationError) as refused:
        await _upsert(zenoti, [("", _intent(guest, service, _at(2, 10)))], options=rpb.VendorOptions())
    assert refused.value.non_retryable and refused.value.type == "FailedPrecondition"
    assert "CENTER_TIME_ZONE_MISSING" in refused.value.message
    assert statuses == []


def _availability(harness: ZenotiHarness, guest: str, service: str, therapist: str, day: datetime, days: int = 1):
    return harness.adapter.get_availability(
        pb.GetAvailabilityRequest(
            config_id=harness.config_id,
            patient_external_id=guest,
            service_external_id=service,
            provider_external_id=therapist,
            date=day.astimezone(BOSTON).date().isoformat(),
            days=days,
            options=OPTIONS,
        )
    )


async def test_availability_lists_free_slots_and_holds_nothing(zenoti: ZenotiHarness) -> None:
    guest, service, duration = await _guest_and_service(zenoti)
    therapist = _therapists(zenoti)[1]
    day = _at(2, 9)
    free = await _availability(zenoti, guest, service, therapist, day, days=2)
    starts = [s.start.ToDatetime(tzinfo=UTC) for s in free.slots]
    assert starts[0] == day  # the center opens at 09:00
    assert {s.astimezone(BOSTON).date() for s in starts} == {day.astimezone(BOSTON).date(), _at(3, 9).date()}
    assert free.slots[0].local_start == day.astimezone(BOSTON).strftime("%Y-%m-%dT%H:%M:%S")
    assert free.vendor_requests == 4  # a booking and its slots, per day
    assert not any(b.reservation_id for b in zenoti.org.bookings.values())  # nothing reserved

    taken = _at(2, 11)
    (booked,) = (await _upsert(zenoti, [("", _intent(guest, service, taken, therapist=therapist))])).results
    assert booked.success
    after = await _availability(zenoti, guest, service, therapist, day)
    left = {s.start.ToDatetime(tzinfo=UTC) for s in after.slots}
    assert taken not in left and taken - timedelta(minutes=15) not in left  # the service would overlap it
    assert taken + timedelta(minutes=duration) in left

    with pytest.raises(ApplicationError) as past:
        await _availability(zenoti, guest, service, therapist, _at(-2, 9))
    assert past.value.non_retryable and past.value.type == "InvalidArgument"
