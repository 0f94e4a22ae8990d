"""Mapping from a declarative definition: the mapper built from its field_mappings, and the
mapping service reading definitions from a real registry over gRPC."""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format, struct_pb2
from hypothesis import given, settings

import sandbox.plainrest
from libs.errors import InvalidArgument
from libs.fhir_patient import parse_patient, project
from libs.grpc_client import call, open_channel
from libs.protos.concord.common.v1 import common_pb2
from libs.protos.concord.mapping.v1 import mapping_pb2 as pb
from libs.protos.concord.mapping.v1 import mapping_pb2_grpc
from libs.protos.concord.registry.v1 import registry_pb2, registry_pb2_grpc
from libs.settings import Settings
from services.adapters.declarative import definition
from services.adapters.declarative.catalog import DefinitionCatalog
from services.mapping.declarative import DeclarativePatientMapper, _inbound, _outbound
from services.mapping.domain import RecordInvalid
from services.mapping.server import start as start_mapping
from services.mapping.service import MappingService
from services.registry.server import start as start_registry
from tests.mapping.strategies import full_date, patients
from tests.mapping.synthea import synthea_patients

PATIENT = common_pb2.ENTITY_TYPE_PATIENT
DEFINITION = json.loads((Path(sandbox.plainrest.__file__).parent / "integration.json").read_text())
SYSTEM = "https://api.plainrest.example/patient-id"
MAPPER = DeclarativePatientMapper("plainrest", definition.parse(DEFINITION).resource("ENTITY_TYPE_PATIENT"))
RECORD = {
    "id": "pat_0001",
    "first_name": "Mary Ann",
    "last_name": "Quill",
    "dob": "1980-02-29",
    "sex": "f",
    "mobile": "(617) 555-0100",
    "email": "Mary.Quill@Example.com",
    "street": "1 Main St, Apt 2",
    "city": "Boston",
    "region": "MA",
    "postcode": "02110",
    "country_code": "us",
    "updated_at": "2025-06-11T10:00:00.000000Z",
    "created_at": "2025-06-11T10:00:00.000000Z",
}


async def register(registry: registry_pb2_grpc.RegistryServiceStub, document: dict = DEFINITION) -> None:
    message = json_format.ParseDict(document, registry_pb2.IntegrationDefinition())
    await call(
        registry.UpsertIntegrationDefinition, registry_pb2.UpsertIntegrationDefinitionRequest(definition=message)
    )


def _errors(fn: Any, value: dict) -> list[tuple[str, str, str]]:
    with pytest.raises(RecordInvalid) as invalid:
        fn(value)
    return [(e.field, e.reason, e.message) for e in invalid.value.errors]


def _variant(**changes: Any) -> dict:
    """DEFINITION with the patient resource's keys changed."""
    document = copy.deepcopy(DEFINITION)
    document["extra"]["declarative"]["resources"]["patient"].update(changes)
    return document


def test_vendor_record_to_patient() -> None:
    result = MAPPER.to_hub(RECORD)
    assert result.external_id == "pat_0001"
    assert result.resource == {
        "resourceType": "Patient",
        "identifier": [{"system": SYSTEM, "value": "pat_0001"}],
        "name": [{"use": "official", "family": "Quill", "given": ["Mary", "Ann"]}],
        "telecom": [
            {"system": "phone", "value": "+16175550100"},
            {"system": "email", "value": "mary.quill@example.com"},
        ],
        "gender": "female",
        "birthDate": "1980-02-29",
        "address": [
            {"line": ["1 Main St, Apt 2"], "city": "Boston", "state": "MA", "postalCode": "02110", "country": "US"}
        ],
    }


def test_patient_to_vendor_write_body() -> None:
    record = MAPPER.to_vendor(MAPPER.to_hub(RECORD).resource)
    assert record == {
        "first_name": "Mary Ann",
        "last_name": "Quill",
        "dob": "1980-02-29",
        "sex": "F",
        "mobile": "+16175550100",
        "email": "mary.quill@example.com",
        "street": "1 Main St, Apt 2",
        "city": "Boston",
        "region": "MA",
        "postcode": "02110",
        "country_code": "US",
    }


def test_what_the_vendor_cannot_carry_is_not_sent() -> None:
    patient = {
        "resourceType": "Patient",
        "name": [{"use": "official", "family": "Smith", "given": ["Ann"]}],
        "birthDate": "1980",
        "address": [{"country": "United States"}],
    }
    assert MAPPER.to_vendor(patient) == {"first_name": "Ann", "last_name": "Smith", "country_code": "US"}


def test_every_synthea_patient_maps_to_the_vendor_and_back() -> None:
    for resource in synthea_patients():
        record = MAPPER.to_vendor(resource)
        assert set(record) <= {m.vendor_field for m in MAPPER._writes}
        assert project(MAPPER.to_hub({**record, "id": "x"}).resource) == project(parse_patient(resource))


