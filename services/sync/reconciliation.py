"""Scheduled reconciliation: the safety net behind cursors and webhooks (a vendor drops webhooks, GHL
retries only on 429, users edit vendor records in ways a cursor can miss).

A reconciliation of one (config, entity) pages through the vendor's whole listing (``fetch_changes``
from no cursor; the stored cursor is neither read nor moved) and compares each vendor record with
its link's merge base (``sync_links.base_enc``: the projection both sides last agreed on, what the
three-way merge compares), by a digest: SHA-256 of the canonical JSON of the merge projection,
keyed by the vendor id.

- matched: the vendor holds the record as Concord last synced it;
- drifted: the vendor changed it since (a missed change), or it no longer maps;
- unlinked: the vendor has it, the hub has no link to it.

Order-independent checksums (sums mod 2^256 of the digests) are kept over the vendor's records and
over the links' bases: equal when the two sides agree.

Drifted and unlinked records are healed through the pull's one reconcile path
(``SyncService.reconcile_pull_page`` with ``move_cursor=False``, under the reconciliation's own run
row), so the merge policy, identity matching, history and dead letters apply exactly as for a pull.
A push-only config's hub is the source: its drifted records are marked for the next push instead,
and its unlinked vendor records are only counted.

Links the listing never showed are read back by id (``get_records``, where the adapter serves the
entity: listings of some entities are windows, e.g. GHL's and Zenoti's appointments, and Salesforce
leaves the last seconds for the next read); one found is compared like a listed one, one the vendor
does not have, or could not be asked about, is **missing at vendor**: a review item of kind
``missing`` (ids only), unless one is open for that record already. A link synced after the
reconciliation began (a push or pull meanwhile) was confirmed by the vendor then and is never
missing. Hub records changed since their last push are counted apart (``pending_push``): they are
not drift.

Which vendor ids a running reconciliation has seen is kept in ``sync_reconciliation_seen`` (rows
keyed by reconciliation and vendor id, dropped when it finishes) rather than a column on
``sync_links``: a vendor id the listing shows twice (a record edited while it is listed) or a
retried page is counted once, a failed run leaves no mark on the links every sync path shares, and
links made while it runs are told apart by their ``synced_at``. The report
(``sync_reconciliations``) holds counts and checksums only: no value, no PHI.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from temporalio import activity, workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from google.protobuf import json_format
    from sqlalchemy import exists, func, select, update
    from temporalio.common import WorkflowIDConflictPolicy
    from temporalio.exceptions import WorkflowAlreadyStartedError

    from libs.errors import FailedPrecondition, InvalidArgument, NotFound
    from libs.paging import page_size
    from libs.proto_convert import timestamp
    from libs.protos.concord.adapter.v1 import adapter_pb2
    from libs.protos.concord.common.v1 import common_pb2
    from libs.protos.concord.registry.v1 import registry_pb2
    from libs.protos.concord.sync.v1 import sync_pb2 as pb
    from libs.telemetry import current_trace_id
    from services.sync import domain, models
    from services.sync.domain import PullPage
    from services.sync.entities import ENTITIES, PATIENT, EntityKind, kind_of
    from services.sync.repository import now
    from services.sync.tombstones import REVIEW_KIND as DELETE_REVIEW
    from services.sync.tombstones import REVIEW_PURPOSE
    from services.sync.workflows import HUB_STEP, VENDOR_STEP

if TYPE_CHECKING:
    from services.sync.service import SyncService

REVIEW_KIND = "missing"
RUNNING, SUCCEEDED, FAILED = "running", "succeeded", "failed"
# What a reconciliation saw of a vendor id: in the listing, read back by id and found, read back and gone.
LISTED, READ, GONE = "listed", "read", "gone"
COUNTS = (
    "hub_count",
    "vendor_count",
    "matched",
    "drifted",
    "healed",
    "unlinked",
    "missing_at_vendor",
    "pending_push",
    "review_items_opened",
)
ZERO = "0" * 64
MODULUS = 1 << 256
# Daily, whatever the config's sync frequency; spread over an hour so a practice's configs (and the
# practices of one deployment) do not all list their vendors at once.
EVERY = timedelta(days=1)
JITTER = timedelta(hours=1)
SCHEDULE_PREFIX = "reconcile:"
READ_BACK_BATCH = 100
# An adapter that cannot read this entity by id refuses (InvalidArgument) or does not serve
# get_records at all (Temporal's NotFoundError): the listing alone then says what is missing.
CANNOT_READ_BACK = ("InvalidArgument", "NotFoundError")
READ_BACK_STEP = {
    **VENDOR_STEP,
    "retry_policy": dataclasses.replace(
        VENDOR_STEP["retry_policy"],
        non_retryable_error_types=[*VENDOR_STEP["retry_policy"].non_retryable_error_types, "NotFoundError"],
    ),
}

RC, SEEN = models.reconciliations, models.reconciliation_seen
L, REC, RV = models.links, models.records, models.review_items


def schedule_id(config_id: str, entity_type: str) -> str:
    return f"{SCHEDULE_PREFIX}{config_id}:{entity_type}"


def is_schedule(schedule: str) -> bool:
    """Whether a Temporal Schedule id is a reconciliation's (ApplySchedules lists them apart)."""
    return schedule.startswith(SCHEDULE_PREFIX)


