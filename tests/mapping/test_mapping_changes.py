"""Changes of a config's mappings, called straight over gRPC (no gateway in front): each one is
audited through the audit service (who, which config and version, which fields, success), and the
config is checked in the registry first (it exists, is the caller's practice's, is of the vendor
given). SQLite, and PostgreSQL when CONCORD_TEST_POSTGRES_URL is set."""

from __future__ import annotations

import uuid

import pytest

from libs.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable
from libs.grpc_client import call
from libs.identity import Caller, acting_as
from libs.protos.concord.audit.v1 import audit_pb2
from libs.protos.concord.common.v1 import common_pb2
from libs.protos.concord.mapping.v1 import mapping_pb2 as pb
from tests.mapping.conftest import MappingStack

PATIENT = common_pb2.ENTITY_TYPE_PATIENT
CANARY = "Philippa Canaryvaluezz"  # PHI a caller might put where a field name goes


def _rule(
    hub: str, vendor: str = "", direction: int = pb.MAPPING_DIRECTION_BOTH, transform: str = ""
) -> pb.FieldMapping:
    return pb.FieldMapping(
        hub_field=hub, vendor_field=vendor, direction=direction, transform=pb.Transform(name=transform)
    )


def _replace(
    config_id: str, overrides: list, expected: int = 0, integration_type: str = "ghl"
) -> pb.ReplaceFieldMappingsRequest:
    return pb.ReplaceFieldMappingsRequest(
        config_id=config_id,
        integration_type=integration_type,
        entity_type=PATIENT,
        overrides=overrides,
        expected_version=expected,
    )


def _delete(config_id: str, hub_field: str) -> pb.DeleteFieldMappingRequest:
    return pb.DeleteFieldMappingRequest(
        config_id=config_id, integration_type="ghl", entity_type=PATIENT, hub_field=hub_field
    )


async def _events(mapping: MappingStack, practice_id: str) -> list[audit_pb2.AuditEvent]:
    answer = await call(
        mapping.audit.Query, audit_pb2.QueryRequest(practice_id=practice_id, action="mapping.change", page_size=100)
    )
    return list(answer.events)


async def _version(mapping: MappingStack, config_id: str, integration_type: str = "ghl") -> int:
    listed = await call(
        mapping.stub.ListFieldMappings,
        pb.ListFieldMappingsRequest(config_id=config_id, integration_type=integration_type, entity_type=PATIENT),
    )
    return listed.mapping_version


async def test_every_change_is_audited_with_who_what_version_and_outcome(mapping: MappingStack) -> None:
    config = await mapping.config()
    admin = Caller(
        user_id="admin-7",
        practice_id=config.practice_id,
        role="admin",
        ip_address="203.0.113.9",
        user_agent="concord-tests",
        request_id="req-42",
    )
    stub, config_id = mapping.stub, config.config_id
    with acting_as(admin):
        first = _replace(
            config_id,
            [_rule("phone", direction=pb.MAPPING_DIRECTION_NONE), _rule("state", "state", transform="us_state")],
        )
        assert (await call(stub.ReplaceFieldMappings, first)).mapping_version == 1
        second = _replace(config_id, [_rule("state", "state", transform="us_state"), _rule("city", "website")], 1)
        assert (await call(stub.ReplaceFieldMappings, second)).mapping_version == 2
        with pytest.raises(FailedPrecondition):
            await call(stub.ReplaceFieldMappings, _replace(config_id, [_rule("city", "companyName")], expected=1))
        with pytest.raises(InvalidArgument):
            await call(stub.ReplaceFieldMappings, _replace(config_id, [_rule("email", "email"), _rule(CANARY, "name")]))
        assert (await call(stub.DeleteFieldMapping, _delete(config_id, "city"))).mapping_version == 3
        with pytest.raises(NotFound):
            await call(stub.DeleteFieldMapping, _delete(config_id, "city"))

    events = await _events(mapping, config.practice_id)
    resource = f"IntegrationConfig/{config_id}"
    assert [(e.resource, e.success, list(e.data_accessed)) for e in events] == [
        (f"{resource}/_history/1", True, ["patient.phone", "patient.state"]),
        (f"{resource}/_history/2", True, ["patient.city", "patient.phone"]),  # state stayed as it was
        (resource, False, ["patient.city"]),  # VERSION_MISMATCH
        (resource, False, ["patient.email"]),  # refused; the made-up hub field is not named
        (f"{resource}/_history/3", True, ["patient.city"]),
        (resource, False, ["patient.city"]),  # MAPPING_NOT_FOUND
    ]
    for event in events:
        assert (event.user_id, event.ip_address, event.user_agent, event.correlation_id) == (
            "admin-7", "203.0.113.9", "concord-tests", "req-42",
        )  # fmt: skip
        assert (event.action, event.integration_type, event.patient_id) == ("mapping.change", "ghl", "")
        assert "Canaryvaluezz" not in str(event)
    chain = await call(mapping.audit.Verify, audit_pb2.VerifyRequest(practice_id=config.practice_id))
    assert chain.intact and chain.events_checked == 6


