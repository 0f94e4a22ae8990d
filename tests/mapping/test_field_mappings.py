"""Per-config field mappings over real gRPC and the service's own database (SQLite, and
PostgreSQL when CONCORD_TEST_POSTGRES_URL is set): defaults as data, overrides, versions, preview.
Every config is a real one in the registry (the service checks it there)."""

from __future__ import annotations

import json
import logging

import pytest
from google.protobuf import json_format, struct_pb2

from libs.errors import FailedPrecondition, InvalidArgument, NotFound
from libs.fhir_patient import parse_patient, project
from libs.grpc_client import call
from libs.protos.concord.common.v1 import common_pb2
from libs.protos.concord.mapping.v1 import mapping_pb2 as pb
from tests.mapping.conftest import MappingStack

PATIENT = common_pb2.ENTITY_TYPE_PATIENT
# Canary PHI: must never reach a log line.
GIVEN, FAMILY, PHONE, EMAIL = "Wilhelmina", "Quarterfield", "+16175550142", "wq.canary@example.org"
NOTE_FIELD = "customFields[AbCdEf123]"


def _struct(record: dict) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(record)
    return message


def _rule(hub: str, vendor: str = "", direction: int = pb.MAPPING_DIRECTION_BOTH, transform: str = "", **params):  # noqa: ANN003, ANN201
    message = pb.FieldMapping(
        hub_field=hub, vendor_field=vendor, direction=direction, transform=pb.Transform(name=transform)
    )
    message.transform.params.update(params)
    return message


def _patient() -> str:
    return json.dumps(
        {
            "resourceType": "Patient",
            "name": [{"use": "official", "given": [GIVEN], "family": FAMILY}],
            "telecom": [{"system": "phone", "value": PHONE}, {"system": "email", "value": EMAIL}],
            "gender": "female",
            "birthDate": "1971-04-09",
        }
    )


async def _replace(stub, config_id: str, overrides: list, expected: int = 0) -> pb.ReplaceFieldMappingsResponse:  # noqa: ANN001
    request = pb.ReplaceFieldMappingsRequest(
        config_id=config_id, integration_type="ghl", entity_type=PATIENT, overrides=overrides, expected_version=expected
    )
    return await call(stub.ReplaceFieldMappings, request)


async def test_defaults_are_listed_as_data_and_paged(mapping: MappingStack) -> None:
    stub = mapping.stub
    config_id, seen, token = (await mapping.config()).config_id, [], ""
    while True:
        page = await call(
            stub.ListFieldMappings,
            pb.ListFieldMappingsRequest(
                config_id=config_id, integration_type="ghl", entity_type=PATIENT, page_size=4, page_token=token
            ),
        )
        seen += page.field_mappings
        token = page.next_page_token
        if not token:
            break
    assert page.mapping_version == 0
    by_hub = {m.hub_field: m for m in seen}
    assert len(seen) == len(by_hub) == 11
    assert by_hub["phone"].vendor_field == "phone" and by_hub["phone"].transform.name == "phone_e164"
    assert by_hub["given_name"].vendor_field == "firstName"
    assert {m.source for m in seen} == {pb.MAPPING_SOURCE_DEFAULT}


