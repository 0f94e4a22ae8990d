"""Sync use cases: the practice's canonical patients, and the steps of a sync run."""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf import json_format, struct_pb2
from sqlalchemy.ext.asyncio import async_sessionmaker
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
    WorkflowFailureError,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from libs import fhir_patient, minimum_necessary, webhooks
from libs.audit_events import caller_event
from libs.blind_index import MATCH, POSSIBLE, BlindIndexer, decide, lookup_digests
from libs.crypto import EnvelopeCipher, LocalKeyring
from libs.errors import Aborted, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied, Unauthenticated
from libs.grpc_client import call
from libs.identity import current_caller
from libs.merge_fields import field_policies_for
from libs.protos.concord.adapter.v1 import adapter_pb2
from libs.protos.concord.audit.v1 import audit_pb2, audit_pb2_grpc
from libs.protos.concord.common.v1 import common_pb2
from libs.protos.concord.connection.v1 import connection_pb2, connection_pb2_grpc
from libs.protos.concord.mapping.v1 import mapping_pb2, mapping_pb2_grpc
from libs.protos.concord.registry.v1 import registry_pb2, registry_pb2_grpc
from libs.settings import Settings
from libs.telemetry import current_trace_id
from services.sync import domain
from services.sync.availability import AvailabilityInput, availability_failure
from services.sync.change_events import ChangeEvents
from services.sync.convert import IDENTIFYING
from services.sync.domain import (
    CursorRequest,
    DeleteResults,
    FinishRun,
    PullPage,
    PushBatch,
    PushBatchRequest,
    PushItem,
    PushResults,
    SyncRunInput,
    workflow_id,
)
from services.sync.entities import APPOINTMENT, ENTITIES, PATIENT, SERVICE, EntityKind, kind_of
from services.sync.messaging import MessageInput, message_workflow_id, send_failure
from services.sync.reconciliation import REVIEW_KIND as MISSING_REVIEW
from services.sync.reconciliation import Reconciliations
from services.sync.repository import SyncRepository, now
from services.sync.tombstones import REVIEW_KIND as TOMBSTONE_REVIEW
from services.sync.tombstones import REVIEW_PURPOSE, Tombstones, can_delete, not_found

log = logging.getLogger(__name__)
SYNC_USER = "system:sync"
# Associated data of a review item's ciphertext (its three values of one field): never rename.
# ... and of a dead letter's vendor record.
DEAD_LETTER_PURPOSE = "dead-letter-record"
MAX_IMPORT = 5000
# Records a vendor may send in one ApplyVendorRecords call.
MAX_APPLY = 100
# The answers a review item of each kind takes (a conflict's: hub, vendor or a typed value).
CHOICES = {
    "identity": ("same", "different"),
    TOMBSTONE_REVIEW: ("hub", "vendor"),
    # A record a reconciliation did not find at the vendor: make it there again, or take the vendor's side.
    MISSING_REVIEW: ("hub", "vendor"),
}


@dataclass
class Peers:
    registry: registry_pb2_grpc.RegistryServiceStub
    connection: connection_pb2_grpc.ConnectionServiceStub
    mapping: mapping_pb2_grpc.MappingServiceStub
    audit: audit_pb2_grpc.AuditServiceStub


def _struct(record: dict) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(record)
    return message


def _options_json(config: registry_pb2.IntegrationConfig) -> dict:
    return json_format.MessageToDict(config.options, preserving_proto_field_name=True)


def _fields_present(projection: dict[str, str | None]) -> list[str]:
    return sorted(name for name, value in projection.items() if value is not None)