@settings(max_examples=200, deadline=None)
@given(patient=patients(birth_date=full_date))
def test_hub_vendor_hub_round_trip_keeps_every_field_mapped_both_ways(patient: dict) -> None:
    fields = project(parse_patient(patient))
    if fields["given_name"] is None or fields["family_name"] is None:
        assert {reason for _, reason, _ in _errors(MAPPER.to_vendor, patient)} == {"MISSING_FIELD"}
        return
    record = MAPPER.to_vendor(patient)
    again = MAPPER.to_hub({**record, "id": "pat_x"}).resource
    assert project(again) == fields
    assert MAPPER.to_vendor(again) == record  # and it is stable from there on


def test_bad_vendor_fields_are_named_by_their_path_without_their_value() -> None:
    cases = [
        ({"email": "mary at home"}, "email", "INVALID_EMAIL"),
        ({"mobile": "call the desk"}, "mobile", "INVALID_PHONE"),
        ({"dob": "29/02/1980"}, "dob", "INVALID_DATE"),
        ({"sex": "female"}, "sex", "INVALID_ENUM"),
        ({"city": 12}, "city", "INVALID_TYPE"),
        ({"last_name": "  "}, "last_name", "MISSING_FIELD"),
    ]
    for change, field, reason in cases:
        [(got_field, got_reason, message)] = _errors(MAPPER.to_hub, {**RECORD, **change})
        assert (got_field, got_reason) == (field, reason)
        assert str(change[field]).strip() not in message or not str(change[field]).strip()
    with pytest.raises(RecordInvalid) as invalid:
        MAPPER.to_hub({**RECORD, "email": "bad", "dob": "bad"})
    assert invalid.value.external_id == "pat_0001" and len(invalid.value.errors) == 2


def test_bad_patients_are_named_by_their_fhir_path_without_their_value() -> None:
    base = {"resourceType": "Patient", "name": [{"use": "official", "family": "Smith", "given": ["Ann"]}]}
    cases = [
        ({**base, "address": [{"country": "Narnia"}]}, "address[0].country", "INVALID_COUNTRY", "Narnia"),
        (
            {**base, "telecom": [{"system": "phone", "value": "ask at desk"}]},
            "telecom[0].value",
            "INVALID_PHONE",
            "desk",
        ),
        ({**base, "name": [{"use": "official", "given": ["Ann"]}]}, "name[0].family", "MISSING_FIELD", "Ann"),
        ({**base, "birthDate": "1980-02-31"}, "birthDate", "INVALID_FHIR_RESOURCE", "1980-02-31"),
    ]
    for patient, field, reason, value in cases:
        [(got_field, got_reason, message)] = _errors(MAPPER.to_vendor, patient)
        assert (got_field, got_reason) == (field, reason)
        assert value not in message


def test_nested_paths_directions_and_case_transforms() -> None:
    document = _variant(
        field_mappings=[
            {"hub_field": "given_name", "vendor_field": "person.names.first"},
            {"hub_field": "family_name", "vendor_field": "person.names.last", "transform": "upper"},
            {"hub_field": "email", "vendor_field": "contact.email", "direction": "to_vendor"},
            {"hub_field": "email", "vendor_field": "contact.email_verified", "direction": "to_hub"},
            {"hub_field": "city", "vendor_field": "contact.address.city", "transform": "lower"},
        ]
    )
    mapper = DeclarativePatientMapper("nested", definition.parse(document).resource("ENTITY_TYPE_PATIENT"))
    patient = parse_patient(
        {
            "resourceType": "Patient",
            "name": [{"family": "Quill", "given": ["Ada"]}],
            "telecom": [{"system": "email", "value": "ada@example.com"}],
            "address": [{"city": "Boston"}],
        }
    )
    record = mapper.to_vendor(patient)
    assert record == {
        "person": {"names": {"first": "Ada", "last": "QUILL"}},
        "contact": {"email": "ada@example.com", "address": {"city": "boston"}},
    }
    back = project(
        mapper.to_hub({**record, "id": 7, "contact": {**record["contact"], "email_verified": "A@x.org"}}).resource
    )
    assert (back["family_name"], back["email"], back["city"]) == ("QUILL", "a@x.org", "boston")
    [(field, reason, _)] = _errors(mapper.to_hub, {"person": {"names": {"first": 5}}})
    assert (field, reason) == ("person.names.first", "INVALID_TYPE")
    assert mapper.to_hub({"id": 7}).external_id == "7"


# --- the mapping service, reading definitions from the registry ----------------------------------


def _struct(record: dict) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(record)
    return message


