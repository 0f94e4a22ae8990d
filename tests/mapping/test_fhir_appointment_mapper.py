"""FHIR Appointment at an EMR <-> the hub's FHIR Appointment, both ways, as pure functions."""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest
from google.protobuf import json_format, struct_pb2

from libs import fhir_appointment
from services.adapters.fhir.resources import APPOINTMENT
from services.mapping import rules
from services.mapping.domain import RecordInvalid
from services.mapping.mappers import default_mappers
from services.mapping.mappers.fhir_appointments import HUB_ID_SYSTEM, FhirAppointmentMapper

MAPPER = FhirAppointmentMapper()
EMR_APPOINTMENT = {
    "resourceType": "Appointment",
    "id": "appt-9",
    "meta": {"versionId": "3", "lastUpdated": "2024-05-01T10:00:00.000+00:00", "source": "#emr-1"},
    "text": {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">Check-up</div>'},
    "identifier": [
        {"system": "urn:oid:1.2.3.4", "value": "EMR-APPT-1"},
        {"system": HUB_ID_SYSTEM, "value": "hub-of-another-practice"},
    ],
    "status": "booked",
    "serviceType": [{"coding": [{"system": "http://snomed.info/sct", "code": "394814009"}], "text": "General"}],
    "description": "Annual check-up",
    "start": "2024-06-03T09:00:00-04:00",
    "end": "2024-06-03T09:30:00-04:00",
    "minutesDuration": 30,
    "participant": [
        {
            "actor": {"reference": "Patient/emr-pat-1", "display": "Ann Smith"},
            "status": "accepted",
            "required": "required",
        },
        {"actor": {"reference": "Practitioner/dr-2"}, "status": "accepted"},
    ],
}


def _through_struct(record: dict) -> dict:
    """What the adapter's activities carry: a protobuf Struct, every number a double."""
    message = struct_pb2.Struct()
    message.update(record)
    return json_format.MessageToDict(message)


def _errors(call, record: dict) -> list[tuple[str, str]]:  # noqa: ANN001
    with pytest.raises(RecordInvalid) as invalid:
        call(record)
    return [(e.field, e.reason) for e in invalid.value.errors]


def test_emr_appointment_to_hub_carries_the_logical_patient_reference() -> None:
    result = MAPPER.to_hub(_through_struct(EMR_APPOINTMENT))

    assert result.external_id == "appt-9"
    hub = result.resource
    assert "id" not in hub and "meta" not in hub and "text" not in hub
    assert hub["identifier"] == [{"system": "urn:oid:1.2.3.4", "value": "EMR-APPT-1"}]  # Concord's own dropped
    assert hub["minutesDuration"] == 30  # a FHIR integer again, not the Struct's double
    assert hub["participant"][0] == {
        "actor": fhir_appointment.external_actor("emr-pat-1"),
        "status": "accepted",
        "required": "required",
    }
    assert hub["participant"][1]["actor"] == {"reference": "Practitioner/dr-2"}
    assert fhir_appointment.project(hub) == {
        "status": "booked",
        "start": "2024-06-03T13:00:00Z",
        "end": "2024-06-03T13:30:00Z",
        "service_code": "394814009",
        "service_name": "General",
        "patient": "external:emr-pat-1",
        "description": "Annual check-up",
    }


def test_round_trip_keeps_the_projection_and_turns_the_patient_back_into_the_emr_reference() -> None:
    hub = {**MAPPER.to_hub(_through_struct(EMR_APPOINTMENT)).resource, "id": "hub-appt-1"}
    body = MAPPER.to_vendor(_through_struct(hub))

    assert fhir_appointment.project(body) == fhir_appointment.project(EMR_APPOINTMENT)
    assert body["participant"][0]["actor"] == {"reference": "Patient/emr-pat-1"}
    assert body["participant"][0]["required"] == "required"
    assert "id" not in body and "meta" not in body
    assert body["identifier"] == [
        {"system": "urn:oid:1.2.3.4", "value": "EMR-APPT-1"},
        {"use": "secondary", "system": HUB_ID_SYSTEM, "value": "hub-appt-1"},
    ]
    assert APPOINTMENT.hub_id(body) == "hub-appt-1"  # what the adapter's conditional create matches on
    # The EMR answers with the same appointment: mapped back, nothing of the projection moved.
    again = MAPPER.to_hub({**body, "id": "appt-9", "meta": {"versionId": "4"}})
    assert fhir_appointment.project(again.resource) == fhir_appointment.project(hub)


def test_hub_changes_reach_the_emr_body() -> None:
    hub = MAPPER.to_hub(EMR_APPOINTMENT).resource
    changed = fhir_appointment.apply(
        hub, {"status": "cancelled", "start": "2024-06-04T14:00:00Z", "end": "2024-06-04T14:20:00Z"}
    )
    body = MAPPER.to_vendor(changed)

    assert (body["status"], body["start"], body["end"]) == ("cancelled", "2024-06-04T14:00:00Z", "2024-06-04T14:20:00Z")
    assert fhir_appointment.patient_reference(body) == "Patient/emr-pat-1"
    assert not any(i["system"] == HUB_ID_SYSTEM for i in body["identifier"])  # no hub id: nothing invented


def test_a_hub_patient_reference_is_not_sent_to_the_emr() -> None:
    hub = MAPPER.to_hub(EMR_APPOINTMENT).resource
    unlinked = fhir_appointment.set_patient_reference(hub, "Patient/hub-patient-1")
    without = {**hub, "participant": hub["participant"][1:]}

    assert _errors(MAPPER.to_vendor, unlinked) == [("participant", "PATIENT_NOT_LINKED")]
    assert _errors(MAPPER.to_vendor, without) == [("participant", "MISSING_PATIENT")]


def test_emr_records_that_cannot_be_mapped_name_the_element_not_the_value() -> None:
    no_patient = {**EMR_APPOINTMENT, "participant": EMR_APPOINTMENT["participant"][1:]}
    contained = copy.deepcopy(EMR_APPOINTMENT)
    contained["participant"][0]["actor"] = {"type": "Patient", "reference": "#p1"}

    assert _errors(MAPPER.to_hub, {**EMR_APPOINTMENT, "status": "tentative"}) == [("status", "INVALID_CODE")]
    assert _errors(MAPPER.to_hub, {**EMR_APPOINTMENT, "resourceType": "Patient"}) == [
        ("resourceType", "INVALID_FHIR_RESOURCE")
    ]
    assert _errors(MAPPER.to_hub, {**EMR_APPOINTMENT, "id": ""}) == [("id", "MISSING_ID")]
    assert _errors(MAPPER.to_hub, no_patient) == [("participant", "MISSING_PATIENT")]
    assert _errors(MAPPER.to_hub, contained) == [("participant.actor", "INVALID_REFERENCE")]
    with pytest.raises(RecordInvalid) as invalid:
        MAPPER.to_hub({**EMR_APPOINTMENT, "start": "next tuesday"})
    assert invalid.value.external_id == "appt-9" and "next tuesday" not in str(invalid.value.errors)


def test_the_mapper_is_registered() -> None:
    assert isinstance(default_mappers()[("fhir", "ENTITY_TYPE_APPOINTMENT")], FhirAppointmentMapper)


def test_the_declared_defaults_as_overrides_change_nothing() -> None:
    """Every default made an override (the engine, not the code, moves each field): the same both ways."""
    defaults = rules.defaults(MAPPER)
    assert {r.hub_field for r in defaults} == set(fhir_appointment.CANONICAL_FIELDS) - {"patient"}
    overrides = [replace(rule, source="override") for rule in defaults]
    rules.validate(MAPPER, MAPPER.entity_type, overrides)
    record = _through_struct(EMR_APPOINTMENT)
    hub = rules.to_hub(MAPPER, record, defaults, overrides).resource
    assert fhir_appointment.project(hub) == fhir_appointment.project(MAPPER.to_hub(record).resource)
    assert rules.to_vendor(MAPPER, hub, defaults, overrides) == MAPPER.to_vendor(hub)
