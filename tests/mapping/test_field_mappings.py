"""Per-config field mappings over real gRPC and the service's own database (SQLite, and
PostgreSQL when CONCORD_TEST_POSTGRES_URL is set): defaults as data, overrides, versions, preview."""

from __future__ import annotations

import json
import logging
import uuid

import pytest
from google.protobuf import json_format, struct_pb2

from libs.errors import FailedPrecondition, InvalidArgument, NotFound
from libs.fhir_patient import parse_patient, project
from libs.grpc_client import call
from libs.protos.concord.common.v1 import common_pb2
from libs.protos.concord.mapping.v1 import mapping_pb2 as pb

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


async def test_defaults_are_listed_as_data_and_paged(stub) -> None:  # noqa: ANN001
    config_id, seen, token = str(uuid.uuid4()), [], ""
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


async def test_overrides_change_both_directions_and_version(stub, caplog) -> None:  # noqa: ANN001
    caplog.set_level(logging.DEBUG)
    config_id = str(uuid.uuid4())
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


async def test_bad_overrides_name_the_field(stub) -> None:  # noqa: ANN001
    config_id = str(uuid.uuid4())
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


async def test_versions_guard_and_delete_falls_back_to_the_default(stub) -> None:  # noqa: ANN001
    config_id = str(uuid.uuid4())
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


async def test_preview_maps_one_sample_and_names_bad_fields(stub, caplog) -> None:  # noqa: ANN001
    caplog.set_level(logging.DEBUG)
    config_id = str(uuid.uuid4())
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