class SyncService:
    def __init__(
        self,
        sessions: async_sessionmaker,
        cipher: EnvelopeCipher,
        peers: Peers,
        temporal: Client,
        task_queue: str,
        indexer: BlindIndexer,
        settings: Settings | None = None,
    ) -> None:
        self._settings = settings
        self._sessions = sessions
        self._indexer = indexer
        self._repo = SyncRepository()
        self._cipher = cipher
        self._peers = peers
        self._temporal = temporal
        self._task_queue = task_queue
        self.change_events = ChangeEvents(sessions, self._repo, self)
        self.tombstones = Tombstones(self)
        self.reconciliations = Reconciliations(self)

    # --- the practice's patients -------------------------------------------------------------

    def _scope(self, practice_id: str) -> str:
        if not practice_id:
            raise InvalidArgument("practice_id is required", field="practice_id", reason="REQUIRED_FIELD_MISSING")
        caller = current_caller()
        if caller.practice_id and caller.practice_id != practice_id:
            raise PermissionDenied("the caller belongs to another practice", reason="PRACTICE_SCOPE")
        return practice_id

    async def _seal(self, practice_id: str, resource: dict, kind: EntityKind = ENTITIES[PATIENT]) -> bytes:
        return await self._cipher.encrypt_json(practice_id, resource, kind.purpose)

    async def _open(self, practice_id: str, blob: bytes, kind: EntityKind = ENTITIES[PATIENT]) -> dict:
        return await self._cipher.decrypt_json(practice_id, blob, kind.purpose)  # type: ignore[return-value]

    def _new_row(
        self, practice_id: str, resource: dict, sealed: bytes, kind: EntityKind = ENTITIES[PATIENT]
    ) -> dict[str, Any]:
        stamp = now()
        return {
            "record_id": resource["id"],
            "entity_type": kind.entity_type,
            "practice_id": practice_id,
            "version": 1,
            "resource_enc": sealed,
            "created_at": stamp,
            "updated_at": stamp,
        }

    @staticmethod
    def _change(
        practice_id: str,
        kind: EntityKind,
        record_id: str,
        version: int,
        side: str,
        action: str,
        fields: list[str],
        *,
        source: str = "",
        run_id: str = "",
    ) -> dict[str, Any]:
        """A row of the record's history: who (side and source), what (field names), which run."""
        return {
            "history_id": str(uuid.uuid4()),
            "practice_id": practice_id,
            "entity_type": kind.entity_type,
            "record_id": record_id,
            "version": version,
            "side": side,
            "source": source or current_caller().user_id or SYNC_USER,
            "action": action,
            "fields": sorted(fields),
            "run_id": run_id,
            "changed_at": now(),
        }

    @staticmethod
    def _stamp(resource: dict, patient_id: str, version: int) -> dict:
        stamped = {**resource, "id": patient_id}
        stamped["meta"] = {
            **resource.get("meta", {}),
            "versionId": str(version),
            "lastUpdated": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        }
        return stamped

    def _index_rows(self, practice_id: str, record_id: str, resource: dict, kind: EntityKind) -> list[dict[str, Any]]:
        """The blind-index rows of a patient as it now reads (none for other kinds)."""
        if not kind.is_patient:
            return []
        digests = self._indexer.digests(practice_id, kind.project(resource))
        return [
            {"record_id": record_id, "kind": k, "practice_id": practice_id, "digest": d} for k, d in digests.items()
        ]

    async def _reindex(self, session: Any, practice_id: str, record_id: str, resource: dict, kind: EntityKind) -> None:
        if kind.is_patient:
            await self._repo.replace_indexes(
                session, record_id, self._index_rows(practice_id, record_id, resource, kind)
            )

    async def create_record(self, practice_id: str, entity_type: str, resource_json: str) -> tuple[dict, Any]:
        self._scope(practice_id)
        kind = kind_of(entity_type)
        resource = self._stamp(kind.parse(resource_json), str(uuid.uuid4()), 1)
        row = self._new_row(practice_id, resource, await self._seal(practice_id, resource, kind), kind)
        async with self._sessions() as session, session.begin():
            await self._repo.insert_records(session, [row])
            await self._repo.insert_indexes(session, self._index_rows(practice_id, resource["id"], resource, kind))
            fields = _fields_present(kind.project(resource))
            await self._repo.add_history(
                session, [self._change(practice_id, kind, resource["id"], 1, "hub", "create", fields)]
            )
            await self._audit([self._event(practice_id, "create", resource["id"], kind.project(resource), kind=kind)])
        return resource, row

    async def create_patient(self, practice_id: str, resource_json: str) -> tuple[dict, Any]:
        return await self.create_record(practice_id, PATIENT, resource_json)

    async def import_patients(self, practice_id: str, bundle_json: str) -> list[str]:
        self._scope(practice_id)
        try:
            bundle = json.loads(bundle_json)
        except ValueError:
            raise InvalidArgument("bundle_json is not JSON", field="bundle_json", reason="INVALID_JSON") from None
        if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
            raise InvalidArgument("bundle_json must be a FHIR Bundle", field="bundle_json", reason="NOT_A_BUNDLE")
        entries = [
            (index, entry["resource"])
            for index, entry in enumerate(bundle.get("entry") or [])
            if isinstance(entry, dict)
            and isinstance(entry.get("resource"), dict)
            and entry["resource"].get("resourceType") == "Patient"
        ]
        if len(entries) > MAX_IMPORT:
            raise InvalidArgument(f"at most {MAX_IMPORT} patients per import", field="bundle_json", reason="TOO_MANY")
        rows, events, ids, indexes = [], [], [], []
        for index, raw in entries:
            try:
                parsed = fhir_patient.parse_patient(raw)
            except InvalidArgument as error:
                path = f"entry[{index}].resource" + (f".{error.field}" if error.field else "")
                raise InvalidArgument(error.message, field=path, reason=error.reason) from None
            resource = self._stamp(parsed, str(uuid.uuid4()), 1)
            rows.append(self._new_row(practice_id, resource, await self._seal(practice_id, resource)))
            events.append(self._event(practice_id, "patient.create", resource["id"], fhir_patient.project(resource)))
            ids.append(resource["id"])
            indexes += self._index_rows(practice_id, resource["id"], resource, ENTITIES[PATIENT])
        history = [
            self._change(practice_id, ENTITIES[PATIENT], e.patient_id, 1, "hub", "create", list(e.data_accessed))
            for e in events
        ]
        async with self._sessions() as session, session.begin():
            await self._repo.insert_records(session, rows)
            await self._repo.insert_indexes(session, indexes)
            await self._repo.add_history(session, history)
            await self._audit(events)
        return ids

    async def get_record(self, practice_id: str, entity_type: str, record_id: str) -> tuple[dict, Any]:
        self._scope(practice_id)
        kind = kind_of(entity_type)
        async with self._sessions() as session:
            row = await self._repo.get_record(session, practice_id, kind.entity_type, record_id)
        if row is None or row.deleted_at is not None:
            raise not_found(kind)
        resource = await self._open(practice_id, row.resource_enc, kind)
        await self._audit([self._event(practice_id, "read", record_id, kind.project(resource), kind=kind)])
        return resource, row

    async def get_patient(self, practice_id: str, patient_id: str) -> tuple[dict, Any]:
        return await self.get_record(practice_id, PATIENT, patient_id)

    async def update_patient(
        self, practice_id: str, patient_id: str, resource_json: str, expected_version: int
    ) -> tuple[dict, Any]:
        self._scope(practice_id)
        incoming = fhir_patient.parse_patient(resource_json)
        if incoming.get("id") not in (None, patient_id):
            # Named like every other resource error (parse_patient's FHIR paths): relative to the resource.
            raise InvalidArgument("resource id does not match patient_id", field="id", reason="ID_MISMATCH")
        async with self._sessions() as session, session.begin():
            row = await self._repo.get_record(session, practice_id, PATIENT, patient_id, lock=True)
            if row is None or row.deleted_at is not None:
                raise NotFound("patient not found", reason="PATIENT_NOT_FOUND")
            if expected_version and expected_version != row.version:
                raise Aborted("the patient changed since it was read", reason="VERSION_MISMATCH")
            before = fhir_patient.project(await self._open(practice_id, row.resource_enc))
            resource = self._stamp(incoming, patient_id, row.version + 1)
            sealed = await self._seal(practice_id, resource)
            if not await self._repo.update_record(session, patient_id, row.version + 1, sealed, row.version):
                raise Aborted("the patient changed concurrently", reason="VERSION_MISMATCH")
            await self._reindex(session, practice_id, patient_id, resource, ENTITIES[PATIENT])
            after = fhir_patient.project(resource)
            # Both sides' names: a consent field is projected only while recorded, so one removed is absent after.
            changed = sorted(name for name in before.keys() | after.keys() if after.get(name) != before.get(name))
            await self._repo.add_history(
                session,
                [self._change(practice_id, ENTITIES[PATIENT], patient_id, row.version + 1, "hub", "update", changed)],
            )
            await self._audit([self._event(practice_id, "patient.update", patient_id, fields=changed)])
            updated = await self._repo.get_record(session, practice_id, PATIENT, patient_id)
        return resource, updated

    async def delete_record(self, practice_id: str, entity_type: str, record_id: str) -> int:
        self._scope(practice_id)
        kind = kind_of(entity_type)
        await self._cipher.ensure_key(practice_id)
        return await self.tombstones.delete(practice_id, kind.entity_type, record_id)

    async def merge_patients(self, practice_id: str, patient_id: str, into: str) -> tuple[dict, Any]:
        self._scope(practice_id)
        await self.tombstones.merge(practice_id, patient_id, into)
        return await self.get_patient(practice_id, into)

    async def list_records(self, practice_id: str, entity_type: str, after: str, limit: int) -> list[tuple[dict, Any]]:
        self._scope(practice_id)
        kind = kind_of(entity_type)
        async with self._sessions() as session:
            rows = await self._repo.list_records(session, practice_id, kind.entity_type, after, limit)
        out = [(await self._open(practice_id, row.resource_enc, kind), row) for row in rows]
        await self._audit([self._event(practice_id, "read", r["id"], kind.project(r), kind=kind) for r, _ in out])
        return out

    async def list_patients(self, practice_id: str, after: str, limit: int) -> list[tuple[dict, Any]]:
        return await self.list_records(practice_id, PATIENT, after, limit)

    async def get_link(self, practice_id: str, patient_id: str, config_id: str) -> Any:
        self._scope(practice_id)
        async with self._sessions() as session:
            link = await self._repo.get_link(session, config_id, PATIENT, patient_id)
        if link is None or link.practice_id != practice_id:
            raise NotFound("no link for that patient and config", reason="LINK_NOT_FOUND")
        return link

    # --- runs ----------------------------------------------------------------------------------

    async def owned_config(self, practice_id: str, config_id: str) -> Any:
        """The registry's config, if it belongs to the caller's practice."""
        self._scope(practice_id)
        if not config_id:
            raise InvalidArgument("config_id is required", field="config_id", reason="REQUIRED_FIELD_MISSING")
        config = (
            await call(
                self._peers.registry.GetIntegrationConfig, registry_pb2.GetIntegrationConfigRequest(config_id=config_id)
            )
        ).config
        if config.practice_id != practice_id:
            raise NotFound("integration config not found", reason="CONFIG_NOT_FOUND")
        return config

    async def _runnable_config(self, practice_id: str, config_id: str, kind: EntityKind) -> Any:
        """The config, if it belongs to the practice, is active, syncs this entity and is connected."""
        config = await self.owned_config(practice_id, config_id)
        if not config.active:
            raise FailedPrecondition("the integration config is not active", reason="CONFIG_INACTIVE")
        if common_pb2.EntityType.Value(kind.entity_type) not in config.enabled_entities:
            raise FailedPrecondition(
                f"{kind.resource_type} sync is not enabled for this config", reason="ENTITY_NOT_ENABLED"
            )
        connection = (
            await call(self._peers.connection.GetConnection, connection_pb2.GetConnectionRequest(config_id=config_id))
        ).connection
        if connection.status != connection_pb2.CONNECTION_STATUS_CONNECTED:
            raise FailedPrecondition("the vendor is not connected", reason="NOT_CONNECTED")
        return config

    async def apply_vendor_records(
        self, practice_id: str, config_id: str, entity_type: str, records: list[dict]
    ) -> tuple[Any, list[tuple[str, str, bool]]]:
        """Records a vendor sent in (Zapier actions), reconciled exactly as a pull page, as one run.
        Returns the run and, per record, (external id, hub record id or "", created)."""
        self._scope(practice_id)
        if not config_id:
            raise InvalidArgument("config_id is required", field="config_id", reason="REQUIRED_FIELD_MISSING")
        if not 1 <= len(records) <= MAX_APPLY:
            raise InvalidArgument(f"send 1 to {MAX_APPLY} records", field="records", reason="INVALID_BATCH_SIZE")
        kind = kind_of(entity_type or PATIENT)
        config = await self._runnable_config(practice_id, config_id, kind)
        run_id = str(uuid.uuid4())
        async with self._sessions() as session, session.begin():
            await self._repo.insert_run(
                session,
                domain.new_run_row(
                    run_id, config, kind.entity_type, "SYNC_DIRECTION_PULL", f"inbound:{run_id}", current_trace_id()
                ),
            )
            cursor = await self._repo.get_cursor(session, config_id, kind.entity_type)
        page = PullPage(
            run_id=run_id,
            config_id=config_id,
            practice_id=practice_id,
            integration_type=config.integration_type,
            conflict_policy=common_pb2.ConflictPolicy.Name(config.conflict_policy),
            field_policies=_field_policies(config),
            records=records,
            # Inbound records move no cursor: the page keeps the one the config's pulls use.
            next_cursor=cursor,
            vendor_requests=0,
            entity_type=kind.entity_type,
            options=_options_json(config),
        )
        external_ids = [str(r.get("external_id") or "") for r in records]
        async with self._sessions() as session:
            before = await self._repo.links_by_external_id(session, config_id, kind.entity_type, external_ids)
        try:
            await self.reconcile_pull_page(page)
        finally:
            await self.finish_run(FinishRun(run_id))
        async with self._sessions() as session, session.begin():
            after = await self._repo.links_by_external_id(session, config_id, kind.entity_type, external_ids)
            held = await self._repo.open_identity_reviews(session, config_id, kind.entity_type, external_ids)
            run = await self._repo.get_run(session, run_id)
            linked_now = [after[ext].record_id for ext in external_ids if ext in after and ext not in before]
            # Newly linked is not newly made: a record matched to an existing patient was not created.
            made = {
                record_id
                for record_id, row in (
                    await self._repo.get_records(session, practice_id, kind.entity_type, linked_now)
                ).items()
                if _aware(row.created_at) >= _aware(run.started_at)
            }
        applied = [
            (
                ext,
                after[ext].record_id if ext in after else "",
                ext in after and after[ext].record_id in made,
                held[ext].review_id if ext in held and ext not in after else "",
            )
            for ext in external_ids
        ]
        return run, applied

    async def start_sync(
        self,
        practice_id: str,
        config_id: str,
        entity_type: str,
        direction: str,
        start_delay: float = 0.0,
        from_start: bool = False,
        lane: int = adapter_pb2.LANE_USER,
    ) -> Any:
        """Starts a run; its vendor calls wait in ``lane`` of the vendor's rate governor (a full
        pull from the start is a backfill: it waits behind everything else)."""
        self._scope(practice_id)
        if not config_id:
            raise InvalidArgument("config_id is required", field="config_id", reason="REQUIRED_FIELD_MISSING")
        kind = kind_of(entity_type or PATIENT)
        config = await self._runnable_config(practice_id, config_id, kind)
        direction = direction or common_pb2.SyncDirection.Name(config.sync_direction)
        definition = await self._definition(config)
        # How many records one push activity carries: Salesforce writes 200 in one call, Zenoti's
        # 60 calls a minute want small batches to stay well inside an activity's time limit.
        batch = definition.extra.fields.get("write_batch_size")
        push_batch_size = int(batch.number_value) if batch is not None and batch.number_value >= 1 else 100
        direction = _readable_direction(definition, kind.entity_type, direction)
        run_id = str(uuid.uuid4())
        wf_id = workflow_id(config_id, kind.entity_type)
        row = domain.new_run_row(run_id, config, kind.entity_type, direction, wf_id, current_trace_id(), start_delay)
        async with self._sessions() as session, session.begin():
            await self._repo.insert_run(session, row)
        run_input = SyncRunInput(
            run_id=run_id,
            config_id=config_id,
            practice_id=practice_id,
            integration_type=config.integration_type,
            entity_type=kind.entity_type,
            direction=direction,
            conflict_policy=common_pb2.ConflictPolicy.Name(config.conflict_policy),
            field_policies=_field_policies(config),
            push_batch_size=push_batch_size,
            options=_options_json(config),
            from_start=from_start,
            lane=adapter_pb2.LANE_BACKFILL if from_start else lane,
        )
        try:
            await self._temporal.start_workflow(
                "PatientSync",
                run_input,
                id=wf_id,
                task_queue=self._task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                start_delay=timedelta(seconds=start_delay) if start_delay > 0 else None,
            )
        except WorkflowAlreadyStartedError:
            async with self._sessions() as session, session.begin():
                await self._repo.delete_run(session, run_id)
            raise FailedPrecondition(
                "a sync of this config is already running", reason="SYNC_ALREADY_RUNNING"
            ) from None
        return row

    # --- schedules ------------------------------------------------------------------------------

    async def apply_schedules(self, practice_id: str, config_id: str) -> list[Any]:
        """Makes the config's Temporal Schedules what its frequency says: one per entity it syncs,
        every SCHEDULE_INTERVALS[frequency], overlapping runs skipped; none for a manual or
        inactive config. Besides, the daily reconciliations (services/sync/reconciliation.py).
        Idempotent; returns the schedules' descriptions, the sync ones first."""
        self._scope(practice_id)
        config = await self.owned_config(practice_id, config_id)
        every = domain.SCHEDULE_INTERVALS.get(common_pb2.SyncFrequency.Name(config.sync_frequency))
        wanted = {
            common_pb2.EntityType.Name(e) for e in config.enabled_entities if common_pb2.EntityType.Name(e) in ENTITIES
        }
        if not config.active or every is None:
            wanted = set()
        described = []
        for entity_type in sorted(ENTITIES):
            request = domain.ScheduledSyncInput(practice_id, config_id, entity_type) if entity_type in wanted else None
            description = await self.put_schedule(
                domain.schedule_id(config_id, entity_type),
                request,
                every,
                workflow_id=f"scheduled-sync:{config_id}:{entity_type}",
            )
            if description is not None:
                described.append((entity_type, every, description))
        return described + await self.reconciliations.apply_schedules(config)

    async def put_schedule(
        self,
        schedule_id: str,
        request: domain.ScheduledSyncInput | None,
        every: timedelta | None,
        *,
        workflow_id: str,
        jitter: timedelta | None = None,
    ) -> Any:
        """Makes Temporal Schedule ``schedule_id`` start ScheduledSync(request) every ``every``
        (overlapping starts skipped), or deletes it when ``request`` is None; returns its
        description (None when deleted)."""
        handle = self._temporal.get_schedule_handle(schedule_id)
        if request is None:
            with contextlib.suppress(RPCError):  # none there: nothing to delete
                await handle.delete()
            return None
        schedule = Schedule(
            action=ScheduleActionStartWorkflow("ScheduledSync", request, id=workflow_id, task_queue=self._task_queue),
            spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)], jitter=jitter),
            policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
        )
        try:
            await handle.update(lambda _: ScheduleUpdate(schedule=schedule))
        except RPCError as error:
            if error.status != RPCStatusCode.NOT_FOUND:
                raise
            handle = await self._temporal.create_schedule(handle.id, schedule)
        return await handle.describe()

    # --- webhooks -------------------------------------------------------------------------------

    async def accept_webhook(
        self, integration_type: str, headers: dict[str, str], body: bytes, config_id: str = ""
    ) -> dict[str, int]:
        """A vendor's delivery, its signature checked (libs/webhooks.py, else the vendor's adapter),
        its events put in the inbox of each real-time config connected to the account it names
        (or of the config its URL names, for vendors that sign with a secret per config),
        deduplicated by the vendor's event id, and each such config's InboxWorkflow started or
        nudged. Configs of other frequencies ignore webhooks: their scheduled pulls bring the same
        changes."""
        if not integration_type.isidentifier():
            raise InvalidArgument("unknown vendor", field="integration_type", reason="UNKNOWN_VENDOR")
        configs: list[Any] = []
        if integration_type in webhooks.PER_CONFIG:
            config = await self._webhook_config(integration_type, config_id)
            secret = self.webhook_secret_of(config.config_id) if config is not None else ""
            request = adapter_pb2.VerifyWebhookRequest(headers=headers, body=body)
            verified = webhooks.PER_CONFIG[integration_type](secret, request) if secret else _UNSIGNED
            configs = [config]
        else:
            verified = await self._verify_webhook(integration_type, headers, body)
        if not verified.valid:
            raise Unauthenticated("the webhook's signature does not verify", reason=verified.reason or "BAD_SIGNATURE")
        counts = {"events": len(verified.events), "accepted": 0, "duplicates": 0, "ignored": 0}
        if not verified.events or not (verified.external_account_id or configs):
            return counts
        if not configs:
            found = await call(
                self._peers.connection.FindConnections,
                connection_pb2.FindConnectionsRequest(
                    integration_type=integration_type, external_account_id=verified.external_account_id
                ),
            )
            configs = [await self.owned_config(c.practice_id, c.config_id) for c in found.connections]
        for config in configs:
            realtime = config.active and config.sync_frequency == common_pb2.SYNC_FREQUENCY_REAL_TIME
            events = [
                (e.event_id, common_pb2.EntityType.Name(e.entity_type), e.external_id, e.deleted, e.type)
                for e in verified.events
                if realtime and e.entity_type in config.enabled_entities
            ]
            counts["ignored"] += len(verified.events) - len(events)
            if not events:
                continue
            fresh = await self.to_inbox(config, events)
            counts["accepted"] += fresh
            counts["duplicates"] += len(events) - fresh
        return counts

    async def to_inbox(self, config: Any, events: list[tuple[str, str, str, bool, str]]) -> int:
        """Stores (event id, entity type, vendor id, deleted, event type) in the config's inbox,
        deduplicated by event id, and starts or nudges its InboxWorkflow; returns how many were new."""
        stamp = now()
        rows = [
            {
                "config_id": config.config_id,
                "event_id": event_id,
                "entity_type": entity_type,
                "external_id": external_id,
                "deleted": int(deleted),
                "event_type": event_type,
                "received_at": stamp,
                "processed_at": None,
                "run_id": "",
            }
            for event_id, entity_type, external_id, deleted, event_type in events
        ]
        async with self._sessions() as session, session.begin():
            fresh = await self._repo.add_to_inbox(session, rows)
        await self._temporal.start_workflow(
            "Inbox",
            domain.InboxRequest(config.config_id, config.practice_id, config.integration_type),
            id=domain.inbox_workflow_id(config.config_id),
            task_queue=self._task_queue,
            start_signal="nudge",
        )
        return fresh

    def webhook_secret_of(self, config_id: str) -> str:
        """A config's webhook signing secret, derived from a key of the sync service's (none is
        stored); empty when the service runs without settings (then such webhooks are refused)."""
        if self._settings is None:
            return ""
        key = LocalKeyring.in_data_dir(self._settings.data_dir).derive("vendor-webhook-secrets")
        return webhooks.zenoti_secret(key, config_id)

    async def webhook_secret(self, practice_id: str, config_id: str) -> str:
        self._scope(practice_id)
        config = await self.owned_config(practice_id, config_id)
        if config.integration_type not in webhooks.PER_CONFIG:
            raise FailedPrecondition("this vendor signs its webhooks with its own key", reason="NO_WEBHOOK_SECRET")
        return self.webhook_secret_of(config_id)

    async def shred_practice(self, practice_id: str) -> tuple[int, int]:
        """Offboarding: the practice's blind indexes go and its data keys are destroyed
        (EnvelopeCipher.shred), so nothing Concord's sync service holds of it can be read again.
        The audit chain (field names, never values) stays. (keys destroyed, indexes deleted)"""
        self._scope(practice_id)
        caller = current_caller()
        if caller.practice_id and caller.role != "admin":
            raise PermissionDenied("only an admin of the practice may offboard it", reason="ROLE_FORBIDDEN")
        async with self._sessions() as session, session.begin():
            deleted = await self._repo.delete_indexes_of_practice(session, practice_id)
        destroyed = await self._cipher.shred(practice_id)
        await self._audit([caller_event(practice_id, "practice.shred", f"Practice/{practice_id}", "", SYNC_USER)])
        log.info(
            "practice %s shredded: %d data keys destroyed, %d blind indexes deleted", practice_id, destroyed, deleted
        )
        return destroyed, deleted

    async def _webhook_config(self, integration_type: str, config_id: str) -> Any:
        """The config a per-config webhook URL names, if it is of that vendor; None otherwise (the
        delivery is refused as unsigned: a URL tells nothing about which configs exist)."""
        if not config_id:
            return None
        try:
            config = (
                await call(
                    self._peers.registry.GetIntegrationConfig,
                    registry_pb2.GetIntegrationConfigRequest(config_id=config_id),
                )
            ).config
        except (NotFound, InvalidArgument):
            return None
        return config if config.integration_type == integration_type else None

    async def _verify_webhook(
        self, integration_type: str, headers: dict[str, str], body: bytes
    ) -> adapter_pb2.VerifyWebhookResponse:
        """Checked here when libs/webhooks knows the vendor's signature (each delivery, and every
        Concord write to GHL comes back as one); else by the vendor's adapter through Temporal."""
        request = adapter_pb2.VerifyWebhookRequest(headers=headers, body=body)
        checked = webhooks.verify(integration_type, self._settings, request) if self._settings else None
        if checked is not None:
            return checked
        return await self._temporal.execute_workflow(
            "VerifyWebhook",
            domain.WebhookInput(integration_type, headers, base64.b64encode(body).decode()),
            id=f"verify-webhook:{uuid.uuid4()}",
            task_queue=self._task_queue,
            execution_timeout=timedelta(seconds=30),
            result_type=adapter_pb2.VerifyWebhookResponse,
        )

    async def take_inbox_batch(self, request: domain.InboxTake) -> domain.InboxBatch:
        """The next batch of one entity's pending events, and its run row (made once per run id)."""
        async with self._sessions() as session:
            events = await self._repo.pending_inbox(session, request.config_id, request.limit)
        if not events:
            return domain.InboxBatch()
        config = (
            await call(
                self._peers.registry.GetIntegrationConfig,
                registry_pb2.GetIntegrationConfigRequest(config_id=request.config_id),
            )
        ).config
        entity_type = events[0].entity_type
        async with self._sessions() as session, session.begin():
            if await self._repo.get_run(session, request.run_id) is None:
                row = domain.new_run_row(
                    request.run_id,
                    config,
                    entity_type,
                    "SYNC_DIRECTION_PULL",
                    domain.inbox_workflow_id(request.config_id),
                    current_trace_id(),
                )
                await self._repo.insert_run(session, row)
            cursor = await self._repo.get_cursor(session, request.config_id, entity_type)
        return domain.InboxBatch(
            run_id=request.run_id,
            entity_type=entity_type,
            event_ids=[e.event_id for e in events],
            # Deleted ones too: read back, a record the vendor still has is not deleted (a late
            # delete event of a record made again); one it has not is a tombstone.
            external_ids=list(dict.fromkeys(e.external_id for e in events)),
            cursor=cursor,
            conflict_policy=common_pb2.ConflictPolicy.Name(config.conflict_policy),
            field_policies=_field_policies(config),
            options=_options_json(config),
        )

    async def finish_inbox_batch(self, request: domain.InboxDone) -> None:
        async with self._sessions() as session, session.begin():
            await self._repo.mark_processed(session, request.config_id, request.event_ids, request.run_id)
            await self._repo.finish_run(session, request.run_id, "")

    async def start_scheduled_sync(self, request: domain.ScheduledSyncInput) -> str:
        """A schedule's run (or reconciliation): started like a user's, skipped when one is running
        or the config can no longer run (disconnected, inactive); returns the run id (the
        reconciliation id), or "" when skipped."""
        try:
            if request.reconcile:
                return await self.reconciliations.start_scheduled(request)
            row = await self.start_sync(
                request.practice_id, request.config_id, request.entity_type, "", lane=adapter_pb2.LANE_SCHEDULED
            )
        except (FailedPrecondition, NotFound) as error:
            log.info("scheduled %s skipped: %s", "reconciliation" if request.reconcile else "sync", error.reason)
            return ""
        return row["run_id"]

    async def get_run(self, practice_id: str, run_id: str) -> Any:
        self._scope(practice_id)
        async with self._sessions() as session:
            row = await self._repo.get_run(session, run_id)
        if row is None or row.practice_id != practice_id:
            raise NotFound("sync run not found", reason="SYNC_RUN_NOT_FOUND")
        return row

    async def wait_run(self, practice_id: str, run_id: str) -> Any:
        row = await self.get_run(practice_id, run_id)
        if row.status == domain.RUNNING:
            try:
                await self._temporal.get_workflow_handle(row.workflow_id).result()
            except WorkflowFailureError:
                pass  # the run row carries the outcome
        return await self.get_run(practice_id, run_id)

    async def list_runs(self, practice_id: str, config_id: str, after: str, limit: int) -> list[Any]:
        self._scope(practice_id)
        async with self._sessions() as session:
            return await self._repo.list_runs(session, practice_id, config_id, after, limit)

    async def record_history(self, practice_id: str, entity_type: str, record_id: str, limit: int) -> list[Any]:
        """The record's changes, newest first (field names, sides and runs: no values)."""
        self._scope(practice_id)
        kind = kind_of(entity_type)
        async with self._sessions() as session:
            rows = await self._repo.record_history(session, practice_id, kind.entity_type, record_id, limit)
        if not rows:
            name = kind.resource_type.lower()
            raise NotFound(f"{name} not found", reason=f"{name.upper()}_NOT_FOUND")
        return rows

    # --- dead letters --------------------------------------------------------------------------

    async def list_dead_letters(
        self, practice_id: str, config_id: str, status: str, error_class: str, after: str, limit: int
    ) -> list[Any]:
        self._scope(practice_id)
        async with self._sessions() as session:
            return await self._repo.list_letters(
                session,
                practice_id,
                config_id=config_id,
                status=status,
                error_class=error_class,
                after=after,
                limit=limit,
            )

    async def replay_dead_letters(
        self, practice_id: str, letter_ids: list[str], error_class: str, config_id: str
    ) -> tuple[int, list[str]]:
        """Replays open letters (these ids, or every one of an error class): a push letter's record
        goes to the vendor again in a push run started now; a pull letter's vendor record is
        reconciled again as an inbound run. A record that fails again is parked again (attempts
        + 1); one that syncs is resolved. Each replay is audited. Returns (letters, run ids)."""
        self._scope(practice_id)
        if not letter_ids and not error_class:
            raise InvalidArgument("name the letters or an error class", field="letter_ids", reason="NOTHING_TO_REPLAY")
        async with self._sessions() as session:
            letters = await self._repo.list_letters(
                session,
                practice_id,
                config_id=config_id,
                status="open",
                error_class=error_class,
                letter_ids=letter_ids or None,
                limit=1000,
            )
        if letter_ids and len(letters) != len(set(letter_ids)):
            raise NotFound("no open dead letter of some of those ids", reason="DEAD_LETTER_NOT_FOUND")
        groups: dict[tuple[str, str, str], list[Any]] = {}
        for letter in letters:
            groups.setdefault((letter.config_id, letter.entity_type, letter.direction), []).append(letter)
        runs = []
        for (config, entity_type, direction), group in groups.items():
            kind = kind_of(entity_type)
            await self._audit(
                [
                    self._event(practice_id, "dead_letter.replay", g.record_ref, fields=[g.error_class], kind=kind)
                    for g in group
                ]
            )
            if direction == "push":
                async with self._sessions() as session, session.begin():
                    for letter in group:
                        await self._repo.update_letter(session, letter.letter_id, status="replaying")
                try:
                    row = await self.start_sync(practice_id, config, entity_type, "SYNC_DIRECTION_PUSH")
                except (FailedPrecondition, NotFound):
                    async with self._sessions() as session, session.begin():
                        for letter in group:
                            await self._repo.update_letter(session, letter.letter_id, status="open")
                    raise
                runs.append(row["run_id"])
                continue
            records = []
            for letter in group:
                if letter.payload_enc is not None:
                    records.append(
                        await self._cipher.decrypt_json(practice_id, letter.payload_enc, DEAD_LETTER_PURPOSE)
                    )
            for start in range(0, len(records), MAX_APPLY):
                run, _ = await self.apply_vendor_records(
                    practice_id, config, entity_type, records[start : start + MAX_APPLY]
                )
                runs.append(run.run_id)
        return len(letters), runs

    # --- the manual review queue --------------------------------------------------------------

    async def list_reviews(self, practice_id: str, config_id: str, status: str, after: str, limit: int) -> list[Any]:
        self._scope(practice_id)
        async with self._sessions() as session:
            return await self._repo.list_reviews(session, practice_id, config_id, status, after, limit)

    async def get_review(self, practice_id: str, review_id: str) -> tuple[Any, dict[str, Any]]:
        """The item and its field's three values; the read is audited by field name."""
        self._scope(practice_id)
        async with self._sessions() as session:
            item = await self._repo.get_review(session, practice_id, review_id)
        if item is None:
            raise NotFound("review item not found", reason="REVIEW_ITEM_NOT_FOUND")
        values = await self._cipher.decrypt_json(practice_id, item.values_enc, REVIEW_PURPOSE)
        kind = kind_of(item.entity_type)
        if item.kind == "identity":  # the parked record's identifying fields, to compare with the candidate's
            shown = {k: v for k, v in kind.project(values["resource"]).items() if k in IDENTIFYING and v}
            values = {"vendor_record": shown}
            fields = sorted(shown)
        else:
            fields = [item.field] if item.field else []
        await self._audit([self._event(practice_id, "review.read", item.record_id, fields=fields, kind=kind)])
        return item, values

    async def resolve_review(self, practice_id: str, review_id: str, choice: str, value: str | None) -> Any:
        """Writes the chosen value into the hub record (a new version when it changes) and closes
        the item; the record is dirty for that config, so its next push settles the vendor too."""
        self._scope(practice_id)
        async with self._sessions() as session, session.begin():
            item = await self._repo.get_review(session, practice_id, review_id, lock=True)
            if item is None:
                raise NotFound("review item not found", reason="REVIEW_ITEM_NOT_FOUND")
            if item.status != "OPEN":
                raise FailedPrecondition("the review item is settled already", reason="REVIEW_ITEM_RESOLVED")
            allowed = CHOICES.get(item.kind, ("hub", "vendor", "value"))
            if choice not in allowed:
                raise InvalidArgument(
                    f"choice must be {' or '.join(allowed)} for this item", field="choice", reason="INVALID_CHOICE"
                )
            kind = kind_of(item.entity_type)
            if item.kind == "identity":
                await self._settle_identity(session, practice_id, item, kind, choice == "same")
                return await self._close_review(session, practice_id, item, kind, choice)
            if item.kind == TOMBSTONE_REVIEW:
                await self.tombstones.settle_review(session, practice_id, item, kind, choice)
                return await self._close_review(session, practice_id, item, kind, choice)
            if item.kind == MISSING_REVIEW:
                await self.reconciliations.settle_review(session, practice_id, item, kind, choice)
                return await self._close_review(session, practice_id, item, kind, choice)
            row = await self._repo.get_record(session, practice_id, kind.entity_type, item.record_id, lock=True)
            if row is None or row.deleted_at is not None:
                raise NotFound("the record under review no longer exists", reason="RECORD_NOT_FOUND")
            resource = await self._open(practice_id, row.resource_enc, kind)
            current = kind.project(resource).get(item.field)
            values = await self._cipher.decrypt_json(practice_id, item.values_enc, REVIEW_PURPOSE)
            chosen = {"hub": current, "vendor": values.get("vendor"), "value": value}[choice]
            if chosen != current:
                try:
                    changed = kind.parse(kind.apply(resource, {item.field: chosen}))
                except InvalidArgument:  # its message may quote the value: name the field only
                    raise InvalidArgument(
                        f"the value is not a valid {item.field}", field="value", reason="INVALID_VALUE"
                    ) from None
                version = row.version + 1
                changed = self._stamp(changed, item.record_id, version)
                sealed = await self._seal(practice_id, changed, kind)
                if not await self._repo.update_record(session, item.record_id, version, sealed, row.version):
                    raise Aborted("the record changed concurrently", reason="VERSION_MISMATCH")
                await self._reindex(session, practice_id, item.record_id, changed, kind)
                await self._repo.add_history(
                    session,
                    [self._change(practice_id, kind, item.record_id, version, "review", "update", [item.field])],
                )
            return await self._close_review(session, practice_id, item, kind, choice)

    async def _close_review(self, session: Any, practice_id: str, item: Any, kind: EntityKind, choice: str) -> Any:
        caller = current_caller()
        await self._repo.update_review(
            session,
            item.review_id,
            status="RESOLVED",
            resolved_at=now(),
            resolved_by=caller.user_id or SYNC_USER,
            resolution=choice,
        )
        fields = [item.field] if item.field else list(item.reasons or [])
        await self._audit([self._event(practice_id, "review.resolve", item.record_id, fields=fields, kind=kind)])
        return await self._repo.get_review(session, practice_id, item.review_id)

    async def _settle_identity(self, session: Any, practice_id: str, item: Any, kind: EntityKind, same: bool) -> None:
        """A person's answer to "is this vendor record that patient?". Same: the record is linked to
        the candidate and merged from an empty base under hub_wins (what differs keeps the hub's
        value and goes to the vendor on the next push; what only the vendor holds is taken).
        Different: a new hub patient is made of it. Either way the vendor record is linked now."""
        values = await self._cipher.decrypt_json(practice_id, item.values_enc, REVIEW_PURPOSE)
        theirs = values["resource"]
        theirs_view = kind.project(theirs)
        if await self._repo.get_link_by_external_id(session, item.config_id, kind.entity_type, item.external_id):
            raise FailedPrecondition("the vendor record is linked already", reason="ALREADY_LINKED")
        if same:
            if await self._repo.get_link(session, item.config_id, kind.entity_type, item.record_id):
                raise FailedPrecondition(
                    "the patient is linked to another record of this vendor already", reason="CANDIDATE_LINKED"
                )
            row = await self._repo.get_record(session, practice_id, kind.entity_type, item.record_id, lock=True)
            if row is None or row.deleted_at is not None:
                raise NotFound("the candidate patient no longer exists", reason="RECORD_NOT_FOUND")
            resource = await self._open(practice_id, row.resource_enc, kind)
            result = domain.merge({}, kind.project(resource), theirs_view, domain.HUB_WINS, kind.prevailing)
            version = row.version
            if result.changes:
                version += 1
                resource = self._stamp(kind.apply(resource, result.changes), item.record_id, version)
                sealed = await self._seal(practice_id, resource, kind)
                if not await self._repo.update_record(session, item.record_id, version, sealed, row.version):
                    raise Aborted("the record changed concurrently", reason="VERSION_MISMATCH")
                await self._reindex(session, practice_id, item.record_id, resource, kind)
                await self._repo.add_history(
                    session,
                    [
                        self._change(
                            practice_id, kind, item.record_id, version, "review", "update", list(result.changes)
                        )
                    ],
                )
            record_id = item.record_id
            synced = version if kind.project(resource) == theirs_view else 0
        else:
            record_id = str(uuid.uuid4())
            resource = self._stamp(theirs, record_id, 1)
            row = self._new_row(practice_id, resource, await self._seal(practice_id, resource, kind), kind)
            await self._repo.insert_records(session, [row])
            await self._repo.insert_indexes(session, self._index_rows(practice_id, record_id, resource, kind))
            await self._repo.add_history(
                session,
                [self._change(practice_id, kind, record_id, 1, "review", "create", _fields_present(theirs_view))],
            )
            synced = 1
            await self._audit([self._event(practice_id, "create", record_id, theirs_view, kind=kind)])
        base = await self._cipher.encrypt_json(practice_id, theirs_view, kind.base_purpose)
        link = self._link_row(item.config_id, practice_id, kind, record_id, item.external_id)
        await self._repo.insert_links(session, [link | {"synced_version": synced, "base_enc": base}])

    # --- steps of a run (called by the workflow's activities) ---------------------------------

    async def load_cursor(self, request: CursorRequest) -> str:
        async with self._sessions() as session:
            return await self._repo.get_cursor(session, request.config_id, request.entity_type)

    async def reconcile_pull_page(self, page: PullPage, fetched: adapter_pb2.FetchChangesResponse | None = None) -> int:
        """Maps a vendor page to FHIR and merges it into the hub; the page and its cursor commit
        together, so a retried or resumed run never applies a page twice or skips one. The page's
        records come as the adapter read them (``fetched``: Structs, handed to MapToHub as they
        are), or as dicts in ``page.records``. Returns how many hub records it created or changed."""
        kind = kind_of(page.entity_type)
        await self._cipher.ensure_key(page.practice_id)  # its writes encrypt inside one transaction
        structs = list(fetched.records) if fetched is not None else [_struct(r) for r in page.records]
        mapped = await self._map_structs_to_hub(page.integration_type, kind, structs, page.config_id, page.options)
        failures: list[dict[str, str]] = []
        usable = []
        modified: dict[str, datetime] = {}  # the vendor's modification time of each record, when it has one
        raw_by_ref: dict[str, struct_pb2.Struct] = {}
        for raw, result in zip(structs, mapped, strict=True):
            ref = result.external_id or _struct_id(raw)
            raw_by_ref[ref] = raw
            if result.errors or not result.external_id:
                failures.extend(_failures(ref, result.errors) or [_failure(ref, "", "MISSING_ID", "record has no id")])
            else:
                usable.append((result.external_id, json.loads(result.resource_json)))
                if result.HasField("modified_time"):
                    modified[result.external_id] = result.modified_time.ToDatetime(UTC)
        field_policies = field_policies_for(kind.entity_type, page.field_policies)
        held_items: list[dict[str, Any]] = []
        events = []
        async with self._sessions() as session, session.begin():
            usable, unlinked = await self._to_hub_refs(session, page.config_id, kind, usable)
            failures.extend(unlinked)
            counts = {
                "records_processed": len(structs),
                "records_failed": len(failures),
                "vendor_requests": page.vendor_requests,
            }
            links = await self._repo.links_by_external_id(
                session, page.config_id, kind.entity_type, [ext for ext, _ in usable]
            )
            rows = await self._repo.get_records(
                session, page.practice_id, kind.entity_type, [link.record_id for link in links.values()]
            )
            # A record deleted in the hub takes no vendor change: its delete goes to the vendor.
            gone = {ext for ext, link in links.items() if rows[link.record_id].deleted_at is not None}
            if gone:
                usable = [(ext, theirs) for ext, theirs in usable if ext not in gone]
                links = {ext: link for ext, link in links.items() if ext not in gone}
            state: dict[str, dict[str, Any]] = {}
            for ext, link in links.items():
                row = rows[link.record_id]
                state[ext] = {
                    "record_id": link.record_id,
                    "version": row.version,
                    "stored_version": row.version,
                    "synced_version": link.synced_version,
                    "resource": await self._open(page.practice_id, row.resource_enc, kind),
                    "base": await self._cipher.decrypt_json(page.practice_id, link.base_enc, kind.base_purpose),
                    "new": False,
                    "modified": _aware(row.updated_at),
                }
            planned_ids: dict[str, str] = {}
            if kind.is_patient:
                usable, identity_events, planned_ids = await self._match_unlinked(session, page, kind, usable, state)
                events += identity_events
            created = updated = 0
            history: list[dict[str, Any]] = []
            for ext, theirs in usable:
                theirs_view = kind.project(theirs)
                entry = state.get(ext)
                if entry is None:
                    record_id = planned_ids.get(ext) or str(uuid.uuid4())
                    state[ext] = {
                        "record_id": record_id,
                        "version": 1,
                        "stored_version": 0,
                        "synced_version": 1,
                        "resource": self._stamp(theirs, record_id, 1),
                        "base": theirs_view,
                        "new": True,
                    }
                    created += 1
                    events.append(self._event(page.practice_id, "create", record_id, theirs_view, page, kind=kind))
                    history.append(
                        self._change(
                            page.practice_id,
                            kind,
                            record_id,
                            1,
                            "vendor",
                            "create",
                            _fields_present(theirs_view),
                            source=page.integration_type,
                            run_id=page.run_id,
                        )
                    )
                    continue
                ours_view = kind.project(entry["resource"])
                clocks = domain.Clocks(entry["modified"], modified.get(ext), datetime.now(UTC))
                result = domain.merge(
                    entry["base"],
                    ours_view,
                    theirs_view,
                    page.conflict_policy,
                    kind.prevailing,
                    field_policies=field_policies,
                    clocks=clocks,
                )
                for name in result.held:
                    held_items.append(
                        {
                            "record_id": entry["record_id"],
                            "external_id": ext,
                            "field": name,
                            "values": {
                                "base": entry["base"].get(name),
                                "hub": ours_view.get(name),
                                "vendor": theirs_view.get(name),
                                "hub_modified": _iso(clocks.ours),
                                "vendor_modified": _iso(clocks.theirs),
                            },
                        }
                    )
                if result.changes:
                    entry["version"] += 1
                    entry["resource"] = self._stamp(
                        kind.apply(entry["resource"], result.changes), entry["record_id"], entry["version"]
                    )
                    updated += 1
                    events.append(
                        self._event(
                            page.practice_id,
                            "update",
                            entry["record_id"],
                            fields=sorted(result.changes),
                            page=page,
                            kind=kind,
                        )
                    )
                    history.append(
                        self._change(
                            page.practice_id,
                            kind,
                            entry["record_id"],
                            entry["version"],
                            "vendor",
                            "update",
                            list(result.changes),
                            source=page.integration_type,
                            run_id=page.run_id,
                        )
                    )
                entry["base"] = theirs_view
                # In step with the vendor afterwards: when the hub held nothing unsent to it before
                # this page (only the vendor's changes were applied; fields the vendor cannot hold
                # make no difference), or when it now reads exactly as the vendor's record. Else the
                # next push would send the vendor its own change back.
                nothing_unsent = entry["synced_version"] == entry["stored_version"]
                if nothing_unsent or kind.project(entry["resource"]) == theirs_view:
                    entry["synced_version"] = entry["version"]
                entry["touched"] = True
            new_rows, new_links, new_indexes = [], [], []
            for ext, entry in state.items():
                if not entry["new"] and not entry.get("touched"):
                    continue
                sealed_base = await self._cipher.encrypt_json(page.practice_id, entry["base"], kind.base_purpose)
                if entry["new"]:
                    sealed = await self._seal(page.practice_id, entry["resource"], kind)
                    new_rows.append(self._new_row(page.practice_id, entry["resource"], sealed, kind))
                    new_indexes += self._index_rows(page.practice_id, entry["record_id"], entry["resource"], kind)
                elif entry["version"] != entry["stored_version"]:
                    sealed = await self._seal(page.practice_id, entry["resource"], kind)
                    if not await self._repo.update_record(
                        session, entry["record_id"], entry["version"], sealed, entry["stored_version"]
                    ):
                        # A hub edit landed since the page was read: roll back; the retried
                        # activity merges against it.
                        raise Aborted("a record changed during the merge", reason="CONCURRENT_UPDATE")
                    await self._reindex(session, page.practice_id, entry["record_id"], entry["resource"], kind)
                if entry["new"] or entry.get("link_new"):  # its first link to this config (made, or matched)
                    new_links.append(
                        self._link_row(page.config_id, page.practice_id, kind, entry["record_id"], ext)
                        | {"synced_version": entry["synced_version"], "base_enc": sealed_base}
                    )
                    continue
                await self._repo.update_link(
                    session,
                    page.config_id,
                    kind.entity_type,
                    entry["record_id"],
                    synced_version=entry["synced_version"],
                    base_enc=sealed_base,
                )
            await self._repo.insert_records(session, new_rows)
            await self._repo.insert_indexes(session, new_indexes)
            await self._repo.insert_links(session, new_links)
            await self._repo.add_history(session, history)
            events += await self._hold_for_review(session, page, kind, held_items)
            settled = 0
            if page.deleted_ids:
                settled, deleted_events = await self.tombstones.vendor_deleted(session, page, kind)
                events += deleted_events
            if page.move_cursor:
                await self._repo.set_cursor(session, page.config_id, kind.entity_type, page.next_cursor)
            counts.update(
                records_processed=len(structs) + len(page.deleted_ids),
                records_succeeded=len(usable) + len(page.deleted_ids),
                records_created=created,
                records_updated=updated + settled,
            )
            await self._repo.add_to_run(session, page.run_id, counts, failures)
            # Only a failed record's payload is decoded: it is kept with its dead letter.
            failed = {f["record_ref"] for f in failures} & raw_by_ref.keys()
            payloads = {ref: json_format.MessageToDict(raw_by_ref[ref]) for ref in failed}
            await self._park(session, page.practice_id, page.config_id, kind, "pull", page.run_id, failures, payloads)
            await self._heal(session, page.config_id, kind, "pull", [ext for ext, _ in usable])
            await self._audit(events)
        return created + updated + settled

    async def fan_out(self, request: domain.FanOut) -> int:
        """A vendor's real-time change reached the hub (an inbox batch changed records): each other
        config of the practice that is active, real time, syncs the entity and pushes starts a push
        in the real-time lane, so the change reaches those vendors in seconds rather than at their
        next scheduled run. What a push writes is what its links are behind on, so nothing is
        queued: a config whose run is going is signalled (push_again) to push once more before it
        ends. Returns how many configs were started or signalled."""
        configs, token = [], ""
        while True:
            page = await call(
                self._peers.registry.ListIntegrationConfigs,
                registry_pb2.ListIntegrationConfigsRequest(
                    practice_id=request.practice_id, page_size=100, page_token=token
                ),
            )
            configs += page.configs
            token = page.next_page_token
            if not token:
                break
        entity = common_pb2.EntityType.Value(request.entity_type)
        reached = 0
        for config in configs:
            if (
                config.config_id == request.source_config_id
                or not config.active
                or config.sync_frequency != common_pb2.SYNC_FREQUENCY_REAL_TIME
                or entity not in config.enabled_entities
                or not domain.pushes(common_pb2.SyncDirection.Name(config.sync_direction))
            ):
                continue
            try:
                await self.start_sync(
                    request.practice_id,
                    config.config_id,
                    request.entity_type,
                    domain.PUSH,
                    lane=adapter_pb2.LANE_REALTIME,
                )
            except FailedPrecondition as error:
                if error.reason != "SYNC_ALREADY_RUNNING":
                    log.info("real-time push to a %s config skipped: %s", config.integration_type, error.reason)
                    continue
                handle = self._temporal.get_workflow_handle(workflow_id(config.config_id, request.entity_type))
                try:
                    await handle.signal("push_again")
                except RPCError as gone:  # it ended meanwhile: its push ran after the change was in
                    if gone.status != RPCStatusCode.NOT_FOUND:
                        raise
            reached += 1
        return reached

    async def _match_unlinked(
        self, session: Any, page: PullPage, kind: EntityKind, usable: list[tuple[str, dict]], state: dict
    ) -> tuple[list[tuple[str, dict]], list[audit_pb2.AuditEvent], dict[str, str]]:
        """Vendor patients with no link to this config, before any is created: through the blind
        indexes (libs/blind_index.py, no record decrypted to look), one existing patient it MATCHes
        is linked and merged from an empty base (nothing known in common yet, so the policy settles
        what differs); a record that is POSSIBLY an existing patient is parked in the review queue
        instead of becoming a duplicate; the rest are created. Each decision is audited with why
        (the index kinds that agree or differ, never a value). A patient already linked to another
        record of this vendor, claimed by another record of the page, or about to be created from
        an earlier record of the page, is never MATCHed: the later record is held against it."""
        unlinked = [(ext, theirs) for ext, theirs in usable if ext not in state]
        if not unlinked:
            return usable, [], {}
        digests = {ext: self._indexer.digests(page.practice_id, kind.project(theirs)) for ext, theirs in unlinked}
        candidates = await self._repo.index_candidates(
            session, page.practice_id, [d for by_kind in digests.values() for d in lookup_digests(by_kind)]
        )
        linked = await self._repo.links_by_record(session, page.config_id, kind.entity_type, list(candidates))
        parked_before = await self._repo.open_identity_reviews(
            session, page.config_id, kind.entity_type, [ext for ext, _ in unlinked]
        )
        claimed: set[str] = set()
        matched: dict[str, tuple[str, list[str]]] = {}
        parked: list[dict[str, Any]] = []
        # Records of this page about to be created, with their ids already chosen: a later record
        # of the same page that is the same person is held against them, not created twice.
        planned: dict[str, dict[str, str]] = {}
        planned_ids: dict[str, str] = {}
        for ext, theirs in unlinked:
            if ext in parked_before:  # a person is deciding already: the queue gets the latest record
                parked.append({"ext": ext, "resource": theirs, "item": parked_before[ext]})
                continue
            verdicts = []
            for record_id, theirs_digests in [*candidates.items(), *planned.items()]:
                if lookup_digests(theirs_digests) & lookup_digests(digests[ext]):
                    verdict, why = decide(digests[ext], theirs_digests)
                    if verdict == MATCH and (record_id in linked or record_id in claimed or record_id in planned):
                        verdict = POSSIBLE
                    verdicts.append((verdict != MATCH, verdict != POSSIBLE, record_id, verdict, why))
            verdicts.sort()
            matches = [v for v in verdicts if v[3] == MATCH]
            if len(matches) == 1:
                _, _, record_id, _, why = matches[0]
                matched[ext] = (record_id, why)
                claimed.add(record_id)
            elif matches or any(v[3] == POSSIBLE for v in verdicts):
                _, _, record_id, _, why = verdicts[0]
                reasons = why + (["several_match"] if len(matches) > 1 else [])
                parked.append({"ext": ext, "resource": theirs, "candidate": record_id, "why": reasons})
            else:
                new_id = str(uuid.uuid4())
                planned[new_id] = digests[ext]
                planned_ids[ext] = new_id
        events = []
        if matched:
            rows = await self._repo.get_records(
                session, page.practice_id, kind.entity_type, [rid for rid, _ in matched.values()]
            )
            for ext, (record_id, why) in matched.items():
                row = rows[record_id]
                state[ext] = {
                    "record_id": record_id,
                    "version": row.version,
                    "stored_version": row.version,
                    "synced_version": 0,
                    "resource": await self._open(page.practice_id, row.resource_enc, kind),
                    "base": {},
                    "new": False,
                    "link_new": True,
                    "modified": _aware(row.updated_at),
                }
                events.append(self._event(page.practice_id, "match", record_id, fields=why, page=page, kind=kind))
        events += await self._park_for_identity(session, page, kind, parked)
        held = {p["ext"] for p in parked}
        return [(ext, theirs) for ext, theirs in usable if ext not in held], events, planned_ids

    async def _park_for_identity(
        self, session: Any, page: PullPage, kind: EntityKind, parked: list[dict[str, Any]]
    ) -> list[audit_pb2.AuditEvent]:
        stamp = datetime.now(UTC)
        rows, events = [], []
        for p in parked:
            current = p.get("item")
            if current is not None:
                values = await self._cipher.decrypt_json(page.practice_id, current.values_enc, REVIEW_PURPOSE)
                sealed = await self._cipher.encrypt_json(
                    page.practice_id, {**values, "resource": p["resource"]}, REVIEW_PURPOSE
                )
                await self._repo.update_review(session, current.review_id, values_enc=sealed, run_id=page.run_id)
                continue
            values = {"resource": p["resource"], "why": p["why"]}
            sealed = await self._cipher.encrypt_json(page.practice_id, values, REVIEW_PURPOSE)
            rows.append(
                domain.review_row(
                    page, kind, p["candidate"], p["ext"], sealed, stamp, kind_name="identity", reasons=p["why"]
                )
            )
            events.append(
                self._event(
                    page.practice_id, "review.hold_match", p["candidate"], fields=p["why"], page=page, kind=kind
                )
            )
        await self._repo.insert_reviews(session, rows)
        return events

    async def _park(
        self,
        session: Any,
        practice_id: str,
        config_id: str,
        kind: EntityKind,
        direction: str,
        run_id: str,
        failures: list[dict[str, str]],
        payloads: dict[str, dict] | None = None,
    ) -> None:
        """Each failed record as a dead letter (its first failure's class), or its live letter again."""
        first: dict[str, dict[str, str]] = {}
        for failure in failures:
            if failure["record_ref"]:
                first.setdefault(failure["record_ref"], failure)
        if not first:
            return
        live = await self._repo.live_letters(session, config_id, kind.entity_type, direction, list(first))
        stamp = now()
        rows = []
        for ref, failure in first.items():
            payload = (payloads or {}).get(ref)
            sealed = (
                await self._cipher.encrypt_json(practice_id, payload, DEAD_LETTER_PURPOSE)
                if payload is not None
                else None
            )
            values = {
                "error_class": failure["reason"] or "UNKNOWN",
                "field": failure.get("field", ""),
                "message": failure.get("message", ""),
                "run_id": run_id,
                "last_seen_at": stamp,
                "status": "open",
            }
            if ref in live:
                changes = {**values, "attempts": live[ref].attempts + 1}
                if sealed is not None:
                    changes["payload_enc"] = sealed
                await self._repo.update_letter(session, live[ref].letter_id, **changes)
                continue
            rows.append(
                {
                    "letter_id": str(uuid.uuid4()),
                    "practice_id": practice_id,
                    "config_id": config_id,
                    "entity_type": kind.entity_type,
                    "direction": direction,
                    "record_ref": ref,
                    "payload_enc": sealed,
                    "attempts": 1,
                    "first_seen_at": stamp,
                    "resolved_at": None,
                    **values,
                }
            )
        await self._repo.insert_letters(session, rows)

    async def _heal(self, session: Any, config_id: str, kind: EntityKind, direction: str, refs: list[str]) -> None:
        """Records that synced now: their letters are resolved."""
        await self._repo.resolve_letters(session, config_id, kind.entity_type, direction, refs)

    async def _hold_for_review(
        self, session: Any, page: PullPage, kind: EntityKind, held: list[dict[str, Any]]
    ) -> list[audit_pb2.AuditEvent]:
        """Opens a review item per held field, or brings an open one up to the vendor's latest value."""
        if not held:
            return []
        open_items = await self._repo.open_reviews(
            session, page.config_id, kind.entity_type, sorted({h["record_id"] for h in held})
        )
        stamp = datetime.now(UTC)
        new_rows, events = [], []
        for item in held:
            sealed = await self._cipher.encrypt_json(page.practice_id, item["values"], REVIEW_PURPOSE)
            current = open_items.get((item["record_id"], item["field"]))
            if current is not None:
                await self._repo.update_review(session, current.review_id, values_enc=sealed, run_id=page.run_id)
            else:
                new_rows.append(
                    domain.review_row(
                        page, kind, item["record_id"], item["external_id"], sealed, stamp, field=item["field"]
                    )
                )
            events.append(
                self._event(
                    page.practice_id, "review.hold", item["record_id"], fields=[item["field"]], page=page, kind=kind
                )
            )
        await self._repo.insert_reviews(session, new_rows)
        return events

    async def prepare_push_batch(self, request: PushBatchRequest) -> PushBatch:
        kind = kind_of(request.entity_type)
        async with self._sessions() as session:
            rows = await self._repo.dirty_records(
                session,
                request.practice_id,
                kind.entity_type,
                request.config_id,
                request.after_patient_id,
                request.limit,
            )
        fetched = rows
        rows = [row for row in fetched if row.deleted_at is None]
        tombstoned = [row for row in fetched if row.deleted_at is not None]
        deletes = []
        if tombstoned:
            definition = await self._definition(request)
            deletes = await self.tombstones.push_deletes(
                request.practice_id, request.config_id, kind, tombstoned, can_delete(definition, kind.entity_type)
            )
        resources = [await self._open(request.practice_id, row.resource_enc, kind) for row in rows]
        failures: list[dict[str, str]] = []
        if kind.patient_ref is not None:
            rows, resources, failures = await self._to_vendor_refs(request.config_id, kind, rows, resources)
        mapped = []
        mapping_version = 0
        # The options as they are now: the batch is mapped and written (and its echo mapped back) with them.
        options = await self._vendor_options(request.config_id) if resources else {}
        if resources:
            response = await call(
                self._peers.mapping.MapToVendor,
                mapping_pb2.MapToVendorRequest(
                    integration_type=request.integration_type,
                    entity_type=common_pb2.EntityType.Value(kind.entity_type),
                    resource_jsons=[json.dumps(r) for r in resources],
                    config_id=request.config_id,
                    options=json_format.ParseDict(options, registry_pb2.VendorOptions()),
                ),
            )
            mapped = list(response.results)
            mapping_version = response.mapping_version
        items = []
        disclosed: dict[str, list[str]] = {}
        withheld = 0
        for row, result in zip(rows, mapped, strict=True):
            if result.errors:
                failures.extend(_failures(row.record_id, result.errors))
                continue
            if result.withheld:
                # Minimum necessary: nothing of it may go yet (no BAA, or the allow-list leaves it
                # pointless). Not a failure: it stays due and goes once it may (the mapping service
                # logged the field names).
                withheld += 1
                continue
            record = json_format.MessageToDict(result.vendor_record)
            ref = domain.patient_ref(row.record_id, row.version)
            items.append(PushItem(ref, row.external_id or "", record))
            if result.disclosed_fields:
                disclosed[ref] = list(result.disclosed_fields)
        if withheld:
            log.info(
                "push of config %s %s: %d records withheld (minimum necessary)",
                request.config_id,
                kind.entity_type,
                withheld,
            )
        if failures:
            failed_ids = {f["record_ref"] for f in failures}
            async with self._sessions() as session, session.begin():
                counts = {"records_processed": len(failed_ids), "records_failed": len(failed_ids)}
                await self._repo.add_to_run(session, request.run_id, counts, failures)
                await self._park(
                    session, request.practice_id, request.config_id, kind, "push", request.run_id, failures
                )
        last = fetched[-1].record_id if fetched else request.after_patient_id
        return PushBatch(
            items=items,
            last_patient_id=last,
            has_more=len(fetched) == request.limit,
            options=options,
            deletes=deletes,
            mapping_version=mapping_version,
            disclosed=disclosed,
        )

    async def _vendor_options(self, config_id: str) -> dict:
        """The config's vendor options (marketing switches, appointment object) as they are now."""
        config = (
            await call(
                self._peers.registry.GetIntegrationConfig, registry_pb2.GetIntegrationConfigRequest(config_id=config_id)
            )
        ).config
        return _options_json(config)

    async def record_delete_results(self, results: DeleteResults) -> None:
        await self.tombstones.record_delete_results(results)

    async def record_push_results(self, results: PushResults) -> None:
        """Stores what the vendor acknowledged: links, synced versions and merge bases."""
        kind = kind_of(results.entity_type)
        await self._cipher.ensure_key(results.practice_id)
        done = [o for o in results.outcomes if o.success]
        mapped = (
            await self._map_to_hub(
                results.integration_type, kind, [o.record for o in done], results.config_id, results.options
            )
            if done
            else []
        )
        failures = [
            _failure(domain.parse_ref(o.ref)[0], "", o.error_reason or "VENDOR_REJECTED", o.error_message)
            for o in results.outcomes
            if not o.success
        ]
        events = []
        created = updated = 0
        async with self._sessions() as session, session.begin():
            record_ids = [domain.parse_ref(o.ref)[0] for o in done]
            links = await self._repo.links_by_record(session, results.config_id, kind.entity_type, record_ids)
            taken = await self._repo.links_by_external_id(
                session, results.config_id, kind.entity_type, [o.external_id for o in done]
            )
            rows = await self._repo.get_records(session, results.practice_id, kind.entity_type, record_ids)
            claims: dict[str, str] = {}
            new_links = []
            for outcome, result in zip(done, mapped, strict=True):
                record_id, version = domain.parse_ref(outcome.ref)
                owner = taken.get(outcome.external_id)
                claimed = claims.setdefault(outcome.external_id, record_id)
                if (owner is not None and owner.record_id != record_id) or claimed != record_id:
                    failures.append(
                        _failure(
                            record_id,
                            "",
                            "VENDOR_RECORD_LINKED_ELSEWHERE",
                            "the vendor matched another record's",
                        )
                    )
                    continue
                ours = await self._open(results.practice_id, rows[record_id].resource_enc, kind)
                theirs = None if result.errors else json.loads(result.resource_json)
                if theirs is not None and kind.with_patient_ref is not None and kind.patient_ref(ours):
                    # The vendor answered with its own patient id for the patient we sent.
                    theirs = kind.with_patient_ref(theirs, kind.patient_ref(ours))
                base = kind.project(theirs if theirs is not None else ours)
                sealed_base = await self._cipher.encrypt_json(results.practice_id, base, kind.base_purpose)
                if record_id in links:
                    await self._repo.update_link(
                        session,
                        results.config_id,
                        kind.entity_type,
                        record_id,
                        external_id=outcome.external_id,
                        synced_version=version,
                        base_enc=sealed_base,
                    )
                    updated += 1
                else:
                    new_links.append(
                        self._link_row(results.config_id, results.practice_id, kind, record_id, outcome.external_id)
                        | {"synced_version": version, "base_enc": sealed_base}
                    )
                    created += 1
                events.append(
                    self._event(
                        results.practice_id,
                        "disclose",
                        record_id,
                        base,
                        # Minimum necessary: a restricted record names what it carried, not what
                        # the vendor holds.
                        fields=results.disclosed.get(outcome.ref),
                        integration=results.integration_type,
                        correlation=results.run_id,
                        kind=kind,
                        mapping_version=results.mapping_version,
                        # An appointment's or membership's disclosure is its patient's too (the accounting).
                        patient_id=(kind.patient_ref(ours) or "").removeprefix("Patient/") if kind.patient_ref else "",
                    )
                )
            await self._repo.insert_links(session, new_links)
            counts = {
                "records_processed": len(results.outcomes),
                "records_succeeded": created + updated,
                "records_failed": len(results.outcomes) - created - updated,
                "records_created": created,
                "records_updated": updated,
                "vendor_requests": results.vendor_requests,
            }
            await self._repo.add_to_run(session, results.run_id, counts, failures)
            await self._park(session, results.practice_id, results.config_id, kind, "push", results.run_id, failures)
            failed_refs = {f["record_ref"] for f in failures}
            await self._heal(session, results.config_id, kind, "push", [r for r in record_ids if r not in failed_refs])
            await self._audit(events)

    async def _to_hub_refs(
        self, session: Any, config_id: str, kind: EntityKind, items: list[tuple[str, dict]]
    ) -> tuple[list[tuple[str, dict]], list[dict[str, str]]]:
        """Vendor patient ids in mapped records -> hub patient references, through the links."""
        if kind.patient_ref is None:
            return items, []
        refs = {ext: kind.patient_ref(resource) or "" for ext, resource in items}
        wanted = sorted({ref[9:] for ref in refs.values() if ref.startswith("external:")})
        links = await self._repo.links_by_external_id(session, config_id, PATIENT, wanted)
        kept, failed = [], []
        for ext, resource in items:
            ref = refs[ext]
            if ref.startswith("external:"):
                link = links.get(ref[9:])
                if link is None:
                    failed.append(_failure(ext, "patient", "PATIENT_NOT_LINKED", "its patient is not linked yet"))
                    continue
                resource = kind.with_patient_ref(resource, f"Patient/{link.record_id}")
            kept.append((ext, resource))
        return kept, failed

    async def _to_vendor_refs(
        self, config_id: str, kind: EntityKind, rows: list[Any], resources: list[dict]
    ) -> tuple[list[Any], list[dict], list[dict[str, str]]]:
        """Hub patient references -> the vendor's patient ids; a record whose patient the vendor
        has not got yet waits (it stays dirty) for a later run."""
        refs = [kind.patient_ref(resource) or "" for resource in resources]
        wanted = sorted({ref[8:] for ref in refs if ref.startswith("Patient/")})
        async with self._sessions() as session:
            links = await self._repo.links_by_record(session, config_id, PATIENT, wanted)
        kept_rows, kept, failed = [], [], []
        for row, resource, ref in zip(rows, resources, refs, strict=True):
            if ref.startswith("Patient/"):
                link = links.get(ref[8:])
                if link is None:
                    failed.append(
                        _failure(row.record_id, "patient", "PATIENT_NOT_LINKED", "its patient is not at the vendor yet")
                    )
                    continue
                resource = kind.with_patient_ref(resource, f"external:{link.external_id}")
            kept_rows.append(row)
            kept.append(resource)
        return kept_rows, kept, failed

    @staticmethod
    def _link_row(config_id: str, practice_id: str, kind: EntityKind, record_id: str, external_id: str) -> dict:
        return {
            "config_id": config_id,
            "entity_type": kind.entity_type,
            "record_id": record_id,
            "practice_id": practice_id,
            "external_id": external_id,
            "synced_at": now(),
        }

    async def finish_run(self, request: FinishRun) -> None:
        async with self._sessions() as session, session.begin():
            await self._repo.finish_run(session, request.run_id, request.error_message)

    # --- messages ------------------------------------------------------------------------------

    async def send_message(self, practice_id: str, message: MessageInput, patient_id: str) -> tuple[Any, bool]:
        """Sends ``message`` to the vendor contact linked to the patient (its external_id is filled
        here); once per idempotency key: a key seen before answers the first send's outcome.
        Returns the adapter's SendMessageResponse and whether this call made the send."""
        self._scope(practice_id)
        config = (
            await call(
                self._peers.registry.GetIntegrationConfig,
                registry_pb2.GetIntegrationConfigRequest(config_id=message.config_id),
            )
        ).config
        if config.practice_id != practice_id:
            raise NotFound("integration config not found", reason="CONFIG_NOT_FOUND")
        if not config.active:
            raise FailedPrecondition("the integration config is not active", reason="CONFIG_INACTIVE")
        _require_baa(config, await self._definition(config))
        async with self._sessions() as session:
            row = (await self._repo.get_records(session, practice_id, PATIENT, [patient_id])).get(patient_id)
            link = await self._repo.get_link(session, message.config_id, PATIENT, patient_id)
        if row is None or row.deleted_at is not None:
            raise NotFound("patient not found", reason="PATIENT_NOT_FOUND")
        if link is None or link.practice_id != practice_id:
            raise FailedPrecondition(
                "the patient is not linked to a contact at the vendor yet; sync patients first",
                reason="PATIENT_NOT_LINKED",
            )
        message.external_id = link.external_id
        message.integration_type = config.integration_type
        wf_id = message_workflow_id(message.config_id, message.idempotency_key)
        started = True
        try:
            handle = await self._temporal.start_workflow(
                "SendMessage",
                message,
                id=wf_id,
                task_queue=self._task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                result_type=adapter_pb2.SendMessageResponse,
            )
        except WorkflowAlreadyStartedError:
            started = False  # sent (or refused) before under this key: answer that outcome
            handle = self._temporal.get_workflow_handle(wf_id, result_type=adapter_pb2.SendMessageResponse)
        event = self._event(
            practice_id,
            "patient.disclose",
            patient_id,
            fields=["message.body", "message.subject", "telecom"] if message.subject else ["message.body", "telecom"],
            integration=config.integration_type,
            correlation=wf_id,
        )
        try:
            sent = await handle.result()
        except WorkflowFailureError as error:
            failure = send_failure(error)
            if started and failure.reason != "NOT_CONNECTED":
                event.success = False  # the vendor saw the message and refused or may have sent it
                await self._audit([event])
            raise failure from None
        if started:
            await self._audit([event])
        return sent, started

    # --- availability --------------------------------------------------------------------------

    async def get_availability(
        self, practice_id: str, config_id: str, patient_id: str, service_id: str, provider_id: str, day: str, days: int
    ) -> Any:
        """Free slots at the vendor to book hub service ``service_id`` for hub patient ``patient_id``
        (both linked to the config), with the vendor's provider ``provider_id`` or any. The vendor
        learns which of its guests asks: audited as a disclosure of the patient's identifier."""
        self._scope(practice_id)
        config = await self._runnable_config(practice_id, config_id, ENTITIES[APPOINTMENT])
        definition = await self._definition(config)
        if "booking" not in definition.extra.fields:
            raise FailedPrecondition(
                f"{config.integration_type} offers no provider availability", reason="AVAILABILITY_UNSUPPORTED"
            )
        _require_baa(config, definition)
        async with self._sessions() as session:
            patient = await self._repo.get_link(session, config_id, PATIENT, patient_id)
            service = await self._repo.get_link(session, config_id, SERVICE, service_id)
        if patient is None or patient.practice_id != practice_id:
            raise FailedPrecondition(
                "the patient is not linked to the vendor yet; sync patients first", reason="PATIENT_NOT_LINKED"
            )
        if service is None or service.practice_id != practice_id:
            raise FailedPrecondition(
                "the service is not in the vendor's catalog as synced; sync services first", reason="SERVICE_NOT_LINKED"
            )
        query = AvailabilityInput(
            integration_type=config.integration_type,
            config_id=config_id,
            patient_external_id=patient.external_id,
            service_external_id=service.external_id,
            provider_external_id=provider_id,
            date=day,
            days=days,
            options=json_format.MessageToDict(config.options, preserving_proto_field_name=True),
        )
        wf_id = f"availability:{config_id}:{uuid.uuid4()}"
        event = self._event(
            practice_id, "patient.disclose", patient_id, fields=["identifier"],
            integration=config.integration_type, correlation=wf_id,
        )  # fmt: skip
        try:
            found = await self._temporal.execute_workflow(
                "Availability",
                query,
                id=wf_id,
                task_queue=self._task_queue,
                result_type=adapter_pb2.GetAvailabilityResponse,
            )
        except WorkflowFailureError as error:
            failure = availability_failure(error)
            if failure.reason != "NOT_CONNECTED":
                event.success = False
                await self._audit([event])
            raise failure from None
        await self._audit([event])
        return found

    # --- helpers -------------------------------------------------------------------------------

    async def _definition(self, config: Any) -> Any:
        return (
            await call(
                self._peers.registry.GetIntegrationDefinition,
                registry_pb2.GetIntegrationDefinitionRequest(integration_type=config.integration_type),
            )
        ).definition

    async def _map_to_hub(
        self, integration_type: str, kind: EntityKind, records: list[dict], config_id: str, options: dict
    ) -> list[mapping_pb2.HubMappingResult]:
        return await self._map_structs_to_hub(integration_type, kind, [_struct(r) for r in records], config_id, options)

    async def _map_structs_to_hub(
        self, integration_type: str, kind: EntityKind, records: list[struct_pb2.Struct], config_id: str, options: dict
    ) -> list[mapping_pb2.HubMappingResult]:
        if not records:
            return []
        response = await call(
            self._peers.mapping.MapToHub,
            mapping_pb2.MapToHubRequest(
                integration_type=integration_type,
                entity_type=common_pb2.EntityType.Value(kind.entity_type),
                vendor_records=records,
                config_id=config_id,
                options=json_format.ParseDict(options, registry_pb2.VendorOptions()),
            ),
        )
        return list(response.results)

    def _event(
        self,
        practice_id: str,
        action: str,
        record_id: str,
        projection: dict[str, Any] | None = None,
        page: PullPage | None = None,
        *,
        fields: list[str] | None = None,
        integration: str = "",
        correlation: str = "",
        kind: EntityKind = ENTITIES[PATIENT],
        mapping_version: int = 0,
        patient_id: str = "",
    ) -> audit_pb2.AuditEvent:
        """One audit event; a bare action ("update") is qualified by the record's kind ("patient.update")."""
        caller = current_caller()
        return audit_pb2.AuditEvent(
            practice_id=practice_id,
            user_id=caller.user_id or SYNC_USER,
            action=action if "." in action else f"{kind.resource_type.lower()}.{action}",
            resource=f"{kind.resource_type}/{record_id}",
            patient_id=record_id if kind.is_patient else patient_id,
            integration_type=integration or (page.integration_type if page else ""),
            data_accessed=fields if fields is not None else _fields_present(projection or {}),
            success=True,
            ip_address=caller.ip_address,
            user_agent=caller.user_agent,
            correlation_id=correlation or (page.run_id if page else caller.request_id),
            mapping_version=mapping_version,
        )

    async def _audit(self, events: list[audit_pb2.AuditEvent]) -> None:
        if events:
            await call(self._peers.audit.Record, audit_pb2.RecordRequest(events=events))