async def test_overrides_change_both_directions_and_version(mapping: MappingStack, caplog) -> None:  # noqa: ANN001
    caplog.set_level(logging.DEBUG)
    stub = mapping.stub
    config_id = (await mapping.config()).config_id
    answer = await _replace(
        stub,
        config_id,
        [
            _rule("phone", direction=pb.MAPPING_DIRECTION_NONE),
            _rule("email", NOTE_FIELD, transform="case", case="upper"),
            _rule("gender", "gender", transform="enum", values={"female": "F", "male": "M"}),
        ],
    )
    assert answer.mapping_version == 1
    effective = {m.hub_field: m for m in answer.field_mappings}
    assert effective["phone"].direction == pb.MAPPING_DIRECTION_NONE
    assert effective["phone"].source == pb.MAPPING_SOURCE_OVERRIDE
    assert effective["city"].source == pb.MAPPING_SOURCE_DEFAULT

    out = await call(
        stub.MapToVendor,
        pb.MapToVendorRequest(
            integration_type="ghl", entity_type=PATIENT, resource_jsons=[_patient()], config_id=config_id
        ),
    )
    assert out.mapping_version == 1 and not out.results[0].errors
    record = json_format.MessageToDict(out.results[0].vendor_record)
    assert "phone" not in record and "email" not in record
    assert record["gender"] == "F" and record["firstName"] == GIVEN
    assert record["customFields"] == [{"id": "AbCdEf123", "field_value": EMAIL.upper()}]
    # Without the config: the vendor defaults.
    plain = await call(
        stub.MapToVendor,
        pb.MapToVendorRequest(integration_type="ghl", entity_type=PATIENT, resource_jsons=[_patient()]),
    )
    assert plain.mapping_version == 0 and plain.results[0].vendor_record["phone"] == PHONE

    contact = {
        "id": "c1", "firstName": GIVEN, "lastName": FAMILY, "phone": PHONE, "email": "ignored@example.org",
        "gender": "F", "customFields": [{"id": "AbCdEf123", "value": EMAIL}],
    }  # fmt: skip
    back = await call(
        stub.MapToHub,
        pb.MapToHubRequest(
            integration_type="ghl", entity_type=PATIENT, vendor_records=[_struct(contact)], config_id=config_id
        ),
    )
    assert not back.results[0].errors, back.results[0].errors
    values = project(parse_patient(back.results[0].resource_json))
    assert values["phone"] is None  # switched off: not taken
    assert values["email"] == EMAIL.upper().lower()  # from the custom field (the hub lower-cases emails)
    assert values["gender"] == "female" and values["given_name"] == GIVEN
    for phi in (GIVEN, FAMILY, PHONE, EMAIL, EMAIL.upper()):
        assert phi not in caplog.text


async def test_bad_overrides_name_the_field(mapping: MappingStack) -> None:
    stub = mapping.stub
    config_id = (await mapping.config()).config_id
    cases = [
        ([_rule("shoe_size", "shoeSize")], "overrides[0].hub_field", "UNKNOWN_HUB_FIELD"),
        ([_rule("city", "city"), _rule("phone", "notAGhlField")], "overrides[1].vendor_field", "UNKNOWN_VENDOR_FIELD"),
        ([_rule("city", "city", transform="rot13")], "overrides[0].transform", "UNKNOWN_TRANSFORM"),
        ([_rule("city", "city", transform="phone_e164", region="XX")], "overrides[0].transform", "INVALID_TRANSFORM"),
        ([_rule("city", "city", transform="enum")], "overrides[0].transform", "INVALID_TRANSFORM"),
        ([_rule("city", "city"), _rule("city", "address1")], "overrides[1].hub_field", "DUPLICATE_FIELD"),
        (
            [_rule("city", "city", direction=pb.MAPPING_DIRECTION_UNSPECIFIED)],
            "overrides[0].direction",
            "INVALID_DIRECTION",
        ),
        ([_rule("city", "bad path!")], "overrides[0].vendor_field", "INVALID_VENDOR_FIELD"),
    ]
    for overrides, field, reason in cases:
        with pytest.raises(InvalidArgument) as error:
            await _replace(stub, config_id, overrides)
        assert (error.value.field, error.value.reason) == (field, reason)
    listed = await call(
        stub.ListFieldMappings,
        pb.ListFieldMappingsRequest(config_id=config_id, integration_type="ghl", entity_type=PATIENT),
    )
    assert listed.mapping_version == 0  # nothing refused was stored


