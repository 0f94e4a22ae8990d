"""Change Data Capture bookkeeping: every change event the gateway's receiver accepts is recorded
by its replay id, per config, in ``sync_change_events``.

- A redelivered event (the subscriber's retry, a duplicate, a replay from an older position) is
  known by its replay id and starts nothing (DUPLICATE).
- The newest accepted replay id is where a resubscription resumes (Pub/Sub's ReplayPreset.CUSTOM),
  so events published while Concord or its subscriber was down arrive after it.
- An event is recorded only once its pull is started or known to be pending: one answered
  SYNC_ALREADY_RUNNING is sent again by the subscriber and must not look like a duplicate then.
- A pull already scheduled (a start delay) that begins reading at least ``settle`` after the
  change committed will see it: the event is recorded against that pull (PULL_PENDING) instead of
  refused, so a burst of replayed events costs one pull.
- After a gap the vendor can no longer replay (its retention passed), each entity is pulled from
  no cursor and the recorded position is forgotten, so the next subscription starts at LATEST.

Rows older than KEEP are dropped as new ones arrive: Salesforce replays 72 hours, so an older
replay id is never redelivered. Only ids, entity types and times are stored (no field values).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker

from libs.errors import FailedPrecondition, InvalidArgument
from libs.protos.concord.adapter.v1 import adapter_pb2
from services.sync.domain import PULL, workflow_id
from services.sync.entities import kind_of
from services.sync.repository import SyncRepository, now

KEEP = timedelta(days=4)
MAX_REPLAY_ID = 128

RECORDED, DUPLICATE, PULL_STARTED, PULL_PENDING = "RECORDED", "DUPLICATE", "PULL_STARTED", "PULL_PENDING"
QUEUED = "QUEUED"
# Record ids one delete event may name (Salesforce batches a mass delete's ids in one event).
MAX_DELETED_IDS = 2000


def _event_id(replay_id: str, record_id: str) -> str:
    """One inbox event per record of a delete event (its replay id may be as long as the column)."""
    return "cdc:" + hashlib.sha256(f"{replay_id}\n{record_id}".encode()).hexdigest()


def _aware(moment: datetime) -> datetime:
    """SQLite hands timezone-aware columns back naive; they were written in UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class ChangeEvents:
    """Works for the sync service (``service``): its start_sync starts the pulls, its owned_config
    checks the config belongs to the caller's practice."""

    def __init__(self, sessions: async_sessionmaker, repository: SyncRepository, service: Any) -> None:
        self._sessions = sessions
        self._repo = repository
        self._service = service

    def _start_pull(self, practice_id: str, config_id: str, entity_type: str, delay: float, from_start: bool) -> Any:
        # A change event is real-time work; a resync's full pull is a backfill (start_sync decides).
        return self._service.start_sync(
            practice_id, config_id, entity_type, PULL, delay, from_start, lane=adapter_pb2.LANE_REALTIME
        )

    async def accept(
        self,
        practice_id: str,
        config_id: str,
        replay_id: str,
        entity_type: str,
        commit_time: datetime | None,
        settle: float,
        deleted_ids: list[str] | None = None,
    ) -> tuple[str, Any]:
        """(outcome, the run started or pending, or None). A delete event's records go to the
        config's inbox, read back there and settled as tombstones: a pull cannot see a delete."""
        if not replay_id or len(replay_id) > MAX_REPLAY_ID:
            raise InvalidArgument(
                f"replay_id must be 1-{MAX_REPLAY_ID} characters", field="replay_id", reason="INVALID_REPLAY_ID"
            )
        deleted_ids = deleted_ids or []
        if len(deleted_ids) > MAX_DELETED_IDS or not all(0 < len(i) <= 128 for i in deleted_ids):
            raise InvalidArgument(
                f"deleted_ids: at most {MAX_DELETED_IDS} ids of 1-128 characters",
                field="deleted_ids",
                reason="INVALID_DELETED_IDS",
            )
        config = await self._service.owned_config(practice_id, config_id)
        async with self._sessions() as session:
            if await self._repo.change_event_seen(session, config_id, replay_id):
                return DUPLICATE, None
        outcome, run = RECORDED, None
        if entity_type and deleted_ids:
            events = [(_event_id(replay_id, i), entity_type, i, True, "DELETE") for i in deleted_ids]
            await self._service.to_inbox(config, events)
            outcome = QUEUED
        elif entity_type:
            outcome, run = await self._pull(practice_id, config_id, entity_type, commit_time or now(), settle)
        if not await self._record(config_id, replay_id, entity_type):
            return DUPLICATE, None  # a concurrent delivery of the same event recorded it first
        return outcome, run

    async def _pull(
        self, practice_id: str, config_id: str, entity_type: str, committed: datetime, settle: float
    ) -> tuple[str, Any]:
        try:
            return PULL_STARTED, await self._start_pull(practice_id, config_id, entity_type, settle, False)
        except FailedPrecondition as error:
            if error.reason != "SYNC_ALREADY_RUNNING":
                raise
            async with self._sessions() as session:
                pending = await self._repo.running_run(session, workflow_id(config_id, entity_type))
            starts = _aware(pending.starts_at) if pending is not None and pending.starts_at else None
            if starts is not None and starts >= committed + timedelta(seconds=settle):
                return PULL_PENDING, pending
            raise  # the running pull may have read before the change: the subscriber sends it again

    async def _record(self, config_id: str, replay_id: str, entity_type: str) -> bool:
        stamp = now()
        try:
            async with self._sessions() as session, session.begin():
                await self._repo.insert_change_event(
                    session,
                    {
                        "config_id": config_id,
                        "replay_id": replay_id,
                        "entity_type": entity_type or "ENTITY_TYPE_UNSPECIFIED",
                        "accepted_at": stamp,
                    },
                )
                await self._repo.delete_change_events(session, config_id, stamp - KEEP)
        except IntegrityError:
            return False
        return True

    async def position(self, practice_id: str, config_id: str) -> tuple[str, datetime | None]:
        await self._service.owned_config(practice_id, config_id)
        async with self._sessions() as session:
            last = await self._repo.last_change_event(session, config_id)
        return (last.replay_id, _aware(last.accepted_at)) if last is not None else ("", None)

    async def resync(self, practice_id: str, config_id: str, entity_types: list[str], settle: float) -> list[Any]:
        """Full pulls of every entity (none if one of them is running), starting ``settle`` from
        now, then the position forgotten."""
        await self._service.owned_config(practice_id, config_id)
        wanted = list(dict.fromkeys(kind_of(e).entity_type for e in entity_types))
        if not wanted:
            raise InvalidArgument("name the entities to pull", field="entity_types", reason="REQUIRED_FIELD_MISSING")
        began = now()
        async with self._sessions() as session:
            for entity_type in wanted:
                if await self._repo.running_run(session, workflow_id(config_id, entity_type)) is not None:
                    raise FailedPrecondition("a sync of this config is already running", reason="SYNC_ALREADY_RUNNING")
        runs = [await self._start_pull(practice_id, config_id, e, settle, True) for e in wanted]
        async with self._sessions() as session, session.begin():
            await self._repo.delete_change_events(session, config_id, began)
        return runs
