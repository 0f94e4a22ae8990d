"""FHIR Patient at an EMR <-> the hub's FHIR Patient, both ways, as pure functions."""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest
from google.protobuf import json_format, struct_pb2
from hypothesis import given

from libs.fhir_patient import parse_patient, project
from services.adapters.fhir.resources import PATIENT
from services.mapping import rules
from services.mapping.domain import RecordInvalid
from services.mapping.mappers import default_mappers
from services.mapping.mappers.fhir import HUB_ID_SYSTEM, FhirPatientMapper
from services.mapping.rules import FieldRule
from tests.mapping.strategies import patients
from tests.mapping.synthea import synthea_patients

MAPPER = FhirPatientMapper()
SYNTHEA = synthea_patients()
EMR_PATIENT = {
    "resourceType": "Patient",
    "id": "emr-123",
    "meta": {
        "versionId": "7",
        "lastUpdated": "2024-05-01T10:00:00.000+00:00",
        "source": "#hapi-request-1",
        "profile": ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"],
    },
    "text": {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">Ann Smith</div>'},
    "identifier": [
        {"system": "urn:oid:1.2.36.146.595.217.0.1", "value": "MRN-1"},
        {"system": HUB_ID_SYSTEM, "value": "hub-of-another-practice"},
    ],
    "name": [{"use": "official", "family": "Smith", "given": ["Ann"]}],
    "gender": "female",
    "birthDate": "1970-01-02",
    "multipleBirthInteger": 2,
}


def _errors(call, record: dict) -> list[tuple[str, str, str]]:  # noqa: ANN001
    with pytest.raises(RecordInvalid) as invalid:
        call(record)
    return [(e.field, e.reason, e.message) for e in invalid.value.errors]


def _through_struct(record: dict) -> dict:
    """What the adapter's activities carry: a protobuf Struct, every number a double."""
    message = struct_pb2.Struct()
    message.update(record)
    return json_format.MessageToDict(message)


def test_emr_patient_to_hub_keeps_the_resource_but_the_emr_bookkeeping() -> None:
    result = MAPPER.to_hub(_through_struct(EMR_PATIENT))

    assert result.external_id == "emr-123"
    assert result.resource == {
        "resourceType": "Patient",
        "meta": {"profile": ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"]},
        "identifier": [{"system": "urn:oid:1.2.36.146.595.217.0.1", "value": "MRN-1"}],
        "name": [{"use": "official", "family": "Smith", "given": ["Ann"]}],
        "gender": "female",
        "birthDate": "1970-01-02",
        "multipleBirthInteger": 2,
    }


def test_hub_patient_to_emr_carries_the_hub_id_as_an_identifier_and_no_hub_meta() -> None:
    hub = {
        **copy.deepcopy(EMR_PATIENT),
        "id": "hub-42",
        "meta": {"versionId": "3", "lastUpdated": "2024-06-01T00:00:00.000Z", "security": [{"code": "R"}]},
    }

    body = MAPPER.to_vendor(hub)

    assert "id" not in body and "text" not in body
    assert body["meta"] == {"security": [{"code": "R"}]}
    assert body["identifier"] == [
        {"system": "urn:oid:1.2.36.146.595.217.0.1", "value": "MRN-1"},
        {"use": "secondary", "system": HUB_ID_SYSTEM, "value": "hub-42"},
    ]
    assert PATIENT.hub_id(body) == "hub-42"  # what the adapter's conditional create matches on
    assert parse_patient(body) == body


def test_the_adapter_and_the_mapper_agree_on_the_hub_identifier() -> None:
    assert PATIENT.hub_system == HUB_ID_SYSTEM
    assert default_mappers()[("fhir", "ENTITY_TYPE_PATIENT")].__class__ is FhirPatientMapper


def test_every_synthea_patient_maps_to_the_emr_and_back() -> None:
    for resource in SYNTHEA:
        hub = MAPPER.to_hub(_through_struct(resource))
        assert hub.external_id == resource["id"]
        assert project(hub.resource) == project(parse_patient(resource))
        # Stamped as the sync service stores it, and as the EMR stores what was sent.
        meta = hub.resource.get("meta", {})
        stamped = {
            **hub.resource,
            "id": "hub-1",
            "meta": {**meta, "versionId": "1", "lastUpdated": "2024-01-01T00:00:00Z"},
        }
        sent = MAPPER.to_vendor(_through_struct(stamped))
        back = MAPPER.to_hub({**sent, "id": resource["id"], "meta": {**sent.get("meta", {}), "versionId": "2"}})
        assert back.resource == hub.resource


@given(patients())
def test_a_hub_patient_comes_back_from_the_emr_unchanged(patient: dict) -> None:
    sent = MAPPER.to_vendor({**patient, "id": "hub-7"})
    stored = {**sent, "id": "emr-9", "meta": {"versionId": "1", "lastUpdated": "2024-01-01T00:00:00.000Z"}}
    back = MAPPER.to_hub(_through_struct(stored))
    assert back.resource == parse_patient(patient)
    assert back.external_id == "emr-9"


def test_bad_records_name_the_fhir_element_without_the_value() -> None:
    cases = [
        ({**EMR_PATIENT, "birthDate": "1970-13-45"}, "birthDate", "1970-13-45"),
        ({**EMR_PATIENT, "gender": "teal-violet"}, "gender", "teal-violet"),
        ({**EMR_PATIENT, "name": [{"given": "Ann-not-a-list"}]}, "name[0].given", "Ann-not-a-list"),
    ]
    for record, element, value in cases:
        for call in (MAPPER.to_hub, MAPPER.to_vendor):
            [(field, reason, message)] = _errors(call, record)
            assert (field, reason) == (element, "INVALID_FHIR_RESOURCE")
            assert value not in message
    assert _errors(MAPPER.to_hub, {**EMR_PATIENT, "resourceType": "Person"})[0][:2] == (
        "resourceType",
        "INVALID_FHIR_RESOURCE",
    )
    no_id = {k: v for k, v in EMR_PATIENT.items() if k != "id"}
    assert _errors(MAPPER.to_hub, no_id)[0][:2] == ("id", "MISSING_ID")
    assert _errors(MAPPER.to_hub, {**EMR_PATIENT, "id": "../Patient/1"})[0][:2] == ("id", "MISSING_ID")


def test_the_declared_defaults_as_overrides_change_nothing() -> None:
    """The element table reads and writes what the code maps: every default made an override (so
    the engine, not the code, moves each field) gives the same resources both ways."""
    defaults = rules.defaults(MAPPER)
    assert len(defaults) == 11
    overrides = [replace(rule, source="override") for rule in defaults]
    rules.validate(MAPPER, MAPPER.entity_type, overrides)
    for i, patient in enumerate(SYNTHEA[:20]):
        record = {**patient, "id": f"emr-{i}"}
        assert project(rules.to_hub(MAPPER, record, defaults, overrides).resource) == project(
            MAPPER.to_hub(record).resource
        )
        assert project(rules.to_vendor(MAPPER, patient, defaults, overrides)) == project(MAPPER.to_vendor(patient))


def test_an_override_on_a_record_not_shaped_like_fhir_names_the_element() -> None:
    overrides = [FieldRule(MAPPER.entity_type, "family_name", "name.family", "case", {"case": "upper"})]
    with pytest.raises(RecordInvalid) as invalid:
        rules.to_hub(
            MAPPER, {"resourceType": "Patient", "id": "emr-1", "name": "Ann Smith"}, rules.defaults(MAPPER), overrides
        )
    assert [(e.field, e.reason) for e in invalid.value.errors] == [("name", "INVALID_FHIR_RESOURCE")]
    assert invalid.value.external_id == "emr-1" and "Ann" not in invalid.value.errors[0].message
