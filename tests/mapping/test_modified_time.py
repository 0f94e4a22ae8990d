"""MapToHub carries each vendor record's own modification time (what newest_wins orders edits by),
over real gRPC: GHL's dateUpdated, Salesforce's LastModifiedDate, a FHIR server's meta.lastUpdated;
none for a vendor whose records carry no zone-aware time (Zenoti guests), or a value that is not one."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf import struct_pb2

from libs.grpc_client import call
from libs.protos.concord.common.v1 import common_pb2
from libs.protos.concord.mapping.v1 import mapping_pb2 as pb

PATIENT = common_pb2.ENTITY_TYPE_PATIENT


def _struct(record: dict) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(record)
    return message


async def _modified(stub, integration_type: str, record: dict) -> datetime | None:  # noqa: ANN001
    request = pb.MapToHubRequest(
        integration_type=integration_type, entity_type=PATIENT, vendor_records=[_struct(record)]
    )
    [result] = (await call(stub.MapToHub, request)).results
    assert not result.errors, result.errors
    return result.modified_time.ToDatetime(UTC) if result.HasField("modified_time") else None


async def test_each_vendors_modification_time_comes_with_the_mapped_record(stub) -> None:  # noqa: ANN001
    ghl = {"id": "c1", "firstName": "Ann", "lastName": "Okafor", "dateUpdated": "2026-03-02T13:00:05.250Z"}
    salesforce = {
        "Id": "001000000000001AAA",
        "FirstName": "Ann",
        "LastName": "Okafor",
        "IsPersonAccount": True,
        "LastModifiedDate": "2026-03-02T13:00:05.000+0000",
    }
    fhir = {
        "resourceType": "Patient",
        "id": "p1",
        "meta": {"lastUpdated": "2026-03-02T08:00:05-05:00"},
        "name": [{"family": "Okafor", "given": ["Ann"]}],
    }
    assert await _modified(stub, "ghl", ghl) == datetime(2026, 3, 2, 13, 0, 5, 250_000, tzinfo=UTC)
    assert await _modified(stub, "salesforce", salesforce) == datetime(2026, 3, 2, 13, 0, 5, tzinfo=UTC)
    assert await _modified(stub, "fhir", fhir) == datetime(2026, 3, 2, 13, 0, 5, tzinfo=UTC)


async def test_no_time_is_made_up_where_the_record_has_none_with_a_zone(stub) -> None:  # noqa: ANN001
    base = {"id": "c1", "firstName": "Ann", "lastName": "Okafor"}
    assert await _modified(stub, "ghl", base) is None
    assert await _modified(stub, "ghl", {**base, "dateUpdated": "2026-03-02T13:00:05"}) is None  # no zone
    assert await _modified(stub, "ghl", {**base, "dateUpdated": "last tuesday"}) is None
    guest = {"id": "g1", "personal_info": {"first_name": "Ann", "last_name": "Okafor"}}
    assert await _modified(stub, "zenoti", guest) is None
