"""Sync rules and the workflow/activity argument types: pure, no gRPC, no SQL."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

HUB_WINS = "CONFLICT_POLICY_HUB_WINS"
VENDOR_WINS = "CONFLICT_POLICY_VENDOR_WINS"
NEWEST_WINS = "CONFLICT_POLICY_NEWEST_WINS"
MANUAL_REVIEW = "CONFLICT_POLICY_MANUAL_REVIEW"
POLICIES = (HUB_WINS, VENDOR_WINS, NEWEST_WINS, MANUAL_REVIEW)
# Two modification times closer than this do not say which edit came last: the sides' clocks may
# disagree by that much. A time further than this ahead of the hub's clock is not believed either.
CLOCK_SKEW = timedelta(minutes=2)

PULL = "SYNC_DIRECTION_PULL"
PUSH = "SYNC_DIRECTION_PUSH"
BIDIRECTIONAL = "SYNC_DIRECTION_BIDIRECTIONAL"

RUNNING, SUCCEEDED, PARTIAL, FAILED = "RUNNING", "SUCCEEDED", "PARTIAL", "FAILED"


@dataclass(frozen=True)
class MergeResult:
    # Field -> value to write into the hub record.
    changes: dict[str, str | None]
    # Fields both sides changed to different values.
    conflicts: tuple[str, ...]
    # Conflicting fields no rule could settle: they keep the hub's value and wait in the review queue.
    held: tuple[str, ...] = ()


@dataclass(frozen=True)
class Clocks:
    """Each side's modification time of the record, and the hub's clock now (newest_wins)."""

    ours: datetime | None
    theirs: datetime | None
    now: datetime

    def newer(self) -> str | None:
        """ "ours" or "theirs" when the times tell which edit came last beyond any skew; else None."""
        if self.ours is None or self.theirs is None:
            return None
        horizon = self.now + CLOCK_SKEW
        if self.ours > horizon or self.theirs > horizon:
            return None  # a clock running ahead: its times order nothing
        if abs(self.ours - self.theirs) <= CLOCK_SKEW:
            return None
        return "theirs" if self.theirs > self.ours else "ours"


def merge(
    base: dict[str, str | None],
    ours: dict[str, str | None],
    theirs: dict[str, str | None],
    policy: str,
    prevailing: Mapping[str, str] | None = None,
    *,
    field_policies: Mapping[str, str] | None = None,
    clocks: Clocks | None = None,
) -> MergeResult:
    """Field-level three-way merge of canonical projections.

    A field only the vendor changed is taken; a field only the hub changed is kept; a field both
    changed to different values is a conflict, settled by the field's policy (``field_policies``,
    else ``policy``), unless one side holds the field's ``prevailing`` value (a revoked consent:
    ``deny``), which then wins whatever the policy: a patient's opt-out on either side is never
    undone by the other side's older opt-in.

    hub_wins keeps ours, vendor_wins takes theirs, newest_wins takes the side modified last when
    ``clocks`` tell it beyond CLOCK_SKEW, and manual_review holds the field; a newest_wins conflict
    the clocks cannot order is held too, rather than guessed. A held field keeps the hub's value.
    """
    changes: dict[str, str | None] = {}
    conflicts, held = [], []
    for name in sorted(set(base) | set(ours) | set(theirs)):
        b, o, t = base.get(name), ours.get(name), theirs.get(name)
        if t == b or o == t:
            continue
        if o == b:
            changes[name] = t
            continue
        conflicts.append(name)
        safe = (prevailing or {}).get(name)
        if safe is not None and safe in (o, t):
            if t == safe:
                changes[name] = t
            continue
        rule = (field_policies or {}).get(name) or policy
        if rule == NEWEST_WINS:
            newer = clocks.newer() if clocks is not None else None
            rule = {"theirs": VENDOR_WINS, "ours": HUB_WINS}.get(newer or "", MANUAL_REVIEW)
        if rule == VENDOR_WINS:
            changes[name] = t
        elif rule == MANUAL_REVIEW:
            held.append(name)
    return MergeResult(changes, tuple(conflicts), tuple(held))


# What becomes of a hub record whose vendor record was deleted (decide_delete).
DELETE, KEEP, REVIEW = "delete", "keep", "review"


def decide_delete(policy: str, hub_changed: bool, clocks: Clocks | None = None) -> str:
    """A vendor's delete as a tombstone under the merge's rules: the whole record is one field
    whose vendor side is "gone". With no hub change since the last sync it is a one-sided change,
    taken (DELETE). A hub edit the vendor never saw makes it a conflict, settled by the policy:
    hub_wins KEEPs the record (the vendor gets it again), vendor_wins DELETEs, newest_wins compares
    the hub edit with the delete beyond the clock-skew guard (REVIEW when they cannot be ordered),
    manual_review holds it for a REVIEW."""
    if not hub_changed:
        return DELETE
    if policy == NEWEST_WINS:
        newer = clocks.newer() if clocks is not None else None
        policy = {"theirs": VENDOR_WINS, "ours": HUB_WINS}.get(newer or "", MANUAL_REVIEW)
    return {HUB_WINS: KEEP, VENDOR_WINS: DELETE}.get(policy, REVIEW)


def pulls(direction: str) -> bool:
    return direction in (PULL, BIDIRECTIONAL)


def pushes(direction: str) -> bool:
    return direction in (PUSH, BIDIRECTIONAL)


def final_status(failed: int, error: str) -> str:
    if error:
        return FAILED
    return PARTIAL if failed else SUCCEEDED


# Workflow and activity arguments (one dataclass each, as Temporal's samples do).


@dataclass
class SyncRunInput:
    run_id: str
    config_id: str
    practice_id: str
    integration_type: str
    entity_type: str
    direction: str
    conflict_policy: str
    page_size: int = 100
    # The config's per-field overrides, "<entity>.<field>" -> policy (libs/merge_fields.py).
    field_policies: dict = field(default_factory=dict)
    push_batch_size: int = 100
    # Pull pages handled before continue-as-new keeps the history small.
    pages_per_execution: int = 50
    pull_done: bool = False
    # The config's VendorOptions as JSON when the run started: what the pull reads and maps with.
    options: dict = field(default_factory=dict)
    # Pull from no cursor (everything at the vendor), as after a gap in its change events; a
    # continued execution resumes from the cursor the first one saved.
    from_start: bool = False
    # The rate governor's lane its vendor calls wait in (adapter Lane: 1 real time, 2 a user's,
    # 3 scheduled, 4 backfill).
    lane: int = 2


@dataclass
class RecordFailure:
    record_ref: str
    field: str
    reason: str
    message: str


@dataclass
class PullPage:
    run_id: str
    config_id: str
    practice_id: str
    integration_type: str
    conflict_policy: str
    records: list[dict]
    next_cursor: str
    vendor_requests: int
    entity_type: str = "ENTITY_TYPE_PATIENT"
    # The options the page was read with (SyncRunInput.options), for MapToHub.
    options: dict = field(default_factory=dict)
    field_policies: dict = field(default_factory=dict)
    # False for records the webhook inbox read by id: the pull cursor stays where pulls left it.
    move_cursor: bool = True
    # Vendor ids the vendor no longer has (a delete event it confirmed: get_records' missing_ids):
    # each linked record's tombstone is settled by decide_delete.
    deleted_ids: list[str] = field(default_factory=list)
    # Of those, the ones the vendor merged into another record: deleted id -> the survivor's id.
    merged_into: dict = field(default_factory=dict)


@dataclass
class PushItem:
    ref: str
    external_id: str
    record: dict


@dataclass
class PushBatchRequest:
    run_id: str
    config_id: str
    practice_id: str
    integration_type: str
    after_patient_id: str
    limit: int
    entity_type: str = "ENTITY_TYPE_PATIENT"


@dataclass
class PushBatch:
    items: list[PushItem]
    last_patient_id: str
    has_more: bool
    # The config's VendorOptions as JSON (registry IntegrationConfig.options) the batch was mapped
    # with, for UpsertBatchRequest.options.
    options: dict = field(default_factory=dict)
    # Tombstones still linked to the vendor, to delete there (DeleteRecords): refs and vendor ids.
    deletes: list[PushItem] = field(default_factory=list)
    # The config's field-mapping version the items were mapped with (MapToVendorResponse), for the
    # disclosure audit events.
    mapping_version: int = 0
    # Minimum necessary: by ref, the canonical fields a restricted item carries (MapToVendor's
    # disclosed_fields), what its disclosure audit event names. Unrestricted items are absent.
    disclosed: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class PushOutcome:
    ref: str
    external_id: str
    success: bool
    record: dict = field(default_factory=dict)
    error_reason: str = ""
    error_message: str = ""


@dataclass
class PushResults:
    run_id: str
    config_id: str
    practice_id: str
    integration_type: str
    outcomes: list[PushOutcome]
    vendor_requests: int
    entity_type: str = "ENTITY_TYPE_PATIENT"
    # The options the batch was mapped and written with (PushBatch.options).
    options: dict = field(default_factory=dict)
    # The mapping version the batch was mapped with (PushBatch.mapping_version).
    mapping_version: int = 0
    # PushBatch.disclosed.
    disclosed: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class DeleteResults:
    """What the vendor said of the tombstones a push batch deleted there."""

    run_id: str
    config_id: str
    practice_id: str
    integration_type: str
    entity_type: str
    outcomes: list[PushOutcome]
    vendor_requests: int


@dataclass
class FinishRun:
    run_id: str
    error_message: str = ""


@dataclass
class CursorRequest:
    config_id: str
    entity_type: str


def workflow_id(config_id: str, entity_type: str) -> str:
    """One sync workflow at a time per config and entity."""
    return f"sync:{config_id}:{entity_type}"


def patient_ref(patient_id: str, version: int) -> str:
    return f"{patient_id}@{version}"


def parse_ref(ref: str) -> tuple[str, int]:
    patient_id, _, version = ref.partition("@")
    return patient_id, int(version)


def new_run_row(
    run_id: str,
    config: Any,
    entity_type: str,
    direction: str,
    workflow_id: str,
    trace_id: str,
    start_delay: float = 0.0,
) -> dict:
    """A run as it starts (the seed's integration_sync_logs row); ``config`` is the registry's."""
    started = datetime.now(UTC)
    return {
        "run_id": run_id,
        "config_id": config.config_id,
        "practice_id": config.practice_id,
        "integration_type": config.integration_type,
        "entity_type": entity_type,
        "direction": direction,
        "status": RUNNING,
        "records_processed": 0,
        "records_succeeded": 0,
        "records_failed": 0,
        "records_created": 0,
        "records_updated": 0,
        "vendor_requests": 0,
        "error_details": [],
        "error_message": "",
        "trace_id": trace_id,
        "workflow_id": workflow_id,
        "started_at": started,
        "completed_at": None,
        "starts_at": started + timedelta(seconds=start_delay),
    }


# Temporal Schedules: how often each frequency pulls and pushes a config's entities. A real-time
# config also gets one: its webhooks and change events are the fast path, the 15-minute run the
# safety net for a missed delivery.
SCHEDULE_INTERVALS = {
    "SYNC_FREQUENCY_REAL_TIME": timedelta(minutes=15),
    "SYNC_FREQUENCY_HOURLY": timedelta(hours=1),
    "SYNC_FREQUENCY_DAILY": timedelta(days=1),
}


@dataclass
class ScheduledSyncInput:
    practice_id: str
    config_id: str
    entity_type: str
    # A reconciliation's schedule (services/sync/reconciliation.py), not a sync run's.
    reconcile: bool = False


def schedule_id(config_id: str, entity_type: str) -> str:
    return f"sync-schedule:{config_id}:{entity_type}"


# Webhooks: verification (an adapter activity) and the inbox's drain.


@dataclass
class WebhookInput:
    integration_type: str
    headers: dict
    body_b64: str


@dataclass
class InboxRequest:
    config_id: str
    practice_id: str
    integration_type: str
    # Events drained by this workflow id's earlier executions (carried over continue-as-new).
    drained: int = 0
    batch_size: int = 100
    # After this many batches the workflow continues as new, so a busy inbox's history stays far
    # below Temporal's limits (Temporal may suggest it sooner); the inbox itself is in the database.
    batches_per_execution: int = 200


@dataclass
class InboxTake:
    config_id: str
    run_id: str
    limit: int = 100


@dataclass
class InboxBatch:
    run_id: str = ""
    entity_type: str = ""
    event_ids: list[str] = field(default_factory=list)
    # The records to read as they are now (deleted ones are not read).
    external_ids: list[str] = field(default_factory=list)
    cursor: str = ""
    conflict_policy: str = ""
    field_policies: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)


@dataclass
class InboxDone:
    config_id: str
    run_id: str
    event_ids: list[str]


@dataclass
class FanOut:
    """An inbox batch of ``source_config_id`` changed the practice's hub records of the entity."""

    practice_id: str
    source_config_id: str
    entity_type: str


def inbox_workflow_id(config_id: str) -> str:
    return f"inbox:{config_id}"


def review_row(
    page: PullPage,
    kind: Any,
    record_id: str,
    external_id: str,
    sealed: bytes,
    stamp: datetime,
    *,
    field: str = "",
    kind_name: str = "conflict",
    reasons: list[str] | None = None,
) -> dict[str, Any]:
    """A new open review item held by this page's run."""
    return {
        "review_id": str(uuid.uuid4()),
        "practice_id": page.practice_id,
        "config_id": page.config_id,
        "entity_type": kind.entity_type,
        "record_id": record_id,
        "external_id": external_id,
        "field": field,
        "kind": kind_name,
        "reasons": reasons or [],
        "status": "OPEN",
        "values_enc": sealed,
        "run_id": page.run_id,
        "created_at": stamp,
        "updated_at": stamp,
        "resolved_by": "",
        "resolution": "",
    }