def workflow_id(config_id: str, entity_type: str) -> str:
    """One reconciliation at a time per config and entity."""
    return f"reconcile:{config_id}:{entity_type}"


# --- digests and checksums (pure) --------------------------------------------------------------


def record_digest(external_id: str, projection: Mapping[str, Any]) -> int:
    """SHA-256 of the canonical JSON of one record's merge projection, keyed by its vendor id. A
    field without a value is left out: the merge reads a missing field and a null one alike."""
    canonical = json.dumps(
        {"id": external_id, "fields": {k: v for k, v in projection.items() if v is not None}},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return int.from_bytes(hashlib.sha256(canonical.encode()).digest(), "big")


def add_digests(checksum: str, digests: Iterable[int]) -> str:
    """The checksum (sum mod 2^256, 64 hex digits) with more digests added: the order they come in
    does not matter, and a record counted twice does not cancel out as it would under XOR."""
    total = int(checksum or ZERO, 16)
    for digest in digests:
        total = (total + digest) % MODULUS
    return f"{total:064x}"


@dataclass
class Tally:
    vendor_count: int = 0
    hub_count: int = 0
    matched: int = 0
    drifted: int = 0
    unlinked: int = 0
    vendor_digests: list[int] = field(default_factory=list)
    hub_digests: list[int] = field(default_factory=list)
    # The drifted and unlinked vendor ids: what a heal sends through the reconcile path.
    heal: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in ("vendor_count", "hub_count", "matched", "drifted", "unlinked")}


def compare(theirs: Mapping[str, Mapping[str, Any] | None], bases: Mapping[str, Mapping[str, Any]]) -> Tally:
    """Each vendor record (vendor id -> its merge projection, None when it no longer maps) against
    its link's base (absent: not linked)."""
    tally = Tally()
    for ext, view in theirs.items():
        tally.vendor_count += 1
        vendor = record_digest(ext, view) if view is not None else None
        if vendor is not None:
            tally.vendor_digests.append(vendor)
        base = bases.get(ext)
        if base is None:
            tally.unlinked += 1
            tally.heal.append(ext)
            continue
        hub = record_digest(ext, base)
        tally.hub_count += 1
        tally.hub_digests.append(hub)
        if vendor == hub:
            tally.matched += 1
        else:
            tally.drifted += 1
            tally.heal.append(ext)
    return tally


def _aware(moment: datetime | None) -> datetime | None:
    """SQLite hands timestamps back without their zone; they were written in UTC."""
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


def to_proto(row: Any) -> pb.Reconciliation:
    """A report (a row, or the dict StartReconciliation has just inserted)."""
    values = row if isinstance(row, dict) else dict(row._mapping)
    return pb.Reconciliation(
        **{name: values[name] for name in (*COUNTS, "reconciliation_id", "practice_id", "config_id", "run_id")},
        hub_checksum=values["hub_checksum"],
        vendor_checksum=values["vendor_checksum"],
        error_message=values["error_message"],
        entity_type=common_pb2.EntityType.Value(values["entity_type"]),
        status=pb.ReconciliationStatus.Value(f"RECONCILIATION_STATUS_{values['status'].upper()}"),
        start_time=timestamp(values["started_at"]),
        end_time=timestamp(values["completed_at"]),
    )


# --- workflow arguments --------------------------------------------------------------------------