# What a delivery to a per-config URL that names no such config gets: the same as a bad signature.
_UNSIGNED = adapter_pb2.VerifyWebhookResponse(valid=False, reason="BAD_SIGNATURE")


def _require_baa(config: registry_pb2.IntegrationConfig, definition: Any) -> None:
    """Minimum necessary: a message or an availability request names a patient to the vendor,
    which a vendor needing a BAA may not learn before the practice's BAA with it is in effect."""
    if not minimum_necessary.policy_now(config, definition).phi_permitted:
        raise FailedPrecondition(
            f"the practice has no Business Associate Agreement with {config.integration_type} in effect",
            reason="BAA_REQUIRED",
        )


def _field_policies(config: registry_pb2.IntegrationConfig) -> dict[str, str]:
    return {key: common_pb2.ConflictPolicy.Name(value) for key, value in config.field_conflict_policies.items()}


def _aware(moment: datetime | None) -> datetime | None:
    """SQLite hands back timestamps without their zone; they were written in UTC."""
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _struct_id(record: struct_pb2.Struct) -> str:
    """A vendor record's own "id", when it has one (what names a record the mapping could not read)."""
    value = record.fields.get("id")
    if value is None:
        return ""
    kind = value.WhichOneof("kind")
    return value.string_value if kind == "string_value" else str(json_format.MessageToDict(value) or "")


def _failure(ref: str, field: str, reason: str, message: str) -> dict[str, str]:
    return {"record_ref": ref, "field": field, "reason": reason, "message": message}


def _failures(ref: str, errors: Any) -> list[dict[str, str]]:
    return [_failure(ref, e.field, e.reason, e.message) for e in errors]


def _readable_direction(definition: Any, entity_type: str, direction: str) -> str:
    """A vendor whose API cannot write this entity (definition extra ``read_only_entities``, e.g.
    Zenoti's catalog) is only pulled: a push is refused, a two-way run pulls."""
    read_only = definition.extra.fields.get("read_only_entities")
    if read_only is None or entity_type not in [v.string_value for v in read_only.list_value.values]:
        return direction
    if direction == "SYNC_DIRECTION_PUSH":
        raise FailedPrecondition(
            f"{definition.name} does not accept writes of this entity: it is pulled only", reason="READ_ONLY_ENTITY"
        )
    return "SYNC_DIRECTION_PULL"
