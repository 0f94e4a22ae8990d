"""Zenoti appointment <-> FHIR Appointment: status table, UTC times, guest and therapist
participants, treatment notes in comment; field errors name the field, never a value; round trip."""

from __future__ import annotations

import copy
import logging

import pytest

from libs import fhir_appointment as fa
from services.mapping.domain import RecordInvalid
from services.mapping.mappers import default_mappers
from services.mapping.mappers.zenoti_appointments import (
    APPOINTMENT_ID_SYSTEM,
    THERAPIST_ID_SYSTEM,
    TO_HUB_STATUS,
    ZenotiAppointmentMapper,
    therapist_id,
)

MAPPER = ZenotiAppointmentMapper()
NOTES = "Treatment note: Qwxyzzy's laser session, reaction on left cheek"  # PHI canary
RECORD = {
    "appointment_id": "a1b2c3d4-0000-4000-8000-000000000001",
    "appointment_group_id": "g1",
    "service": {"id": "svc-1", "name": "Laser facial"},
    "start_time": "2026-12-03T09:30:00",
    "start_time_utc": "2026-12-03T14:30:00",
    "end_time": "2026-12-03T10:30:00",
    "end_time_utc": "2026-12-03T15:30:00",
    "status": 4,
    "guest": {"id": "guest-1", "first_name": "Qwxyzzy", "last_name": "Plorp"},
    "therapist": {"id": "ther-1", "first_name": "Ann"},
    "notes": NOTES,
}


def test_registered():
    assert isinstance(default_mappers()[("zenoti", "ENTITY_TYPE_APPOINTMENT")], ZenotiAppointmentMapper)


def test_to_hub_maps_times_participants_and_notes():
    result = MAPPER.to_hub(RECORD)
    appt = result.resource
    assert result.external_id == RECORD["appointment_id"]
    assert appt["status"] == "booked"
    assert fa.instant(appt["start"]) == "2026-12-03T14:30:00Z"
    assert fa.instant(appt["end"]) == "2026-12-03T15:30:00Z"
    assert {"system": APPOINTMENT_ID_SYSTEM, "value": RECORD["appointment_id"]} in appt["identifier"]
    assert fa.project(appt)["service_code"] == "svc-1"
    assert fa.project(appt)["service_name"] == "Laser facial"
    assert fa.patient_participant(appt)["actor"] == fa.external_actor("guest-1")
    assert therapist_id(appt) == "ther-1"
    assert appt["comment"] == NOTES


@pytest.mark.parametrize(("zenoti", "fhir"), sorted(TO_HUB_STATUS.items()))
def test_status_table(zenoti, fhir):
    assert MAPPER.to_hub({**RECORD, "status": zenoti}).resource["status"] == fhir
    assert MAPPER.to_hub({**RECORD, "status": float(zenoti)}).resource["status"] == fhir  # via a Struct


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        ({"status": 7}, "status", "INVALID_CODE"),
        ({"guest": None}, "guest.id", "MISSING_PATIENT"),
        ({"service": {"name": "x"}}, "service.id", "MISSING_SERVICE"),
        ({"start_time_utc": "tomorrow"}, "start_time_utc", "INVALID_DATE"),
        ({"end_time_utc": None}, "end_time_utc", "MISSING_TIME"),
        ({"notes": 5}, "notes", "INVALID_TYPE"),
    ],
)
def test_bad_record_rejected_with_reason_and_no_phi(change, field, reason, caplog):
    caplog.set_level(logging.DEBUG)
    with pytest.raises(RecordInvalid) as raised:
        MAPPER.to_hub({**RECORD, **change})
    assert (field, reason) in {(e.field, e.reason) for e in raised.value.errors}
    text = repr(raised.value.errors) + str(raised.value) + caplog.text
    assert "Qwxyzzy" not in text and NOTES not in text


def test_round_trip_to_booking_intent():
    appt = copy.deepcopy(MAPPER.to_hub(RECORD).resource)
    appt["id"] = "hub-appt-1"
    intent = MAPPER.to_vendor(appt)
    assert intent == {
        "guest_id": "guest-1",
        "service_id": "svc-1",
        "therapist_id": "ther-1",
        "start_time_utc": "2026-12-03T14:30:00",
        "status": 0,
        "notes": NOTES,
        "concord_id": "hub-appt-1",
    }


def test_to_vendor_refuses_unlinked_patient_and_missing_service():
    appt = MAPPER.to_hub(RECORD).resource
    appt = fa.set_patient_reference(appt, "Patient/hub-1")
    appt["serviceType"] = [{"text": "Laser facial"}]
    with pytest.raises(RecordInvalid) as raised:
        MAPPER.to_vendor(appt)
    reasons = {e.reason for e in raised.value.errors}
    assert reasons == {"PATIENT_NOT_LINKED", "MISSING_SERVICE"}
    assert NOTES not in repr(raised.value.errors)


def test_therapist_participant_system():
    appt = MAPPER.to_hub(RECORD).resource
    actors = [p["actor"] for p in appt["participant"] if p["actor"].get("type") == "Practitioner"]
    assert actors == [{"type": "Practitioner", "identifier": {"system": THERAPIST_ID_SYSTEM, "value": "ther-1"}}]