async def test_versions_guard_and_delete_falls_back_to_the_default(mapping: MappingStack) -> None:
    stub = mapping.stub
    config_id = (await mapping.config()).config_id
    assert (await _replace(stub, config_id, [_rule("city", "website")])).mapping_version == 1
    with pytest.raises(FailedPrecondition) as error:
        await _replace(stub, config_id, [_rule("city", "companyName")], expected=5)
    assert error.value.reason == "VERSION_MISMATCH"
    assert (
        await _replace(
            stub, config_id, [_rule("city", "companyName"), _rule("state", "state", transform="us_state")], expected=1
        )
    ).mapping_version == 2
    deleted = await call(
        stub.DeleteFieldMapping,
        pb.DeleteFieldMappingRequest(
            config_id=config_id, integration_type="ghl", entity_type=PATIENT, hub_field="city"
        ),
    )
    assert deleted.mapping_version == 3
    listed = await call(
        stub.ListFieldMappings,
        pb.ListFieldMappingsRequest(config_id=config_id, integration_type="ghl", entity_type=PATIENT),
    )
    by_hub = {m.hub_field: m for m in listed.field_mappings}
    assert by_hub["city"].vendor_field == "city" and by_hub["city"].source == pb.MAPPING_SOURCE_DEFAULT
    assert by_hub["state"].transform.name == "us_state" and by_hub["state"].source == pb.MAPPING_SOURCE_OVERRIDE
    assert listed.mapping_version == 3
    with pytest.raises(NotFound) as missing:
        await call(
            stub.DeleteFieldMapping,
            pb.DeleteFieldMappingRequest(
                config_id=config_id, integration_type="ghl", entity_type=PATIENT, hub_field="city"
            ),
        )
    assert missing.value.reason == "MAPPING_NOT_FOUND"


async def test_preview_maps_one_sample_and_names_bad_fields(mapping: MappingStack, caplog) -> None:  # noqa: ANN001
    caplog.set_level(logging.DEBUG)
    stub = mapping.stub
    config_id = (await mapping.config()).config_id
    await _replace(stub, config_id, [_rule("phone", "phone", transform="phone_e164", region="GB")])
    preview = await call(
        stub.PreviewMapping,
        pb.PreviewMappingRequest(
            config_id=config_id, integration_type="ghl", entity_type=PATIENT, direction=pb.MAPPING_DIRECTION_TO_HUB,
            vendor_record=_struct({"id": "c9", "firstName": GIVEN, "phone": "020 7946 0958"}),
        ),
    )  # fmt: skip
    assert not preview.errors and preview.mapping_version == 1
    assert project(parse_patient(preview.resource_json))["phone"] == "+442079460958"
    bad = await call(
        stub.PreviewMapping,
        pb.PreviewMappingRequest(
            config_id=config_id, integration_type="ghl", entity_type=PATIENT, direction=pb.MAPPING_DIRECTION_TO_HUB,
            vendor_record=_struct({"id": "c9", "firstName": GIVEN, "phone": "not a phone"}),
        ),
    )  # fmt: skip
    assert [(e.field, e.reason) for e in bad.errors] == [("phone", "INVALID_PHONE")] and not bad.resource_json
    to_vendor = await call(
        stub.PreviewMapping,
        pb.PreviewMappingRequest(
            config_id=config_id, integration_type="ghl", entity_type=PATIENT, direction=pb.MAPPING_DIRECTION_TO_VENDOR,
            resource_json=_patient(),
        ),
    )  # fmt: skip
    assert to_vendor.vendor_record["lastName"] == FAMILY and not to_vendor.errors
    with pytest.raises(InvalidArgument) as error:
        await call(
            stub.PreviewMapping,
            pb.PreviewMappingRequest(
                integration_type="ghl", entity_type=PATIENT, direction=pb.MAPPING_DIRECTION_TO_VENDOR
            ),
        )
    assert (error.value.field, error.value.reason) == ("resource_json", "REQUIRED_FIELD_MISSING")
    for phi in (GIVEN, FAMILY, PHONE, EMAIL, "7946"):
        assert phi not in caplog.text