@dataclass
class ReconcileInput:
    reconciliation_id: str
    run_id: str
    practice_id: str
    config_id: str
    integration_type: str
    entity_type: str
    conflict_policy: str
    field_policies: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)
    # Drift heals into the hub when the config pulls; a push-only config's next push heals it.
    pulls: bool = True
    # The listing's position: "" is the beginning (everything the vendor has of the entity).
    cursor: str = ""
    page_size: int = 100
    pages_per_execution: int = 50
    listed: bool = False


@dataclass
class ReconcilePage:
    job: ReconcileInput
    records: list[dict]
    vendor_requests: int = 0
    # Records read back by id (links the listing did not show), and the ids the vendor has not.
    read_back: bool = False
    gone: list[str] = field(default_factory=list)


@dataclass
class ReconcileDone:
    reconciliation_id: str
    error_message: str = ""


# --- the workflow --------------------------------------------------------------------------------


def _cause(error: ActivityError) -> str:
    cause = error.cause
    return cause.type if isinstance(cause, ApplicationError) and cause.type else type(cause).__name__


@workflow.defn(name="Reconcile")
class ReconcileWorkflow:
    @workflow.run
    async def run(self, job: ReconcileInput) -> str:
        try:
            if not job.listed and not await self._list(job):
                workflow.continue_as_new(job)  # long listings: the position travels in the input
            await self._read_back(job)
        except ActivityError as error:
            reason = _cause(error)
            done = ReconcileDone(job.reconciliation_id, f"reconciliation step failed: {reason}")
            await workflow.execute_activity("finish_reconciliation", done, **HUB_STEP)
            raise ApplicationError(f"reconciliation failed: {reason}", non_retryable=True) from None
        await workflow.execute_activity("finish_reconciliation", ReconcileDone(job.reconciliation_id), **HUB_STEP)
        return job.reconciliation_id

    async def _list(self, job: ReconcileInput) -> bool:
        """Pages of the vendor's whole listing, each compared (and healed) by the hub; True at its end."""
        for _ in range(job.pages_per_execution):
            page = await workflow.execute_activity(
                "fetch_changes",
                adapter_pb2.FetchChangesRequest(
                    config_id=job.config_id,
                    entity_type=common_pb2.EntityType.Value(job.entity_type),
                    cursor=job.cursor,
                    page_size=job.page_size,
                    options=json_format.ParseDict(job.options, registry_pb2.VendorOptions()),
                    lane=adapter_pb2.LANE_SCHEDULED,
                ),
                task_queue=f"adapter.{job.integration_type}",
                result_type=adapter_pb2.FetchChangesResponse,
                **VENDOR_STEP,
            )
            records = [json_format.MessageToDict(r) for r in page.records]
            await workflow.execute_activity(
                "reconcile_vendor_page", ReconcilePage(job, records, page.vendor_requests), **HUB_STEP
            )
            job.cursor = page.next_cursor
            if not page.has_more:
                job.listed = True
                return True
        return False

    async def _read_back(self, job: ReconcileInput) -> None:
        """The links the listing did not show, read by id: found ones are compared as listed ones."""
        unseen: list[str] = await workflow.execute_activity(
            "reconciliation_unseen", job.reconciliation_id, result_type=list[str], **HUB_STEP
        )
        for start in range(0, len(unseen), READ_BACK_BATCH):
            try:
                found = await workflow.execute_activity(
                    "get_records",
                    adapter_pb2.GetRecordsRequest(
                        config_id=job.config_id,
                        entity_type=common_pb2.EntityType.Value(job.entity_type),
                        external_ids=unseen[start : start + READ_BACK_BATCH],
                        options=json_format.ParseDict(job.options, registry_pb2.VendorOptions()),
                        lane=adapter_pb2.LANE_SCHEDULED,
                    ),
                    task_queue=f"adapter.{job.integration_type}",
                    result_type=adapter_pb2.GetRecordsResponse,
                    **READ_BACK_STEP,
                )
            except ActivityError as error:
                if _cause(error) in CANNOT_READ_BACK:
                    return
                raise
            page = ReconcilePage(
                job,
                [json_format.MessageToDict(r) for r in found.records],
                found.vendor_requests,
                read_back=True,
                gone=list(found.missing_ids),
            )
            await workflow.execute_activity("reconcile_vendor_page", page, **HUB_STEP)


# --- the hub's side ------------------------------------------------------------------------------


