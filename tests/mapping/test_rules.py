"""Overrides on top of the mappers, pure: one mechanism for hand-written and declarative vendors,
patients and appointments."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import sandbox.plainrest
from libs.errors import InvalidArgument
from libs.fhir_patient import parse_patient, project
from services.adapters.declarative import definition
from services.mapping import rules
from services.mapping.declarative import DeclarativePatientMapper
from services.mapping.domain import RecordInvalid
from services.mapping.mappers.ghl import GhlPatientMapper
from services.mapping.mappers.ghl_appointments import GhlAppointmentMapper
from services.mapping.mappers.salesforce import SalesforcePatientMapper
from services.mapping.mappers.salesforce_appointments import SalesforceAppointmentMapper
from services.mapping.rules import FieldRule

PATIENT, APPOINTMENT = "ENTITY_TYPE_PATIENT", "ENTITY_TYPE_APPOINTMENT"
DEFINITION = json.loads((Path(sandbox.plainrest.__file__).parent / "integration.json").read_text())
PLAINREST = DeclarativePatientMapper("plainrest", definition.parse(DEFINITION).resource(PATIENT))
RESOURCE = {
    "resourceType": "Patient",
    "name": [{"use": "official", "given": ["Ines"], "family": "Marwood"}],
    "telecom": [{"system": "phone", "value": "+16175550123"}],
    "address": [{"city": "Salem", "state": "MA", "country": "US"}],
    "birthDate": "1990-02-03",
}


def _override(hub: str, vendor: str = "", direction: str = "both", transform: str = "identity", **params) -> FieldRule:  # noqa: ANN003
    return FieldRule(PATIENT, hub, vendor, transform, params, direction, "override")


def test_declarative_defaults_are_the_definition_and_overrides_apply_both_ways() -> None:
    defaults = rules.defaults(PLAINREST)
    assert {r.hub_field: r.vendor_field for r in defaults}["phone"] == "mobile"
    overrides = [
        _override("city", direction="none"),
        _override("phone", "extra.phone_national", transform="phone_national"),
    ]
    rules.validate(PLAINREST, PATIENT, overrides)
    record = rules.to_vendor(PLAINREST, RESOURCE, defaults, overrides)
    assert "city" not in record and "mobile" not in record
    assert record["extra"] == {"phone_national": "(617) 555-0123"} and record["first_name"] == "Ines"
    back = rules.to_hub(PLAINREST, {**record, "id": "7", "city": "Lynn"}, defaults, overrides)
    values = project(back.resource)
    assert values["city"] is None and values["phone"] == "+16175550123" and values["given_name"] == "Ines"
    assert back.external_id == "7"


def test_a_required_declarative_field_cannot_be_switched_off() -> None:
    with pytest.raises(InvalidArgument) as error:
        rules.validate(PLAINREST, PATIENT, [_override("city", "city"), _override("family_name", direction="to_hub")])
    assert (error.value.field, error.value.reason) == ("overrides[1].direction", "VENDOR_FIELD_REQUIRED")


def test_a_bad_value_through_an_override_names_the_field() -> None:
    mapper = GhlPatientMapper()
    overrides = [_override("state", "state", transform="us_state")]
    with pytest.raises(RecordInvalid) as invalid:
        rules.to_hub(mapper, {"id": "c1", "firstName": "Ines", "state": "Atlantis"}, rules.defaults(mapper), overrides)
    assert [(e.field, e.reason) for e in invalid.value.errors] == [("state", "INVALID_STATE")]
    assert invalid.value.external_id == "c1"
    resource = {**RESOURCE, "address": [{"state": "Atlantis"}]}
    with pytest.raises(RecordInvalid) as invalid:
        rules.to_vendor(mapper, resource, rules.defaults(mapper), overrides)
    assert [(e.field, e.reason) for e in invalid.value.errors] == [("address[0].state", "INVALID_STATE")]
    # The code's own check of a field an override took over does not fire.
    out = rules.to_vendor(
        mapper,
        {**RESOURCE, "address": [{"country": "Atlantis"}]},
        rules.defaults(mapper),
        [_override("country", "companyName")],
    )
    assert out["companyName"] == "Atlantis" and "country" not in out
    assert parse_patient(rules.to_hub(mapper, {"id": "c1", "firstName": "Ines"}, [], []).resource)


def test_appointment_overrides() -> None:
    mapper = GhlAppointmentMapper()
    defaults = rules.defaults(mapper)
    assert {r.hub_field for r in defaults} == {"status", "start", "end", "description"}
    event = {
        "id": "evt1", "calendarId": "cal1", "contactId": "con1", "appointmentStatus": "confirmed",
        "startTime": "2026-03-02T09:00:00-05:00", "endTime": "2026-03-02T09:45:00-05:00", "description": "Knee",
        "title": "Annual physical",
    }  # fmt: skip
    off = [FieldRule(APPOINTMENT, "description", "", direction="none", source="override")]
    rules.validate(mapper, APPOINTMENT, off)
    hub = rules.to_hub(mapper, event, defaults, off).resource
    assert "description" not in hub and hub["status"] == "booked"
    assert "description" in mapper.to_hub(event).resource
    written = rules.to_vendor(mapper, mapper.to_hub(event).resource, defaults, off)
    assert "description" not in written and written["appointmentStatus"] == "confirmed"
    with pytest.raises(InvalidArgument) as error:
        rules.validate(mapper, APPOINTMENT, [FieldRule(APPOINTMENT, "start", "", direction="none")])
    assert (error.value.field, error.value.reason) == ("overrides[0].direction", "VENDOR_FIELD_REQUIRED")
    with pytest.raises(InvalidArgument) as error:
        rules.validate(mapper, APPOINTMENT, [FieldRule(APPOINTMENT, "given_name", "x")])
    assert error.value.reason == "UNKNOWN_HUB_FIELD"


def test_effective_orders_by_hub_field_and_marks_sources() -> None:
    defaults = rules.defaults(GhlPatientMapper())
    merged = rules.effective(defaults, [_override("phone", direction="none"), _override("zzz_never", "x")])
    assert [r.hub_field for r in merged] == sorted(r.hub_field for r in merged)
    by_hub = {r.hub_field: r for r in merged}
    assert by_hub["phone"].source == "override" and by_hub["city"].source == "default"


def test_salesforce_overrides_may_name_custom_fields_only_beyond_the_schema() -> None:
    mapper = SalesforcePatientMapper()
    rules.validate(mapper, PATIENT, [_override("email", "Secondary_Email__c"), _override("city", "PersonMailingCity")])
    with pytest.raises(InvalidArgument) as error:
        rules.validate(mapper, PATIENT, [_override("email", "SecondaryEmail")])
    assert (error.value.field, error.value.reason) == ("overrides[0].vendor_field", "UNKNOWN_VENDOR_FIELD")
    out = rules.to_vendor(
        mapper, RESOURCE, rules.defaults(mapper), [_override("city", "Home_City__c", transform="case", case="upper")]
    )
    assert out["Home_City__c"] == "SALEM" and "PersonMailingCity" not in out


def test_salesforce_appointment_defaults_and_an_override_to_comments() -> None:
    mapper = SalesforceAppointmentMapper()
    defaults = rules.defaults(mapper)
    assert {r.hub_field: r.vendor_field for r in defaults} == {
        "status": "Status", "start": "SchedStartTime", "end": "SchedEndTime",
        "service_name": "Subject", "description": "Description",
    }  # fmt: skip
    record = {
        "Id": "08p1", "ParentRecordId": "0011", "Status": "Scheduled", "Subject": "Physical",
        "SchedStartTime": "2026-03-02T14:00:00.000+0000", "SchedEndTime": "2026-03-02T14:45:00.000+0000",
        "Description": "Knee", "Comments": "Left knee",
    }  # fmt: skip
    moved = [FieldRule(APPOINTMENT, "description", "Comments", source="override")]
    rules.validate(mapper, APPOINTMENT, moved)
    hub = rules.to_hub(mapper, record, defaults, moved).resource
    assert hub["description"] == "Left knee" and hub["status"] == "booked"
    written = rules.to_vendor(mapper, hub, defaults, moved)
    assert written["Comments"] == "Left knee" and "Description" not in written and written["Status"] == "Scheduled"
    # The override's own transform: the status through a narrower enum, the start in the practice's zone.
    own = [
        FieldRule(APPOINTMENT, "status", "Status", "enum", {"values": {"booked": "Dispatched"}}, source="override"),
        FieldRule(APPOINTMENT, "start", "SchedStartTime", "datetime_zone", {"zone": "America/New_York"}),
        FieldRule(APPOINTMENT, "end", "Local_End__c", "datetime_zone", {"zone": "America/New_York"}),
    ]
    rules.validate(mapper, APPOINTMENT, own)
    written = rules.to_vendor(mapper, hub, defaults, own)
    assert written["Status"] == "Dispatched" and written["SchedStartTime"] == "2026-03-02T09:00:00-05:00"
    assert written["Local_End__c"] == "2026-03-02T09:45:00-05:00" and "SchedEndTime" not in written
    # Taking start away from SchedStartTime leaves a booked appointment without one: the code refuses.
    away = [FieldRule(APPOINTMENT, "start", "Local_Start__c", source="override")]
    with pytest.raises(RecordInvalid) as invalid:
        rules.to_vendor(mapper, hub, defaults, away)
    assert [(e.field, e.reason) for e in invalid.value.errors] == [("start", "MISSING_TIME")]
    with pytest.raises(InvalidArgument) as error:
        rules.validate(mapper, APPOINTMENT, [FieldRule(APPOINTMENT, "description", "Notes")])
    assert (error.value.field, error.value.reason) == ("overrides[0].vendor_field", "UNKNOWN_VENDOR_FIELD")


def test_a_fhir_required_field_must_map_both_ways() -> None:
    mapper = SalesforceAppointmentMapper()
    with pytest.raises(InvalidArgument) as error:
        rules.validate(mapper, APPOINTMENT, [FieldRule(APPOINTMENT, "status", "Status", direction="to_vendor")])
    assert (error.value.field, error.value.reason) == ("overrides[0].direction", "FHIR_FIELD_REQUIRED")