async def test_a_change_the_audit_service_cannot_record_is_not_made(mapping: MappingStack) -> None:
    config = await mapping.config()
    await mapping.audit_service.stop()
    with pytest.raises(Unavailable):
        await call(mapping.stub.ReplaceFieldMappings, _replace(config.config_id, [_rule("city", "website")]))
    assert await _version(mapping, config.config_id) == 0  # rolled back with its audit event


async def test_the_config_must_exist_be_the_callers_and_of_the_vendor_given(mapping: MappingStack) -> None:
    stub = mapping.stub
    mine, theirs = await mapping.config(), await mapping.config()
    me = Caller(user_id="admin-1", practice_id=mine.practice_id, role="admin")
    change = [_rule("phone", direction=pb.MAPPING_DIRECTION_NONE)]
    sample = '{"resourceType": "Patient", "name": [{"family": "Okafor"}]}'
    with acting_as(me):
        for config_id in (str(uuid.uuid4()), theirs.config_id):  # missing, and another practice's: alike
            requests = [
                (stub.ReplaceFieldMappings, _replace(config_id, change)),
                (stub.DeleteFieldMapping, _delete(config_id, "phone")),
                (stub.ListFieldMappings, pb.ListFieldMappingsRequest(config_id=config_id, integration_type="ghl", entity_type=PATIENT)),
                (stub.MapToVendor, pb.MapToVendorRequest(config_id=config_id, integration_type="ghl", entity_type=PATIENT, resource_jsons=[sample])),
                (stub.PreviewMapping, pb.PreviewMappingRequest(
                    config_id=config_id, integration_type="ghl", entity_type=PATIENT,
                    direction=pb.MAPPING_DIRECTION_TO_VENDOR, resource_json=sample,
                )),
            ]  # fmt: skip
            for method, request in requests:
                with pytest.raises(NotFound) as error:
                    await call(method, request)
                assert error.value.reason == "CONFIG_NOT_FOUND"
        # My GoHighLevel config named as another vendor's: overrides are never filed under the wrong one.
        for integration_type in ("salesforce", "fhir"):
            with pytest.raises(InvalidArgument) as wrong:
                await call(
                    stub.ReplaceFieldMappings, _replace(mine.config_id, change, integration_type=integration_type)
                )
            assert (wrong.value.field, wrong.value.reason) == ("integration_type", "INTEGRATION_TYPE_MISMATCH")
        with pytest.raises(InvalidArgument) as wrong:
            await call(
                stub.MapToHub,
                pb.MapToHubRequest(config_id=mine.config_id, integration_type="salesforce", entity_type=PATIENT),
            )
        assert wrong.value.reason == "INTEGRATION_TYPE_MISMATCH"
        assert (await call(stub.ReplaceFieldMappings, _replace(mine.config_id, change))).mapping_version == 1
    # Nothing was stored under their config, and neither chain has an event of the refused calls.
    with acting_as(Caller(user_id="admin-2", practice_id=theirs.practice_id, role="admin")):
        assert await _version(mapping, theirs.config_id) == 0
    assert await _events(mapping, theirs.practice_id) == []
    assert [e.success for e in await _events(mapping, mine.practice_id)] == [True]