async def test_fhir_defaults_are_listed_and_an_override_changes_both_directions(mapping: MappingStack) -> None:
    stub, config_id = mapping.stub, (await mapping.config("fhir")).config_id
    listed = await call(
        stub.ListFieldMappings,
        pb.ListFieldMappingsRequest(config_id=config_id, integration_type="fhir", entity_type=PATIENT),
    )
    by_hub = {m.hub_field: m for m in listed.field_mappings}
    assert len(by_hub) == 11 and {m.source for m in listed.field_mappings} == {pb.MAPPING_SOURCE_DEFAULT}
    assert by_hub["phone"].vendor_field == "telecom.where(system='phone').value"
    assert by_hub["given_name"].vendor_field == "name.given" and by_hub["birth_date"].vendor_field == "birthDate"
    assert {m.transform.name for m in listed.field_mappings} == {"identity"}

    await call(
        stub.ReplaceFieldMappings,
        pb.ReplaceFieldMappingsRequest(
            config_id=config_id,
            integration_type="fhir",
            entity_type=PATIENT,
            overrides=[
                _rule("phone", direction=pb.MAPPING_DIRECTION_NONE),
                _rule("family_name", "name.family", transform="case", case="upper"),
                _rule("state", "address.state", transform="us_state", style="name"),
            ],
        ),
    )
    hub = json.loads(_patient())
    hub["id"] = "hub-1"
    hub["address"] = [{"city": "Boston", "state": "MA"}]
    request = pb.MapToVendorRequest(integration_type="fhir", entity_type=PATIENT, resource_jsons=[json.dumps(hub)])
    plain = json_format.MessageToDict((await call(stub.MapToVendor, request)).results[0].vendor_record)
    assert plain["name"][0]["family"] == FAMILY and plain["address"][0]["state"] == "MA"
    assert {"system": "phone", "value": PHONE} in plain["telecom"]
    request.config_id = config_id
    out = await call(stub.MapToVendor, request)
    assert out.mapping_version == 1 and not out.results[0].errors, out.results[0].errors
    emr = json_format.MessageToDict(out.results[0].vendor_record)
    assert emr["name"][0]["family"] == FAMILY.upper() and emr["name"][0]["given"] == [GIVEN]
    assert emr["address"][0] == {"city": "Boston", "state": "Massachusetts"}
    assert emr["telecom"] == [{"system": "email", "value": EMAIL}]  # the phone is not sent
    assert emr["birthDate"] == "1971-04-09" and emr["identifier"][0]["value"] == "hub-1"

    record = {
        **emr,
        "id": "emr-7",
        "name": [{"use": "official", "given": [GIVEN], "family": "Quarterfield-Smythe"}],
        "telecom": [{"system": "phone", "value": "+16175550199"}],
        "address": [{"city": "Oakland", "state": "California"}],
    }
    back = await call(
        stub.MapToHub,
        pb.MapToHubRequest(
            integration_type="fhir", entity_type=PATIENT, vendor_records=[_struct(record)], config_id=config_id
        ),
    )
    assert not back.results[0].errors and back.results[0].external_id == "emr-7"
    values = project(parse_patient(back.results[0].resource_json))
    assert values["phone"] is None  # switched off: the EMR's phone is not taken
    assert values["state"] == "CA" and values["city"] == "Oakland"
    assert values["family_name"] == "QUARTERFIELD-SMYTHE" and values["given_name"] == GIVEN


