"""Sync persistence. Methods take the caller's session so a use case is one transaction."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, delete, exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.sync import models
from services.sync.domain import RUNNING, final_status

REC, L, C, R = models.records, models.links, models.cursors, models.sync_logs
CE = models.change_events
RV = models.review_items
PI = models.patient_indexes
IB = models.inbox
RH = models.record_history
DL = models.dead_letters
OPEN, RESOLVED = "OPEN", "RESOLVED"
# Failures that end by themselves (the patient an appointment names is pushed later): their
# records keep being tried by every run, and their letters resolve when they sync. Others keep
# their record out of that vendor's pushes until a replay.
WAITING_CLASSES = ("PATIENT_NOT_LINKED",)


def now() -> datetime:
    return datetime.now(UTC)


def _live_letters(config_id: str, entity_type: str, direction: str, refs: list[str]) -> Any:
    return and_(
        DL.c.config_id == config_id,
        DL.c.entity_type == entity_type,
        DL.c.direction == direction,
        DL.c.record_ref.in_(sorted(set(refs))),
        DL.c.status.in_(("open", "replaying")),
    )


class SyncRepository:
    # Canonical records (one entity type at a time)

    async def insert_records(self, session: AsyncSession, rows: list[dict[str, Any]]) -> None:
        if rows:
            await session.execute(REC.insert(), rows)

    async def get_record(
        self, session: AsyncSession, practice_id: str, entity_type: str, record_id: str, *, lock: bool = False
    ):  # noqa: ANN201
        query = select(REC).where(
            REC.c.practice_id == practice_id, REC.c.entity_type == entity_type, REC.c.record_id == record_id
        )
        if lock:
            query = query.with_for_update()
        return (await session.execute(query)).first()

    async def get_records(
        self, session: AsyncSession, practice_id: str, entity_type: str, record_ids: list[str]
    ) -> dict[str, Any]:
        if not record_ids:
            return {}
        rows = await session.execute(
            select(REC)
            .where(REC.c.practice_id == practice_id, REC.c.entity_type == entity_type, REC.c.record_id.in_(record_ids))
            .with_for_update()
        )
        return {row.record_id: row for row in rows}

    async def update_record(
        self, session: AsyncSession, record_id: str, version: int, resource_enc: bytes, expected_version: int
    ) -> bool:
        result = await session.execute(
            update(REC)
            .where(REC.c.record_id == record_id, REC.c.version == expected_version)
            .values(version=version, resource_enc=resource_enc, updated_at=now())
        )
        return result.rowcount == 1

    async def list_records(
        self, session: AsyncSession, practice_id: str, entity_type: str, after: str, limit: int
    ) -> list[Any]:
        rows = await session.execute(
            select(REC)
            .where(
                REC.c.practice_id == practice_id,
                REC.c.entity_type == entity_type,
                REC.c.record_id > after,
                REC.c.deleted_at.is_(None),
            )
            .order_by(REC.c.record_id)
            .limit(limit)
        )
        return list(rows)

    async def dirty_records(
        self, session: AsyncSession, practice_id: str, entity_type: str, config_id: str, after: str, limit: int
    ) -> list[Any]:
        """Records the vendor has not seen at their current version, with their link if any."""
        join = REC.outerjoin(
            L,
            and_(L.c.record_id == REC.c.record_id, L.c.config_id == config_id, L.c.entity_type == entity_type),
        )
        rows = await session.execute(
            select(REC.c.record_id, REC.c.version, REC.c.resource_enc, REC.c.deleted_at, L.c.external_id)
            .select_from(join)
            .where(
                REC.c.practice_id == practice_id,
                REC.c.entity_type == entity_type,
                REC.c.record_id > after,
                # A tombstone goes only where it is still linked: as a delete.
                (L.c.record_id.is_(None) & REC.c.deleted_at.is_(None)) | (L.c.synced_version < REC.c.version),
                # A record parked as a dead letter for this config waits for its replay.
                ~exists().where(
                    DL.c.config_id == config_id,
                    DL.c.entity_type == entity_type,
                    DL.c.direction == "push",
                    DL.c.record_ref == REC.c.record_id,
                    DL.c.status == "open",
                    DL.c.error_class.not_in(WAITING_CLASSES),
                ),
                # A record with a field waiting in the review queue for this config waits with it.
                ~exists().where(
                    RV.c.config_id == config_id,
                    RV.c.entity_type == entity_type,
                    RV.c.record_id == REC.c.record_id,
                    RV.c.status == OPEN,
                ),
            )
            .order_by(REC.c.record_id)
            .limit(limit)
        )
        return list(rows)

    # Links

    async def links_by_external_id(
        self, session: AsyncSession, config_id: str, entity_type: str, external_ids: list[str]
    ) -> dict:
        if not external_ids:
            return {}
        rows = await session.execute(
            select(L).where(
                L.c.config_id == config_id, L.c.entity_type == entity_type, L.c.external_id.in_(external_ids)
            )
        )
        return {row.external_id: row for row in rows}

    async def links_by_record(
        self, session: AsyncSession, config_id: str, entity_type: str, record_ids: list[str]
    ) -> dict:
        if not record_ids:
            return {}
        rows = await session.execute(
            select(L).where(L.c.config_id == config_id, L.c.entity_type == entity_type, L.c.record_id.in_(record_ids))
        )
        return {row.record_id: row for row in rows}

    async def get_link(self, session: AsyncSession, config_id: str, entity_type: str, record_id: str):  # noqa: ANN201
        query = select(L).where(L.c.config_id == config_id, L.c.entity_type == entity_type, L.c.record_id == record_id)
        return (await session.execute(query)).first()

    async def get_link_by_external_id(self, session: AsyncSession, config_id: str, entity_type: str, external_id: str):  # noqa: ANN201
        query = select(L).where(
            L.c.config_id == config_id, L.c.entity_type == entity_type, L.c.external_id == external_id
        )
        return (await session.execute(query)).first()

    async def links_of(self, session: AsyncSession, entity_type: str, record_id: str) -> list[Any]:
        """The record's links to every config."""
        rows = await session.execute(select(L).where(L.c.entity_type == entity_type, L.c.record_id == record_id))
        return list(rows)

    async def delete_links(
        self, session: AsyncSession, config_id: str, entity_type: str, record_ids: list[str]
    ) -> None:
        if record_ids:
            await session.execute(
                delete(L).where(
                    L.c.config_id == config_id, L.c.entity_type == entity_type, L.c.record_id.in_(record_ids)
                )
            )

    async def tombstone(
        self,
        session: AsyncSession,
        record_id: str,
        version: int,
        expected_version: int,
        merged_into: str | None = None,
    ) -> bool:
        """Marks the record deleted (or merged) at a new version; its blind-index rows go, so no
        identity match finds it again. False when it changed since it was read."""
        stamp = now()
        result = await session.execute(
            update(REC)
            .where(REC.c.record_id == record_id, REC.c.version == expected_version, REC.c.deleted_at.is_(None))
            .values(version=version, updated_at=stamp, deleted_at=stamp, merged_into=merged_into)
        )
        if result.rowcount != 1:
            return False
        await session.execute(delete(PI).where(PI.c.record_id == record_id))
        return True

    async def insert_links(self, session: AsyncSession, rows: list[dict[str, Any]]) -> None:
        if rows:
            await session.execute(L.insert(), rows)

    async def update_link(
        self, session: AsyncSession, config_id: str, entity_type: str, record_id: str, **values: Any
    ) -> None:
        await session.execute(
            update(L)
            .where(L.c.config_id == config_id, L.c.entity_type == entity_type, L.c.record_id == record_id)
            .values(synced_at=now(), **values)
        )

    # Cursors

    async def get_cursor(self, session: AsyncSession, config_id: str, entity_type: str) -> str:
        row = (
            await session.execute(select(C.c.cursor).where(C.c.config_id == config_id, C.c.entity_type == entity_type))
        ).first()
        return row.cursor if row else ""

    async def set_cursor(self, session: AsyncSession, config_id: str, entity_type: str, cursor: str) -> None:
        result = await session.execute(
            update(C)
            .where(C.c.config_id == config_id, C.c.entity_type == entity_type)
            .values(cursor=cursor, updated_at=now())
        )
        if result.rowcount == 0:
            await session.execute(
                C.insert().values(config_id=config_id, entity_type=entity_type, cursor=cursor, updated_at=now())
            )

    # Runs (integration_sync_logs)

    async def insert_run(self, session: AsyncSession, row: dict[str, Any]) -> None:
        await session.execute(R.insert().values(**row))

    async def delete_run(self, session: AsyncSession, run_id: str) -> None:
        await session.execute(R.delete().where(R.c.run_id == run_id))

    async def get_run(self, session: AsyncSession, run_id: str):  # noqa: ANN201
        return (await session.execute(select(R).where(R.c.run_id == run_id))).first()

    async def list_runs(self, session: AsyncSession, practice_id: str, config_id: str, after: str, limit: int) -> list:
        query = select(R).where(R.c.practice_id == practice_id)
        if config_id:
            query = query.where(R.c.config_id == config_id)
        if after:
            started, _, run_id = after.partition("|")
            stamp = datetime.fromisoformat(started)
            query = query.where((R.c.started_at < stamp) | ((R.c.started_at == stamp) & (R.c.run_id < run_id)))
        rows = await session.execute(query.order_by(R.c.started_at.desc(), R.c.run_id.desc()).limit(limit))
        return list(rows)

    async def add_to_run(
        self, session: AsyncSession, run_id: str, counts: dict[str, int], errors: list[dict[str, str]]
    ) -> None:
        values = {name: getattr(R.c, name) + amount for name, amount in counts.items() if amount}
        if errors:
            current = (await session.execute(select(R.c.error_details).where(R.c.run_id == run_id))).scalar_one()
            # Keep the first 200 record errors; the counters keep the totals.
            values["error_details"] = (list(current) + errors)[:200]
        if values:
            await session.execute(update(R).where(R.c.run_id == run_id).values(**values))

    async def finish_run(self, session: AsyncSession, run_id: str, error_message: str) -> None:
        failed = (await session.execute(select(R.c.records_failed).where(R.c.run_id == run_id))).scalar_one()
        status = final_status(failed, error_message)
        await session.execute(
            update(R).where(R.c.run_id == run_id).values(status=status, error_message=error_message, completed_at=now())
        )

    async def running_run(self, session: AsyncSession, workflow_id: str):  # noqa: ANN201
        """The newest run of that workflow still running (one runs at a time per config and entity)."""
        query = (
            select(R)
            .where(R.c.workflow_id == workflow_id, R.c.status == RUNNING)
            .order_by(R.c.started_at.desc())
            .limit(1)
        )
        return (await session.execute(query)).first()

    # Change events (CDC replay ids)

    async def change_event_seen(self, session: AsyncSession, config_id: str, replay_id: str) -> bool:
        query = select(CE.c.replay_id).where(CE.c.config_id == config_id, CE.c.replay_id == replay_id)
        return (await session.execute(query)).first() is not None

    async def insert_change_event(self, session: AsyncSession, row: dict[str, Any]) -> None:
        await session.execute(CE.insert().values(**row))

    async def last_change_event(self, session: AsyncSession, config_id: str):  # noqa: ANN201
        query = select(CE).where(CE.c.config_id == config_id).order_by(CE.c.accepted_at.desc()).limit(1)
        return (await session.execute(query)).first()

    async def delete_change_events(self, session: AsyncSession, config_id: str, before: datetime) -> None:
        await session.execute(delete(CE).where(CE.c.config_id == config_id, CE.c.accepted_at < before))

    # The manual review queue

    async def open_reviews(
        self, session: AsyncSession, config_id: str, entity_type: str, record_ids: list[str]
    ) -> dict[tuple[str, str], Any]:
        """Open items of these records for this config, by (record id, field)."""
        if not record_ids:
            return {}
        rows = await session.execute(
            select(RV).where(
                RV.c.config_id == config_id,
                RV.c.entity_type == entity_type,
                RV.c.record_id.in_(record_ids),
                RV.c.status == OPEN,
            )
        )
        return {(row.record_id, row.field): row for row in rows}

    async def insert_reviews(self, session: AsyncSession, rows: list[dict[str, Any]]) -> None:
        if rows:
            await session.execute(RV.insert(), rows)

    async def update_review(self, session: AsyncSession, review_id: str, **values: Any) -> None:
        await session.execute(update(RV).where(RV.c.review_id == review_id).values(updated_at=now(), **values))

    async def get_review(self, session: AsyncSession, practice_id: str, review_id: str, *, lock: bool = False):  # noqa: ANN201
        query = select(RV).where(RV.c.practice_id == practice_id, RV.c.review_id == review_id)
        if lock:
            query = query.with_for_update()
        return (await session.execute(query)).first()

    async def list_reviews(
        self, session: AsyncSession, practice_id: str, config_id: str, status: str, after: str, limit: int
    ) -> list[Any]:
        """Oldest first; ``after`` is the last item's "<created_at iso>|<review id>"."""
        query = select(RV).where(RV.c.practice_id == practice_id)
        if config_id:
            query = query.where(RV.c.config_id == config_id)
        if status:
            query = query.where(RV.c.status == status)
        if after:
            created, _, review_id = after.partition("|")
            stamp = datetime.fromisoformat(created)
            query = query.where((RV.c.created_at > stamp) | ((RV.c.created_at == stamp) & (RV.c.review_id > review_id)))
        rows = await session.execute(query.order_by(RV.c.created_at, RV.c.review_id).limit(limit))
        return list(rows)

    async def open_identity_reviews(
        self, session: AsyncSession, config_id: str, entity_type: str, external_ids: list[str]
    ) -> dict[str, Any]:
        """Open possible-duplicate items of these vendor records, by external id."""
        if not external_ids:
            return {}
        rows = await session.execute(
            select(RV).where(
                RV.c.config_id == config_id,
                RV.c.entity_type == entity_type,
                RV.c.external_id.in_(external_ids),
                RV.c.kind == "identity",
                RV.c.status == OPEN,
            )
        )
        return {row.external_id: row for row in rows}

    # Blind indexes of patients

    async def insert_indexes(self, session: AsyncSession, rows: list[dict[str, Any]]) -> None:
        """Index rows of records just created: {record_id, kind, practice_id, digest}."""
        if rows:
            await session.execute(PI.insert(), rows)

    async def replace_indexes(self, session: AsyncSession, record_id: str, rows: list[dict[str, Any]]) -> None:
        await session.execute(delete(PI).where(PI.c.record_id == record_id))
        await self.insert_indexes(session, rows)

    async def delete_indexes_of_practice(self, session: AsyncSession, practice_id: str) -> int:
        result = await session.execute(delete(PI).where(PI.c.practice_id == practice_id))
        return result.rowcount or 0

    async def index_candidates(
        self, session: AsyncSession, practice_id: str, digests: list[str]
    ) -> dict[str, dict[str, str]]:
        """Records holding any of these digests (of any kind: a digest is keyed by its kind), each
        with all its digests (kind -> digest)."""
        if not digests:
            return {}
        found = await session.execute(
            select(PI.c.record_id)
            .where(PI.c.practice_id == practice_id, PI.c.digest.in_(sorted(set(digests))))
            .distinct()
        )
        record_ids = [row.record_id for row in found]
        if not record_ids:
            return {}
        rows = await session.execute(select(PI).where(PI.c.record_id.in_(record_ids)))
        out: dict[str, dict[str, str]] = {}
        for row in rows:
            out.setdefault(row.record_id, {})[row.kind] = row.digest
        return out

    # The webhook inbox

    async def add_to_inbox(self, session: AsyncSession, rows: list[dict[str, Any]]) -> int:
        """Inserts the events not there yet (by config and event id); returns how many were new."""
        if not rows:
            return 0
        keys = {(r["config_id"], r["event_id"]) for r in rows}
        present = await session.execute(
            select(IB.c.config_id, IB.c.event_id).where(
                IB.c.config_id.in_({c for c, _ in keys}), IB.c.event_id.in_({e for _, e in keys})
            )
        )
        seen = {(row.config_id, row.event_id) for row in present}
        fresh = list(
            {(r["config_id"], r["event_id"]): r for r in rows if (r["config_id"], r["event_id"]) not in seen}.values()
        )
        if fresh:
            await session.execute(IB.insert(), fresh)
        return len(fresh)

    async def pending_inbox(self, session: AsyncSession, config_id: str, limit: int) -> list[Any]:
        """The oldest unprocessed events of the config's oldest pending entity."""
        first = (
            await session.execute(
                select(IB.c.entity_type)
                .where(IB.c.config_id == config_id, IB.c.processed_at.is_(None))
                .order_by(IB.c.received_at)
                .limit(1)
            )
        ).first()
        if first is None:
            return []
        rows = await session.execute(
            select(IB)
            .where(IB.c.config_id == config_id, IB.c.processed_at.is_(None), IB.c.entity_type == first.entity_type)
            .order_by(IB.c.received_at, IB.c.event_id)
            .limit(limit)
        )
        return list(rows)

    async def mark_processed(self, session: AsyncSession, config_id: str, event_ids: list[str], run_id: str) -> None:
        if event_ids:
            await session.execute(
                update(IB)
                .where(IB.c.config_id == config_id, IB.c.event_id.in_(event_ids))
                .values(processed_at=now(), run_id=run_id)
            )

    # Per-record history

    async def add_history(self, session: AsyncSession, rows: list[dict[str, Any]]) -> None:
        if rows:
            await session.execute(RH.insert(), rows)

    async def record_history(
        self, session: AsyncSession, practice_id: str, entity_type: str, record_id: str, limit: int
    ) -> list[Any]:
        """Newest first."""
        rows = await session.execute(
            select(RH)
            .where(RH.c.practice_id == practice_id, RH.c.entity_type == entity_type, RH.c.record_id == record_id)
            .order_by(RH.c.version.desc(), RH.c.changed_at.desc())
            .limit(limit)
        )
        return list(rows)

    # Dead letters

    async def live_letters(
        self, session: AsyncSession, config_id: str, entity_type: str, direction: str, refs: list[str]
    ) -> dict[str, Any]:
        """Open or replaying letters of these records, by record ref."""
        if not refs:
            return {}
        rows = await session.execute(select(DL).where(_live_letters(config_id, entity_type, direction, refs)))
        return {row.record_ref: row for row in rows}

    async def resolve_letters(
        self, session: AsyncSession, config_id: str, entity_type: str, direction: str, refs: list[str]
    ) -> None:
        """The open or replaying letters of these records are resolved (one statement)."""
        if refs:
            await session.execute(
                update(DL)
                .where(_live_letters(config_id, entity_type, direction, refs))
                .values(status="resolved", resolved_at=now())
            )

    async def insert_letters(self, session: AsyncSession, rows: list[dict[str, Any]]) -> None:
        if rows:
            await session.execute(DL.insert(), rows)

    async def update_letter(self, session: AsyncSession, letter_id: str, **values: Any) -> None:
        await session.execute(update(DL).where(DL.c.letter_id == letter_id).values(**values))

    async def list_letters(
        self,
        session: AsyncSession,
        practice_id: str,
        *,
        config_id: str = "",
        status: str = "",
        error_class: str = "",
        letter_ids: list[str] | None = None,
        after: str = "",
        limit: int = 100,
    ) -> list[Any]:
        query = select(DL).where(DL.c.practice_id == practice_id)
        if config_id:
            query = query.where(DL.c.config_id == config_id)
        if status:
            query = query.where(DL.c.status == status)
        if error_class:
            query = query.where(DL.c.error_class == error_class)
        if letter_ids is not None:
            query = query.where(DL.c.letter_id.in_(letter_ids))
        if after:
            query = query.where(DL.c.letter_id > after)
        rows = await session.execute(query.order_by(DL.c.letter_id).limit(limit))
        return list(rows)
