"""The mapping service over real gRPC on 127.0.0.1:0."""

from __future__ import annotations

import json
import logging

import pytest
from google.protobuf import struct_pb2

from libs.errors import InvalidArgument
from libs.fhir_patient import parse_patient, project
from libs.grpc_client import call
from libs.protos.concord.common.v1 import common_pb2
from libs.protos.concord.mapping.v1 import mapping_pb2 as pb
from services.mapping.domain import MAX_BATCH
from tests.mapping.synthea import synthea_patients

PATIENT = common_pb2.ENTITY_TYPE_PATIENT


def _struct(record: dict) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(record)
    return message


async def test_mixed_batch_to_hub_maps_the_good_records(stub, caplog) -> None:  # noqa: ANN001
    caplog.set_level(logging.DEBUG)
    records = [
        {"id": "c1", "firstName": "Zoë", "lastName": "Kowalczyk", "phone": "+16175550100", "dateOfBirth": "1984-03-02"},
        {"id": "c2", "firstName": "Bad", "lastName": "Date", "dateOfBirth": "1984-31-02", "email": "bad@"},
        {"id": "c3", "firstName": "Ken", "lastName": "Ito", "dateOfBirth": "2000-01-05T00:00:00.000Z"},
    ]
    response = await call(
        stub.MapToHub,
        pb.MapToHubRequest(integration_type="ghl", entity_type=PATIENT, vendor_records=[_struct(r) for r in records]),
    )
    assert [r.external_id for r in response.results] == ["c1", "c2", "c3"]
    first, bad, third = response.results
    assert not first.errors and not third.errors
    assert project(parse_patient(first.resource_json))["family_name"] == "Kowalczyk"
    assert json.loads(third.resource_json)["birthDate"] == "2000-01-05"
    assert bad.resource_json == ""
    assert {(e.field, e.reason) for e in bad.errors} == {("dateOfBirth", "INVALID_DATE"), ("email", "INVALID_EMAIL")}
    assert all("1984-31-02" not in e.message and "bad@" not in e.message for e in bad.errors)
    assert "3 records, 1 failed" in caplog.text
    for phi in ("Zoë", "Kowalczyk", "1984", "bad@", "+1617"):
        assert phi not in caplog.text


async def test_mixed_batch_to_vendor(stub) -> None:  # noqa: ANN001
    synthea = synthea_patients()[:3]
    documents = [
        json.dumps(synthea[0]),
        "{not json",
        json.dumps({"resourceType": "Patient", "birthDate": "1990-02-30"}),
        json.dumps(synthea[1]),
        json.dumps({**synthea[2], "telecom": [{"system": "phone", "value": "ask at desk"}]}),
    ]
    response = await call(
        stub.MapToVendor, pb.MapToVendorRequest(integration_type="ghl", entity_type=PATIENT, resource_jsons=documents)
    )
    results = response.results
    assert len(results) == 5
    assert dict(results[0].vendor_record)["lastName"] == synthea[0]["name"][0]["family"]
    assert dict(results[3].vendor_record)["firstName"] == synthea[1]["name"][0]["given"][0]
    assert [(e.field, e.reason) for e in results[1].errors] == [("", "INVALID_RESOURCE")]
    assert [(e.field, e.reason) for e in results[2].errors] == [("birthDate", "INVALID_FHIR_RESOURCE")]
    assert [(e.field, e.reason) for e in results[4].errors] == [("telecom[0].value", "INVALID_PHONE")]
    assert not results[4].HasField("vendor_record")
    assert "locationId" not in results[0].vendor_record and "id" not in results[0].vendor_record


async def test_unknown_integration_or_entity_is_invalid_argument(stub) -> None:  # noqa: ANN001
    with pytest.raises(InvalidArgument) as error:
        await call(stub.MapToHub, pb.MapToHubRequest(integration_type="myspace", entity_type=PATIENT))
    assert (error.value.field, error.value.reason) == ("integration_type", "UNSUPPORTED_INTEGRATION")
    with pytest.raises(InvalidArgument) as error:
        await call(stub.MapToVendor, pb.MapToVendorRequest(entity_type=PATIENT, resource_jsons=["{}"]))
    assert error.value.field == "integration_type"
    with pytest.raises(InvalidArgument) as error:
        await call(
            stub.MapToHub, pb.MapToHubRequest(integration_type="ghl", entity_type=common_pb2.ENTITY_TYPE_SERVICE)
        )
    assert (error.value.field, error.value.reason) == ("entity_type", "UNSUPPORTED_ENTITY")


async def test_batches_are_limited(stub) -> None:  # noqa: ANN001
    contact = _struct({"firstName": "A", "lastName": "B"})
    full = await call(
        stub.MapToHub,
        pb.MapToHubRequest(integration_type="ghl", entity_type=PATIENT, vendor_records=[contact] * MAX_BATCH),
    )
    assert len(full.results) == MAX_BATCH and not any(r.errors for r in full.results)
    with pytest.raises(InvalidArgument) as error:
        await call(
            stub.MapToHub,
            pb.MapToHubRequest(integration_type="ghl", entity_type=PATIENT, vendor_records=[contact] * (MAX_BATCH + 1)),
        )
    assert (error.value.field, error.value.reason) == ("vendor_records", "BATCH_TOO_LARGE")
    with pytest.raises(InvalidArgument) as error:
        await call(
            stub.MapToVendor,
            pb.MapToVendorRequest(integration_type="ghl", entity_type=PATIENT, resource_jsons=["{}"] * (MAX_BATCH + 1)),
        )
    assert error.value.field == "resource_jsons"


async def test_empty_batch(stub) -> None:  # noqa: ANN001
    response = await call(stub.MapToHub, pb.MapToHubRequest(integration_type="ghl", entity_type=PATIENT))
    assert list(response.results) == []
