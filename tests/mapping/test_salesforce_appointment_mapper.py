"""Salesforce ServiceAppointment <-> FHIR Appointment: the status table, times, patient, subject,
description, appointment type; field errors naming the Salesforce field, never a value; round trips."""

from __future__ import annotations

import logging

import pytest

from libs import fhir_appointment as fa
from services.mapping.domain import RecordInvalid
from services.mapping.mappers import default_mappers
from services.mapping.mappers.salesforce_appointments import (
    APPOINTMENT_ID_SYSTEM,
    APPOINTMENT_TYPE_SYSTEM,
    CONCORD_ID_SYSTEM,
    TO_HUB_STATUS,
    TO_SALESFORCE_STATUS,
    SalesforceAppointmentMapper,
)

MAPPER = SalesforceAppointmentMapper()
ACCOUNT_ID = "001000000000001AAA"
NOTES = "Discuss Zyxwvut biopsy results"  # PHI canary
RECORD = {
    "Id": "08p000000000001AAA",
    "ParentRecordId": ACCOUNT_ID,
    "AccountId": ACCOUNT_ID,
    "SchedStartTime": "2026-03-02T14:00:00.000+0000",
    "SchedEndTime": "2026-03-02T14:45:00.000+0000",
    "Status": "Scheduled",
    "Subject": "Annual physical",
    "Description": NOTES,
    "AppointmentType": "Video",
    "Concord_Appointment_Id__c": "hub-appt-1",
    "SystemModstamp": "2026-02-01T12:00:00.000+0000",
}


def test_a_service_appointment_maps_to_a_booked_appointment_of_the_account() -> None:
    result = MAPPER.to_hub(RECORD)

    appointment = result.resource
    assert result.external_id == RECORD["Id"]
    assert appointment["identifier"] == [
        {"system": APPOINTMENT_ID_SYSTEM, "value": RECORD["Id"]},
        {"system": CONCORD_ID_SYSTEM, "value": "hub-appt-1"},
    ]
    assert fa.project(appointment) == {
        "status": "booked",
        "start": "2026-03-02T14:00:00Z",
        "end": "2026-03-02T14:45:00Z",
        "service_code": None,
        "service_name": "Annual physical",
        "patient": f"external:{ACCOUNT_ID}",
        "description": NOTES,
    }
    assert appointment["participant"][0]["actor"] == fa.external_actor(ACCOUNT_ID)
    assert appointment["appointmentType"] == {"coding": [{"system": APPOINTMENT_TYPE_SYSTEM, "code": "Video"}]}


@pytest.mark.parametrize(("salesforce", "fhir"), sorted(TO_HUB_STATUS.items()))
def test_every_status_maps_both_ways_by_the_table(salesforce: str, fhir: str) -> None:
    assert fa.project(MAPPER.to_hub({**RECORD, "Status": salesforce}).resource)["status"] == fhir
    back = TO_SALESFORCE_STATUS[fhir]
    assert back == ("Scheduled" if salesforce == "Dispatched" else salesforce)  # Dispatched is still booked


@pytest.mark.parametrize("status", fa.STATUSES)
def test_every_fhir_status_has_a_salesforce_status(status: str) -> None:
    appointment = fa.apply(MAPPER.to_hub(RECORD).resource, {"status": status})

    assert MAPPER.to_vendor(appointment)["Status"] == TO_SALESFORCE_STATUS[status]


def test_a_hub_appointment_goes_to_salesforce_under_its_hub_id_and_the_account_as_parent() -> None:
    hub = {
        "resourceType": "Appointment",
        "id": "hub-appt-9",
        "status": "booked",
        "start": "2026-03-02T09:00:00-05:00",
        "end": "2026-03-02T09:30:00-05:00",
        "serviceType": [{"coding": [{"system": "urn:concord:service", "code": "PHYS"}], "text": "Annual physical"}],
        "description": NOTES,
        "participant": [{"actor": fa.external_actor(ACCOUNT_ID), "status": "accepted"}],
    }

    assert MAPPER.to_vendor(hub) == {
        "ParentRecordId": ACCOUNT_ID,
        "AccountId": ACCOUNT_ID,
        "Status": "Scheduled",
        "SchedStartTime": "2026-03-02T14:00:00Z",
        "SchedEndTime": "2026-03-02T14:30:00Z",
        "Subject": "Annual physical",
        "Description": NOTES,
        "Concord_Appointment_Id__c": "hub-appt-9",
    }