class Reconciliations:
    """Works for the sync service (``service``): its mapping, cipher, reconcile path and audit."""

    def __init__(self, service: SyncService) -> None:
        self._service = service
        self._repo = service._repo
        self._sessions = service._sessions

    async def start(self, practice_id: str, config_id: str, entity_type: str) -> dict[str, Any]:
        """Starts one (its report row, its run row, its workflow); returns the report as started."""
        service = self._service
        kind = kind_of(entity_type or PATIENT)
        config = await service._runnable_config(practice_id, config_id, kind)
        direction = common_pb2.SyncDirection.Name(config.sync_direction)
        reconciliation_id, run_id = str(uuid.uuid4()), str(uuid.uuid4())
        wf_id = workflow_id(config_id, kind.entity_type)
        report = {
            "reconciliation_id": reconciliation_id,
            "practice_id": practice_id,
            "config_id": config_id,
            "entity_type": kind.entity_type,
            "run_id": run_id,
            "status": RUNNING,
            "started_at": now(),
            "completed_at": None,
            "hub_checksum": ZERO,
            "vendor_checksum": ZERO,
            "error_message": "",
            **dict.fromkeys(COUNTS, 0),
        }
        run = domain.new_run_row(run_id, config, kind.entity_type, domain.PULL, wf_id, current_trace_id())
        async with self._sessions() as session, session.begin():
            await self._repo.insert_run(session, run)
            await session.execute(RC.insert().values(**report))
        job = ReconcileInput(
            reconciliation_id=reconciliation_id,
            run_id=run_id,
            practice_id=practice_id,
            config_id=config_id,
            integration_type=config.integration_type,
            entity_type=kind.entity_type,
            conflict_policy=common_pb2.ConflictPolicy.Name(config.conflict_policy),
            field_policies={k: common_pb2.ConflictPolicy.Name(v) for k, v in config.field_conflict_policies.items()},
            options=json_format.MessageToDict(config.options, preserving_proto_field_name=True),
            pulls=domain.pulls(direction),
        )
        try:
            await service._temporal.start_workflow(
                "Reconcile",
                job,
                id=wf_id,
                task_queue=service._task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            )
        except WorkflowAlreadyStartedError:
            async with self._sessions() as session, session.begin():
                await session.execute(RC.delete().where(RC.c.reconciliation_id == reconciliation_id))
                await self._repo.delete_run(session, run_id)
            raise FailedPrecondition(
                "a reconciliation of this config and entity is running", reason="RECONCILIATION_RUNNING"
            ) from None
        return report

    async def list_reports(self, practice_id: str, config_id: str, entity_type: str, limit: int) -> list[Any]:
        """The config's reports (of one entity, or of all), newest first."""
        await self._service.owned_config(practice_id, config_id)
        query = select(RC).where(RC.c.practice_id == practice_id, RC.c.config_id == config_id)
        if entity_type:
            query = query.where(RC.c.entity_type == kind_of(entity_type).entity_type)
        query = query.order_by(RC.c.started_at.desc(), RC.c.reconciliation_id.desc())
        async with self._sessions() as session:
            return list(await session.execute(query.limit(page_size(limit, default=20, maximum=100))))

    # --- schedules -------------------------------------------------------------------------------

    async def apply_schedules(self, config: Any) -> list[tuple[str, timedelta, Any]]:
        """A daily reconciliation per entity an active config syncs, whatever its frequency (manual
        ones too: reconciliation is the safety net for every config); none for an inactive config
        or a disabled entity. Each starts ScheduledSync as a sync schedule does (overlaps skipped)."""
        wanted = {common_pb2.EntityType.Name(e) for e in config.enabled_entities} if config.active else set()
        described = []
        for entity_type in sorted(ENTITIES):
            request = domain.ScheduledSyncInput(config.practice_id, config.config_id, entity_type, reconcile=True)
            description = await self._service.put_schedule(
                schedule_id(config.config_id, entity_type),
                request if entity_type in wanted else None,
                EVERY,
                workflow_id=f"scheduled-reconcile:{config.config_id}:{entity_type}",
                jitter=JITTER,
            )
            if description is not None:
                described.append((entity_type, EVERY, description))
        return described

    # --- activities ----------------------------------------------------------------------------

    async def compare_page(self, page: ReconcilePage) -> None:
        """One page of the vendor's records compared with the links' bases, its drift healed, its
        counts and checksums added to the report (each vendor id once per reconciliation)."""
        job, service = page.job, self._service
        kind = kind_of(job.entity_type)
        await service._cipher.ensure_key(job.practice_id)
        mapped = await service._map_to_hub(job.integration_type, kind, page.records, job.config_id, job.options)
        raw: dict[str, dict] = {}
        usable: list[tuple[str, dict]] = []
        for record, result in zip(page.records, mapped, strict=True):
            ext = result.external_id or str(record.get("id", ""))
            if not ext:
                continue  # nothing to compare it with; the pull that meets it parks it as a dead letter
            raw[ext] = record
            if not result.errors and result.external_id:
                usable.append((ext, json.loads(result.resource_json)))
        async with self._sessions() as session:
            usable, _ = await service._to_hub_refs(session, job.config_id, kind, usable)
            links = await self._repo.links_by_external_id(session, job.config_id, kind.entity_type, list(raw))
            seen = await self._seen(session, job.reconciliation_id, [*raw, *page.gone])
        views: dict[str, dict | None] = dict.fromkeys(raw) | {ext: kind.project(r) for ext, r in usable}
        bases = {
            ext: await service._cipher.decrypt_json(job.practice_id, link.base_enc, kind.base_purpose)
            for ext, link in links.items()
        }
        fresh = [ext for ext in views if ext not in seen]
        found = compare({ext: views[ext] for ext in fresh}, bases)
        # Every drifted record of the page is healed, counted or not: one the vendor listed again
        # (edited while listed) differs again.
        heal = compare(views, bases).heal
        healed = 0
        if job.pulls and heal:
            await service.reconcile_pull_page(
                PullPage(
                    run_id=job.run_id,
                    config_id=job.config_id,
                    practice_id=job.practice_id,
                    integration_type=job.integration_type,
                    conflict_policy=job.conflict_policy,
                    field_policies=job.field_policies,
                    records=[raw[ext] for ext in heal],
                    next_cursor="",
                    vendor_requests=0,
                    entity_type=kind.entity_type,
                    options=job.options,
                    move_cursor=False,
                )
            )
            healed = await self._agreeing(job, kind, {ext: views[ext] for ext in found.heal})
        state = READ if page.read_back else LISTED
        marks = [{"external_id": ext, "state": state} for ext in fresh]
        marks += [{"external_id": ext, "state": GONE} for ext in dict.fromkeys(page.gone) if ext not in seen]
        async with self._sessions() as session, session.begin():
            drifted = [links[ext].record_id for ext in found.heal if ext in links]
            if not job.pulls and drifted:  # the hub is the source: the next push sends it its record again
                await session.execute(
                    update(L)
                    .where(L.c.config_id == job.config_id, L.c.entity_type == kind.entity_type)
                    .where(L.c.record_id.in_(drifted))
                    .values(synced_version=0)
                )
                healed = len(drifted)
            if marks:
                await session.execute(SEEN.insert(), [{"reconciliation_id": job.reconciliation_id, **m} for m in marks])
            counts = {**found.counts(), "healed": healed}
            await self._add(session, job.reconciliation_id, counts, found.hub_digests, found.vendor_digests)
            await self._repo.add_to_run(session, job.run_id, {"vendor_requests": page.vendor_requests}, [])

    async def unseen(self, reconciliation_id: str) -> list[str]:
        """The vendor ids of links that neither the listing nor a read by id has shown yet."""
        async with self._sessions() as session:
            report = await self._report(session, reconciliation_id)
            return [link.external_id for link in await self._unseen_links(session, report)]

    async def finish(self, done: ReconcileDone) -> None:
        """Links never shown are missing at the vendor (a review item each, none twice); the report
        and its run row are closed."""
        service = self._service
        events = []
        async with self._sessions() as session, session.begin():
            report = await self._report(session, done.reconciliation_id)
            if report.status != RUNNING:
                return  # a retry after it committed
            values: dict[str, Any] = {"completed_at": now()}
            if done.error_message:
                values.update(status=FAILED, error_message=done.error_message)
            else:
                kind = kind_of(report.entity_type)
                unseen = await self._unseen_links(session, report)
                gone = {m.external_id for m in await self._marks(session, report.reconciliation_id, GONE)}
                rows = await self._repo.get_records(
                    session, report.practice_id, kind.entity_type, [link.record_id for link in unseen]
                )
                # A tombstone's link is a delete waiting for the next push, not a missing record.
                missing = [
                    link for link in unseen if (row := rows.get(link.record_id)) is not None and row.deleted_at is None
                ]
                events = await self._hold_missing(session, report, kind, missing, gone)
                hub = [
                    record_digest(
                        link.external_id,
                        await service._cipher.decrypt_json(report.practice_id, link.base_enc, kind.base_purpose),
                    )
                    for link in unseen
                ]
                await self._add(session, report.reconciliation_id, {"hub_count": len(unseen)}, hub, [])
                values.update(
                    status=SUCCEEDED,
                    missing_at_vendor=len(missing),
                    pending_push=await self._pending_push(session, report),
                    review_items_opened=await self._opened(session, report),
                )
            await session.execute(update(RC).where(RC.c.reconciliation_id == report.reconciliation_id).values(**values))
            await self._repo.finish_run(session, report.run_id, done.error_message)
            await session.execute(SEEN.delete().where(SEEN.c.reconciliation_id == report.reconciliation_id))
            await service._audit(events)

    async def start_scheduled(self, request: domain.ScheduledSyncInput) -> str:
        return (await self.start(request.practice_id, request.config_id, request.entity_type))["reconciliation_id"]

    # --- the review queue ------------------------------------------------------------------------

    async def settle_review(self, session: Any, practice_id: str, item: Any, kind: EntityKind, choice: str) -> None:
        """A person's answer to a record the vendor no longer has. hub: the stale link goes, so the
        next push makes the record again at the vendor (nothing else is queued). vendor: the
        vendor's side is taken (accept_vendor_missing)."""
        if choice == "vendor":
            await self.accept_vendor_missing(session, practice_id, item, kind)
            return
        await self._repo.delete_links(session, item.config_id, kind.entity_type, [item.record_id])

    async def accept_vendor_missing(self, session: Any, practice_id: str, item: Any, kind: EntityKind) -> None:
        """The vendor's side of a record it no longer has: the vendor's delete, taken as a person's
        answer to a held one is (services/sync/tombstones.py: the link goes, the hub record becomes a
        tombstone at a new version, its history says side review, action delete; audited). Only
        removing the link would not do: an unlinked live record is pushed, made again there."""
        await self._service.tombstones.settle_review(session, practice_id, item, kind, "vendor")

    # --- helpers ---------------------------------------------------------------------------------

    async def _agreeing(self, job: ReconcileInput, kind: EntityKind, views: Mapping[str, Any]) -> int:
        """How many of these vendor records the hub now agrees with: linked, the base their
        projection, no field or identity of theirs waiting for a person."""
        async with self._sessions() as session:
            links = await self._repo.links_by_external_id(session, job.config_id, kind.entity_type, list(views))
            waiting = await self._repo.open_reviews(
                session, job.config_id, kind.entity_type, [link.record_id for link in links.values()]
            )
        held = {record_id for record_id, _ in waiting}
        agreeing = 0
        for ext, link in links.items():
            if views[ext] is None or link.record_id in held:
                continue
            base = await self._service._cipher.decrypt_json(job.practice_id, link.base_enc, kind.base_purpose)
            agreeing += record_digest(ext, base) == record_digest(ext, views[ext])
        return agreeing

    async def _hold_missing(
        self, session: Any, report: Any, kind: EntityKind, missing: list[Any], gone: set[str]
    ) -> list[Any]:
        """A review item of kind missing per record, unless one (or a held vendor delete) is open."""
        if not missing:
            return []
        service = self._service
        open_items = await session.execute(
            select(RV.c.record_id).where(
                RV.c.config_id == report.config_id,
                RV.c.entity_type == kind.entity_type,
                RV.c.record_id.in_([link.record_id for link in missing]),
                RV.c.kind.in_((REVIEW_KIND, DELETE_REVIEW)),
                RV.c.status == "OPEN",
            )
        )
        held = {row.record_id for row in open_items}
        stamp = datetime.now(UTC)
        sealed = await service._cipher.encrypt_json(report.practice_id, {}, REVIEW_PURPOSE)  # ids only: no value
        items, events = [], []
        for link in missing:
            if link.record_id in held:
                continue
            why = ["not_listed", "read_back_missing"] if link.external_id in gone else ["not_listed"]
            # The report names the practice, config and run as a page does.
            items.append(
                domain.review_row(
                    report, kind, link.record_id, link.external_id, sealed, stamp, kind_name=REVIEW_KIND, reasons=why
                )
            )
            events.append(
                service._event(
                    report.practice_id, "review.hold", link.record_id, fields=[], correlation=report.run_id, kind=kind
                )
            )
        await self._repo.insert_reviews(session, items)
        return events

    @staticmethod
    async def _report(session: Any, reconciliation_id: str) -> Any:
        query = select(RC).where(RC.c.reconciliation_id == reconciliation_id)
        return (await session.execute(query)).one()

    @staticmethod
    async def _add(
        session: Any, reconciliation_id: str, counts: dict[str, int], hub: list[int], vendor: list[int]
    ) -> None:
        current = (
            await session.execute(
                select(RC.c.hub_checksum, RC.c.vendor_checksum).where(RC.c.reconciliation_id == reconciliation_id)
            )
        ).one()
        values = {name: getattr(RC.c, name) + amount for name, amount in counts.items() if amount}
        values["hub_checksum"] = add_digests(current.hub_checksum, hub)
        values["vendor_checksum"] = add_digests(current.vendor_checksum, vendor)
        await session.execute(update(RC).where(RC.c.reconciliation_id == reconciliation_id).values(**values))

    @staticmethod
    async def _seen(session: Any, reconciliation_id: str, external_ids: list[str]) -> set[str]:
        if not external_ids:
            return set()
        rows = await session.execute(
            select(SEEN.c.external_id).where(
                SEEN.c.reconciliation_id == reconciliation_id, SEEN.c.external_id.in_(sorted(set(external_ids)))
            )
        )
        return {row.external_id for row in rows}

    @staticmethod
    async def _marks(session: Any, reconciliation_id: str, state: str) -> list[Any]:
        query = select(SEEN).where(SEEN.c.reconciliation_id == reconciliation_id, SEEN.c.state == state)
        return list(await session.execute(query))

    @staticmethod
    async def _unseen_links(session: Any, report: Any) -> list[Any]:
        """Links the vendor showed neither in its listing nor when read by id, made before the
        reconciliation began (a link synced since was confirmed by the vendor then)."""
        shown = exists().where(
            SEEN.c.reconciliation_id == report.reconciliation_id,
            SEEN.c.external_id == L.c.external_id,
            SEEN.c.state != GONE,
        )
        query = select(L).where(
            L.c.config_id == report.config_id,
            L.c.entity_type == report.entity_type,
            L.c.synced_at < report.started_at,
            ~shown,
        )
        return list(await session.execute(query.order_by(L.c.external_id)))

    @staticmethod
    async def _pending_push(session: Any, report: Any) -> int:
        """Linked hub records changed since their last push: the next push sends them."""
        query = (
            select(func.count())
            .select_from(L.join(REC, REC.c.record_id == L.c.record_id))
            .where(
                L.c.config_id == report.config_id,
                L.c.entity_type == report.entity_type,
                REC.c.version > L.c.synced_version,
            )
        )
        return (await session.execute(query)).scalar_one()

    @staticmethod
    async def _opened(session: Any, report: Any) -> int:
        """Review items opened under its run (missing ones, and what its heals held)."""
        query = (
            select(func.count())
            .select_from(RV)
            .where(RV.c.run_id == report.run_id, RV.c.created_at >= report.started_at)
        )
        return (await session.execute(query)).scalar_one()


class ReconciliationActivities:
    """The reconciliation's hub steps, run on the sync task queue beside SyncActivities."""

    def __init__(self, reconciliations: Reconciliations) -> None:
        self._reconciliations = reconciliations

    @activity.defn(name="reconcile_vendor_page")
    async def reconcile_vendor_page(self, page: ReconcilePage) -> None:
        try:
            await self._reconciliations.compare_page(page)
        except (InvalidArgument, NotFound) as error:  # as the pull's reconcile step: retrying changes nothing
            raise ApplicationError(error.reason, type=type(error).__name__, non_retryable=True) from None

    @activity.defn(name="reconciliation_unseen")
    async def reconciliation_unseen(self, reconciliation_id: str) -> list[str]:
        return await self._reconciliations.unseen(reconciliation_id)

    @activity.defn(name="finish_reconciliation")
    async def finish_reconciliation(self, done: ReconcileDone) -> None:
        await self._reconciliations.finish(done)

    def all(self) -> list:
        return [self.reconcile_vendor_page, self.reconciliation_unseen, self.finish_reconciliation]