@pytest.fixture
async def registry(settings: Settings) -> AsyncIterator[tuple[Settings, registry_pb2_grpc.RegistryServiceStub]]:
    service = await start_registry(settings)
    channel = open_channel(service.address)
    stub = registry_pb2_grpc.RegistryServiceStub(channel)
    await register(stub)
    yield settings.model_copy(update={"registry_address": service.address}), stub
    await channel.close()
    await service.stop()


@pytest.fixture
async def mapping(registry: tuple[Settings, Any]) -> AsyncIterator[mapping_pb2_grpc.MappingServiceStub]:
    service = await start_mapping(registry[0])
    channel = open_channel(service.address)
    yield mapping_pb2_grpc.MappingServiceStub(channel)
    await channel.close()
    await service.stop()


async def test_service_maps_a_vendor_it_only_knows_from_the_registry(mapping) -> None:  # noqa: ANN001
    hub = await call(
        mapping.MapToHub,
        pb.MapToHubRequest(
            integration_type="plainrest",
            entity_type=PATIENT,
            vendor_records=[_struct(RECORD), _struct({**RECORD, "id": "pat_2", "dob": "soon"})],
        ),
    )
    good, bad = hub.results
    assert good.external_id == "pat_0001" and not good.errors
    assert json.loads(good.resource_json) == MAPPER.to_hub(RECORD).resource
    assert (bad.external_id, [(e.field, e.reason) for e in bad.errors]) == ("pat_2", [("dob", "INVALID_DATE")])
    assert "soon" not in str(bad)

    vendor = await call(
        mapping.MapToVendor,
        pb.MapToVendorRequest(integration_type="plainrest", entity_type=PATIENT, resource_jsons=[good.resource_json]),
    )
    assert dict(vendor.results[0].vendor_record)["country_code"] == "US"
    assert "id" not in vendor.results[0].vendor_record


async def test_service_refuses_what_no_mapper_and_no_definition_covers(mapping, registry) -> None:  # noqa: ANN001
    await register(registry[1], {k: v for k, v in DEFINITION.items() if k != "extra"} | {"integration_type": "bare"})
    for integration_type, entity_type, field, reason in (
        ("myspace", PATIENT, "integration_type", "UNSUPPORTED_INTEGRATION"),
        ("bare", PATIENT, "integration_type", "UNSUPPORTED_INTEGRATION"),
        ("plainrest", common_pb2.ENTITY_TYPE_APPOINTMENT, "entity_type", "UNSUPPORTED_ENTITY"),
    ):
        with pytest.raises(InvalidArgument) as error:
            await call(mapping.MapToHub, pb.MapToHubRequest(integration_type=integration_type, entity_type=entity_type))
        assert (error.value.field, error.value.reason) == (field, reason)


async def test_an_edited_definition_is_mapped_with_once_the_cache_turns(registry) -> None:  # noqa: ANN001
    settings, stub = registry
    channel = open_channel(settings.registry_address)
    now = [0.0]
    service = MappingService(
        definitions=DefinitionCatalog(registry_pb2_grpc.RegistryServiceStub(channel), 60, clock=lambda: now[0])
    )
    try:
        before = await service.map_to_vendor(
            "plainrest", "ENTITY_TYPE_PATIENT", [json.dumps(MAPPER.to_hub(RECORD).resource)]
        )
        assert before[0].record["city"] == "Boston"
        edited = copy.deepcopy(DEFINITION)
        for mapping in edited["extra"]["declarative"]["resources"]["patient"]["field_mappings"]:
            if mapping["hub_field"] == "city":
                mapping["transform"] = "upper"
        await register(stub, edited)
        cached = await service.map_to_vendor(
            "plainrest", "ENTITY_TYPE_PATIENT", [json.dumps(MAPPER.to_hub(RECORD).resource)]
        )
        assert cached[0].record["city"] == "Boston"
        now[0] += 61
        after = await service.map_to_vendor(
            "plainrest", "ENTITY_TYPE_PATIENT", [json.dumps(MAPPER.to_hub(RECORD).resource)]
        )
        assert after[0].record["city"] == "BOSTON"
    finally:
        await channel.close()


def test_the_mapper_implements_every_transform_the_document_allows() -> None:
    samples = {
        "e164_phone": ("617-555-0100", "+16175550100", "+16175550100"),
        "date": ("1980-01-02T00:00:00Z", "1980-01-02", "1980-01-02"),
        "lower": ("AbC", "abc", "abc"),
        "upper": ("AbC", "ABC", "ABC"),
        "country_alpha2": ("us", "US", "US"),
    }
    assert set(samples) == set(definition.TRANSFORMS)
    for transform, (raw, hub, vendor) in samples.items():
        mapping = definition.FieldMapping("city", "c", transform, "both", False)
        assert (_inbound(mapping, raw), _outbound(mapping, hub, "address[0].city")) == (hub, vendor)
