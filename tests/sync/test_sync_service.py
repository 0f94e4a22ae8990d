"""The sync service over real gRPC with its real peers (registry, audit, mapping, connection) and a
real Temporal dev server, on each database backend."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from google.protobuf import field_mask_pb2
from sqlalchemy import select
from temporalio.testing import WorkflowEnvironment

from libs.db import create_engine
from libs.errors import Aborted, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from libs.grpc_client import call, open_channel
from libs.identity import Caller, acting_as
from libs.protos.concord.audit.v1 import audit_pb2, audit_pb2_grpc
from libs.protos.concord.common.v1 import common_pb2
from libs.protos.concord.registry.v1 import registry_pb2 as rpb
from libs.protos.concord.registry.v1 import registry_pb2_grpc
from libs.protos.concord.sync.v1 import sync_pb2 as pb
from libs.protos.concord.sync.v1 import sync_pb2_grpc
from libs.settings import Settings
from services.audit.server import start as start_audit
from services.connection.server import start as start_connection
from services.connection.settings import ConnectionSettings
from services.mapping.server import start as start_mapping
from services.registry.server import start as start_registry
from services.sync import models
from services.sync.server import start as start_sync

P1, P2 = "p-harbor", "p-elsewhere"
CANARY_FAMILY = "Canaryfamilyzz"
CANARY_GIVEN = "Canarygivenzz"


@pytest.fixture(scope="module")
async def temporal_address(temporal_binary: str) -> AsyncIterator[str]:
    env = await WorkflowEnvironment.start_local(dev_server_existing_path=temporal_binary, ui=False)
    yield env.client.service_client.config.target_host
    await env.shutdown()


@dataclass
class Peers:
    settings: Settings
    sync: sync_pb2_grpc.SyncServiceStub
    registry: registry_pb2_grpc.RegistryServiceStub
    audit: audit_pb2_grpc.AuditServiceStub


@pytest.fixture
async def peers(settings: Settings, temporal_address: str) -> AsyncIterator[Peers]:
    # A task queue per test: no worker of an earlier test can take this test's workflows.
    settings = settings.model_copy(
        update={"temporal_address": temporal_address, "sync_task_queue": f"sync-{uuid.uuid4().hex[:8]}"}
    )
    async with contextlib.AsyncExitStack() as stack:
        for name, start in (("registry", start_registry), ("audit", start_audit), ("mapping", start_mapping)):
            service = await start(settings)
            stack.push_async_callback(service.stop)
            settings = settings.model_copy(update={f"{name}_address": service.address})
        connection = await start_connection(settings, options=ConnectionSettings(refresh_interval_seconds=3600))
        stack.push_async_callback(connection.stop)
        settings = settings.model_copy(update={"connection_address": connection.address})
        sync = await start_sync(settings)
        stack.push_async_callback(sync.stop)
        settings = settings.model_copy(update={"sync_address": sync.address})
        channels = {name: open_channel(settings.service_address(name)) for name in ("sync", "registry", "audit")}
        for channel in channels.values():
            stack.push_async_callback(channel.close)
        yield Peers(
            settings,
            sync_pb2_grpc.SyncServiceStub(channels["sync"]),
            registry_pb2_grpc.RegistryServiceStub(channels["registry"]),
            audit_pb2_grpc.AuditServiceStub(channels["audit"]),
        )


def patient(family: str = "Okafor", given: str = "Ada", birth_date: str = "1980-02-29", **extra: object) -> dict:
    return {
        "resourceType": "Patient",
        "name": [{"use": "official", "family": family, "given": [given]}],
        "birthDate": birth_date,
        "gender": "female",
        "telecom": [{"system": "email", "value": f"{given.lower()}.{family.lower()}@example.com"}],
        **extra,
    }


async def create(peers: Peers, resource: dict, practice_id: str = P1) -> pb.Patient:
    request = pb.CreatePatientRequest(practice_id=practice_id, resource_json=json.dumps(resource))
    return (await call(peers.sync.CreatePatient, request)).patient


async def list_all(peers: Peers, practice_id: str = P1, page_size: int = 0) -> list[pb.Patient]:
    found, token = [], ""
    while True:
        request = pb.ListPatientsRequest(practice_id=practice_id, page_size=page_size, page_token=token)
        page = await call(peers.sync.ListPatients, request)
        found += page.patients
        token = page.next_page_token
        if not token:
            return found


async def audit_events(peers: Peers, practice_id: str, patient_id: str = "") -> list[audit_pb2.AuditEvent]:
    request = audit_pb2.QueryRequest(practice_id=practice_id, patient_id=patient_id, page_size=500)
    return list((await call(peers.audit.Query, request)).events)


async def test_create_get_update_and_page_through_patients(peers: Peers) -> None:
    created = [await create(peers, patient(family=f"Family{i}", given=f"Given{i}")) for i in range(5)]
    first = created[0]
    assert first.version == 1 and first.practice_id == P1
    stored = json.loads(first.resource_json)
    assert stored["id"] == first.patient_id and stored["meta"]["versionId"] == "1"

    got = (await call(peers.sync.GetPatient, pb.GetPatientRequest(practice_id=P1, patient_id=first.patient_id))).patient
    assert json.loads(got.resource_json)["name"][0]["family"] == "Family0"

    changed = {**stored, "birthDate": "1981-03-01"}
    updated = (
        await call(
            peers.sync.UpdatePatient,
            pb.UpdatePatientRequest(
                practice_id=P1, patient_id=first.patient_id, resource_json=json.dumps(changed), expected_version=1
            ),
        )
    ).patient
    assert updated.version == 2
    assert json.loads(updated.resource_json)["birthDate"] == "1981-03-01"

    # Pages of two: every patient exactly once, in id order; the other practice sees none of them.
    pages = []
    token = ""
    while True:
        page = await call(
            peers.sync.ListPatients, pb.ListPatientsRequest(practice_id=P1, page_size=2, page_token=token)
        )
        pages.append([p.patient_id for p in page.patients])
        token = page.next_page_token
        if not token:
            break
    listed = [pid for page in pages for pid in page]
    assert [len(page) for page in pages] == [2, 2, 1]
    assert listed == sorted(p.patient_id for p in created)
    assert await list_all(peers, P2) == []

    with pytest.raises(NotFound) as error:
        await call(peers.sync.GetPatient, pb.GetPatientRequest(practice_id=P2, patient_id=first.patient_id))
    assert error.value.reason == "PATIENT_NOT_FOUND"
    with pytest.raises(InvalidArgument) as error:
        await call(peers.sync.ListPatients, pb.ListPatientsRequest(practice_id=P1, page_token="%%%"))
    assert error.value.field == "page_token"


async def test_a_stale_expected_version_is_aborted_and_writes_nothing(peers: Peers) -> None:
    created = await create(peers, patient())
    resource = json.loads(created.resource_json)

    async def update(birth_date: str, expected: int) -> pb.Patient:
        request = pb.UpdatePatientRequest(
            practice_id=P1,
            patient_id=created.patient_id,
            resource_json=json.dumps({**resource, "birthDate": birth_date}),
            expected_version=expected,
        )
        return (await call(peers.sync.UpdatePatient, request)).patient

    assert (await update("1990-01-01", 1)).version == 2
    updates_before = [e for e in await audit_events(peers, P1, created.patient_id) if e.action == "patient.update"]
    with pytest.raises(Aborted) as error:
        await update("1999-09-09", 1)
    assert error.value.reason == "VERSION_MISMATCH"
    assert "1999" not in str(error.value)

    got = (
        await call(peers.sync.GetPatient, pb.GetPatientRequest(practice_id=P1, patient_id=created.patient_id))
    ).patient
    assert got.version == 2 and json.loads(got.resource_json)["birthDate"] == "1990-01-01"
    updates_after = [e for e in await audit_events(peers, P1, created.patient_id) if e.action == "patient.update"]
    assert len(updates_after) == len(updates_before) == 1

    unknown = pb.UpdatePatientRequest(practice_id=P1, patient_id=str(uuid.uuid4()), resource_json=json.dumps(patient()))
    with pytest.raises(NotFound):
        await call(peers.sync.UpdatePatient, unknown)


async def test_import_is_all_or_nothing_and_names_the_bad_entry(peers: Peers) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"resource": patient(family="Goodone")},
            {"resource": {"resourceType": "Organization", "name": "Harbor Clinic"}},
            {"resource": patient(family=CANARY_FAMILY, birth_date="1980-13-45")},
            {"resource": patient(family="Goodtwo")},
        ],
    }
    with pytest.raises(InvalidArgument) as error:
        await call(peers.sync.ImportPatients, pb.ImportPatientsRequest(practice_id=P1, bundle_json=json.dumps(bundle)))
    assert error.value.field == "entry[2].resource.birthDate"
    assert "1980-13-45" not in str(error.value) and CANARY_FAMILY not in str(error.value)
    assert await list_all(peers) == []
    assert [e for e in await audit_events(peers, P1) if e.action == "patient.create"] == []

    del bundle["entry"][2]
    imported = await call(
        peers.sync.ImportPatients, pb.ImportPatientsRequest(practice_id=P1, bundle_json=json.dumps(bundle))
    )
    assert len(imported.patient_ids) == 2
    assert sorted(p.patient_id for p in await list_all(peers)) == sorted(imported.patient_ids)

    with pytest.raises(InvalidArgument) as error:
        await call(peers.sync.ImportPatients, pb.ImportPatientsRequest(practice_id=P1, bundle_json='{"resourceType":'))
    assert error.value.field == "bundle_json"


async def test_a_caller_of_another_practice_is_refused(peers: Peers) -> None:
    created = await create(peers, patient())
    outsider = Caller(user_id="nurse-2", practice_id=P2, role="staff")
    attempts = [
        (peers.sync.GetPatient, pb.GetPatientRequest(practice_id=P1, patient_id=created.patient_id)),
        (peers.sync.ListPatients, pb.ListPatientsRequest(practice_id=P1)),
        (peers.sync.CreatePatient, pb.CreatePatientRequest(practice_id=P1, resource_json=json.dumps(patient()))),
        (
            peers.sync.UpdatePatient,
            pb.UpdatePatientRequest(
                practice_id=P1, patient_id=created.patient_id, resource_json=created.resource_json, expected_version=1
            ),
        ),
        (peers.sync.ImportPatients, pb.ImportPatientsRequest(practice_id=P1, bundle_json='{"resourceType":"Bundle"}')),
        (peers.sync.StartSync, pb.StartSyncRequest(practice_id=P1, config_id=str(uuid.uuid4()))),
        (peers.sync.ListSyncRuns, pb.ListSyncRunsRequest(practice_id=P1)),
    ]
    with acting_as(outsider):
        for method, request in attempts:
            with pytest.raises(PermissionDenied) as error:
                await call(method, request)
            # Refused before the service runs (libs/confinement.py); PRACTICE_SCOPE is the service's own check.
            assert error.value.reason in {"OTHER_PRACTICE", "PRACTICE_SCOPE"}
    [only] = await list_all(peers)
    assert only.version == 1
    assert [e for e in await audit_events(peers, P1) if e.user_id == "nurse-2"] == []


async def test_every_read_and_write_is_audited_with_the_caller(peers: Peers) -> None:
    doctor = Caller(user_id="dr-okafor", practice_id=P1, role="provider", ip_address="10.0.0.7", request_id="req-1")
    with acting_as(doctor):
        created = await create(peers, patient())
        pid = created.patient_id
        await call(peers.sync.GetPatient, pb.GetPatientRequest(practice_id=P1, patient_id=pid))
        changed = {**json.loads(created.resource_json), "gender": "other"}
        request = pb.UpdatePatientRequest(practice_id=P1, patient_id=pid, resource_json=json.dumps(changed))
        await call(peers.sync.UpdatePatient, request)
        await list_all(peers)
    events = await audit_events(peers, P1, pid)
    assert [e.action for e in events] == ["patient.create", "patient.read", "patient.update", "patient.read"]
    assert {e.user_id for e in events} == {"dr-okafor"}
    assert {e.ip_address for e in events} == {"10.0.0.7"}
    assert all(e.resource == f"Patient/{pid}" and e.success for e in events)
    assert "family_name" in events[0].data_accessed and "birth_date" in events[0].data_accessed
    assert list(events[2].data_accessed) == ["gender"]  # an update names the fields it changed
    verified = await call(peers.audit.Verify, audit_pb2.VerifyRequest(practice_id=P1))
    assert verified.intact and verified.events_checked == 4


async def test_the_database_holds_no_plaintext_phi(peers: Peers) -> None:
    created = await create(peers, patient(family=CANARY_FAMILY, given=CANARY_GIVEN))
    changed = {**json.loads(created.resource_json), "address": [{"city": "Canarycityzz", "line": ["1 Canary Way"]}]}
    await call(
        peers.sync.UpdatePatient,
        pb.UpdatePatientRequest(practice_id=P1, patient_id=created.patient_id, resource_json=json.dumps(changed)),
    )
    bundle = {"resourceType": "Bundle", "entry": [{"resource": patient(family=CANARY_FAMILY, given="Second")}]}
    await call(peers.sync.ImportPatients, pb.ImportPatientsRequest(practice_id=P1, bundle_json=json.dumps(bundle)))
    # The service itself reads them back in clear.
    assert {json.loads(p.resource_json)["name"][0]["family"] for p in await list_all(peers)} == {CANARY_FAMILY}

    engine = create_engine("sync", peers.settings)
    try:
        async with engine.connect() as conn:
            rows = [row for table in models.metadata.sorted_tables for row in (await conn.execute(select(table)))]
            stored = (await conn.execute(select(models.records.c.resource_enc))).scalars().all()
    finally:
        await engine.dispose()
    assert len(stored) == 2
    raw = repr(rows).encode() + b"".join(
        bytes(value) for row in rows for value in row if isinstance(value, bytes | bytearray | memoryview)
    )
    canaries = (CANARY_FAMILY, CANARY_GIVEN, "Canarycityzz", "canarygivenzz.canaryfamilyzz@example.com")
    assert [c for c in canaries if c.encode() in raw or c.lower().encode() in raw.lower()] == []
    if not peers.settings.database_url:
        files = b"".join(p.read_bytes() for p in peers.settings.data_dir.glob("*.db*"))
        assert files and [c for c in canaries if c.encode() in files] == []


async def _config(peers: Peers, practice_id: str = P1) -> rpb.IntegrationConfig:
    await call(peers.registry.CreatePractice, rpb.CreatePracticeRequest(practice_id=practice_id, name="Clinic"))
    request = rpb.CreateIntegrationConfigRequest(
        config=rpb.IntegrationConfig(practice_id=practice_id, integration_type="ghl")
    )
    return (await call(peers.registry.CreateIntegrationConfig, request)).config


async def test_start_sync_refuses_what_cannot_run(peers: Peers) -> None:
    config = await _config(peers)
    await _config(peers, P2)
    start = pb.StartSyncRequest(practice_id=P1, config_id=config.config_id, entity_type=common_pb2.ENTITY_TYPE_PATIENT)
    assert not config.active
    with pytest.raises(FailedPrecondition) as error:
        await call(peers.sync.StartSync, start)
    assert error.value.reason == "CONFIG_INACTIVE"

    await call(
        peers.registry.UpdateIntegrationConfig,
        rpb.UpdateIntegrationConfigRequest(
            config=rpb.IntegrationConfig(config_id=config.config_id, active=True),
            update_mask=field_mask_pb2.FieldMask(paths=["active"]),
        ),
    )
    with pytest.raises(FailedPrecondition) as error:
        await call(peers.sync.StartSync, start)
    assert error.value.reason == "NOT_CONNECTED"

    with pytest.raises(NotFound) as error:
        await call(peers.sync.StartSync, pb.StartSyncRequest(practice_id=P2, config_id=config.config_id))
    assert error.value.reason == "CONFIG_NOT_FOUND"
    with pytest.raises(NotFound):
        await call(peers.sync.StartSync, pb.StartSyncRequest(practice_id=P1, config_id=str(uuid.uuid4())))
    with pytest.raises(InvalidArgument) as error:
        await call(peers.sync.StartSync, pb.StartSyncRequest(practice_id=P1))
    assert error.value.field == "config_id"

    for practice_id in (P1, P2):
        runs = await call(peers.sync.ListSyncRuns, pb.ListSyncRunsRequest(practice_id=practice_id))
        assert list(runs.runs) == []  # no run row left behind by a refused start


async def test_change_events_are_recorded_once_per_replay_id_and_name_the_resume_position(peers: Peers) -> None:
    config = await _config(peers)
    await _config(peers, P2)

    def accept(replay_id: str, practice_id: str = P1, entity: int = 0) -> pb.AcceptChangeEventRequest:
        return pb.AcceptChangeEventRequest(
            practice_id=practice_id, config_id=config.config_id, replay_id=replay_id, entity_type=entity
        )

    async def position() -> str:
        request = pb.GetChangeEventPositionRequest(practice_id=P1, config_id=config.config_id)
        return (await call(peers.sync.GetChangeEventPosition, request)).replay_id

    assert await position() == ""
    # Echoes and objects the config does not sync are recorded without a pull.
    for replay_id in ("41", "42"):
        recorded = await call(peers.sync.AcceptChangeEvent, accept(replay_id))
        assert recorded.outcome == pb.CHANGE_EVENT_OUTCOME_RECORDED and not recorded.HasField("run")
    again = await call(peers.sync.AcceptChangeEvent, accept("41"))
    assert again.outcome == pb.CHANGE_EVENT_OUTCOME_DUPLICATE
    assert await position() == "42"
    # A pull that cannot run is refused and the event is not recorded: its resend is not a duplicate.
    with pytest.raises(FailedPrecondition) as refused:
        await call(peers.sync.AcceptChangeEvent, accept("43", entity=common_pb2.ENTITY_TYPE_PATIENT))
    assert refused.value.reason == "CONFIG_INACTIVE"
    assert await position() == "42"

    with pytest.raises(NotFound):
        await call(peers.sync.AcceptChangeEvent, accept("44", practice_id=P2))
    with pytest.raises(InvalidArgument) as bad:
        await call(peers.sync.AcceptChangeEvent, accept(""))
    assert (bad.value.field, bad.value.reason) == ("replay_id", "INVALID_REPLAY_ID")
    with pytest.raises(InvalidArgument) as none:
        await call(
            peers.sync.ResyncChangeEvents, pb.ResyncChangeEventsRequest(practice_id=P1, config_id=config.config_id)
        )
    assert none.value.field == "entity_types"
    with acting_as(Caller(user_id="u", practice_id=P2, role="admin")), pytest.raises(PermissionDenied):
        await call(
            peers.sync.GetChangeEventPosition,
            pb.GetChangeEventPositionRequest(practice_id=P1, config_id=config.config_id),
        )