async def test_fhir_appointment_overrides(mapping: MappingStack) -> None:
    stub, config_id = mapping.stub, (await mapping.config("fhir")).config_id
    appointment = common_pb2.ENTITY_TYPE_APPOINTMENT
    listed = await call(
        stub.ListFieldMappings,
        pb.ListFieldMappingsRequest(config_id=config_id, integration_type="fhir", entity_type=appointment),
    )
    assert {m.hub_field: m.vendor_field for m in listed.field_mappings} == {
        "status": "status", "start": "start", "end": "end", "service_code": "serviceType.coding.code",
        "service_name": "serviceType.text", "description": "description",
    }  # fmt: skip
    overrides = [
        pb.FieldMapping(hub_field="description", direction=pb.MAPPING_DIRECTION_NONE),
        _rule("start", "start", transform="datetime_zone", zone="America/New_York"),
    ]
    await call(
        stub.ReplaceFieldMappings,
        pb.ReplaceFieldMappingsRequest(
            config_id=config_id, integration_type="fhir", entity_type=appointment, overrides=overrides
        ),
    )
    hub = {
        "resourceType": "Appointment", "id": "appt-1", "status": "booked", "description": "Knee pain",
        "start": "2026-03-02T14:00:00Z", "end": "2026-03-02T14:30:00Z",
        "participant": [
            {"actor": {"type": "Patient", "identifier": {"system": "urn:concord:vendor-id", "value": "emr-7"}},
             "status": "accepted"},
        ],
    }  # fmt: skip
    out = await call(
        stub.MapToVendor,
        pb.MapToVendorRequest(
            integration_type="fhir", entity_type=appointment, resource_jsons=[json.dumps(hub)], config_id=config_id
        ),
    )
    assert not out.results[0].errors, out.results[0].errors
    emr = json_format.MessageToDict(out.results[0].vendor_record)
    assert "description" not in emr and emr["start"] == "2026-03-02T09:00:00-05:00"
    assert emr["end"] == "2026-03-02T14:30:00Z" and emr["participant"][0]["actor"] == {"reference": "Patient/emr-7"}


async def test_overrides_are_checked_against_the_vendors_field_types_and_lengths(mapping: MappingStack, caplog) -> None:  # noqa: ANN001
    caplog.set_level(logging.DEBUG)
    stub, config_id = mapping.stub, (await mapping.config("salesforce")).config_id

    async def replace(overrides: list) -> pb.ReplaceFieldMappingsResponse:
        request = pb.ReplaceFieldMappingsRequest(
            config_id=config_id, integration_type="salesforce", entity_type=PATIENT, overrides=overrides
        )
        return await call(stub.ReplaceFieldMappings, request)

    refused = [
        ([_rule("city", "PersonMailingCity"), _rule("given_name", "PersonBirthdate")], "VENDOR_FIELD_TYPE_MISMATCH"),
        (
            [_rule("city", "PersonMailingCity"), _rule("birth_date", "PersonMailingPostalCode", transform="date",
                                                       format="%A %d %B %Y")],
            "VENDOR_FIELD_TOO_SHORT",
        ),
    ]  # fmt: skip
    for overrides, reason in refused:
        with pytest.raises(InvalidArgument) as error:
            await replace(overrides)
        assert (error.value.field, error.value.reason) == ("overrides[1].vendor_field", reason)
    # A value only a record can make too long: that record is refused, naming the hub element.
    assert (await replace([_rule("given_name", "PersonMailingPostalCode")])).mapping_version == 1
    long_given = json.loads(_patient())
    long_given["name"][0]["given"] = [GIVEN, "Augustina", "Rose"]  # 25 characters
    out = await call(
        stub.MapToVendor,
        pb.MapToVendorRequest(
            integration_type="salesforce",
            entity_type=PATIENT,
            resource_jsons=[json.dumps(long_given), _patient()],
            config_id=config_id,
        ),
    )
    [error] = out.results[0].errors
    assert (error.field, error.reason) == ("name[0].given", "STRING_TOO_LONG") and GIVEN not in error.message
    assert out.results[1].vendor_record["PersonMailingPostalCode"] == GIVEN
    assert GIVEN not in caplog.text and "Augustina" not in caplog.text