@pytest.mark.parametrize("status", sorted(set(TO_HUB_STATUS)))
def test_salesforce_to_hub_to_salesforce_keeps_every_field(status: str) -> None:
    record = {**RECORD, "Status": "Scheduled" if status == "Dispatched" else status}
    hub = MAPPER.to_hub(record).resource

    written = MAPPER.to_vendor({**hub, "id": record["Concord_Appointment_Id__c"]})

    again = MAPPER.to_hub({**written, "Id": record["Id"]}).resource
    assert fa.project(again) == fa.project(hub)
    assert {k: written[k] for k in ("ParentRecordId", "Status", "Subject", "Description", "AppointmentType")} == {
        k: record[k] for k in ("ParentRecordId", "Status", "Subject", "Description", "AppointmentType")
    }


def test_hub_to_salesforce_to_hub_keeps_the_projection() -> None:
    hub = fa.apply(
        {"resourceType": "Appointment", "status": "proposed"},
        {
            "status": "arrived",
            "start": "2026-04-01T15:00:00Z",
            "end": "2026-04-01T15:20:00Z",
            "service_name": "Flu shot",
            "patient": f"external:{ACCOUNT_ID}",
            "description": NOTES,
        },
    )

    back = MAPPER.to_hub({**MAPPER.to_vendor(hub), "Id": RECORD["Id"]}).resource

    assert fa.project(back) == fa.project(hub)


def test_errors_name_the_salesforce_field_and_never_the_value(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    broken = {
        **RECORD,
        "Status": f"Lost {NOTES}",
        "ParentRecordId": None,
        "SchedStartTime": f"sometime {NOTES}",
        "AppointmentType": NOTES,
    }

    with pytest.raises(RecordInvalid) as raised:
        MAPPER.to_hub(broken)

    assert raised.value.external_id == RECORD["Id"]
    assert {(e.field, e.reason) for e in raised.value.errors} == {
        ("Status", "INVALID_CODE"),
        ("ParentRecordId", "MISSING_PATIENT"),
        ("SchedStartTime", "INVALID_DATE"),
        ("AppointmentType", "INVALID_CODE"),
    }
    assert "Zyxwvut" not in repr(raised.value.errors) + str(raised.value) + caplog.text


def test_a_booked_appointment_needs_its_times_a_proposed_one_does_not() -> None:
    with pytest.raises(RecordInvalid) as raised:
        MAPPER.to_hub({**RECORD, "SchedEndTime": None})
    assert [(e.field, e.reason) for e in raised.value.errors] == [("SchedEndTime", "MISSING_TIME")]

    untimed = MAPPER.to_hub({**RECORD, "Status": "None", "SchedStartTime": None, "SchedEndTime": None})
    assert fa.project(untimed.resource)["start"] is None


def test_an_appointment_of_an_unlinked_patient_is_not_written() -> None:
    hub = fa.set_patient_reference(MAPPER.to_hub(RECORD).resource, "Patient/hub-p-1")

    with pytest.raises(RecordInvalid) as raised:
        MAPPER.to_vendor(hub)

    assert [(e.field, e.reason) for e in raised.value.errors] == [("participant", "PATIENT_NOT_LINKED")]


def test_it_is_registered_for_salesforce_appointments() -> None:
    assert isinstance(default_mappers()[("salesforce", "ENTITY_TYPE_APPOINTMENT")], SalesforceAppointmentMapper)
