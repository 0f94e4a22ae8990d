"""Sync persistence. Methods take the caller's session so a use case is one transaction."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.sync import models
from services.sync.domain import final_status

P, L, C, R = models.patients, models.patient_links, models.cursors, models.sync_logs


def now() -> datetime:
    return datetime.now(UTC)


class SyncRepository:
    # Patients

    async def insert_patients(self, session: AsyncSession, rows: list[dict[str, Any]]) -> None:
        if rows:
            await session.execute(P.insert(), rows)

    async def get_patient(self, session: AsyncSession, practice_id: str, patient_id: str, *, lock: bool = False):  # noqa: ANN201
        query = select(P).where(P.c.practice_id == practice_id, P.c.patient_id == patient_id)
        if lock:
            query = query.with_for_update()
        return (await session.execute(query)).first()

    async def get_patients(self, session: AsyncSession, practice_id: str, patient_ids: list[str]) -> dict[str, Any]:
        if not patient_ids:
            return {}
        rows = await session.execute(
            select(P).where(P.c.practice_id == practice_id, P.c.patient_id.in_(patient_ids)).with_for_update()
        )
        return {row.patient_id: row for row in rows}

    async def update_patient(
        self, session: AsyncSession, patient_id: str, version: int, resource_enc: bytes, expected_version: int
    ) -> bool:
        result = await session.execute(
            update(P)
            .where(P.c.patient_id == patient_id, P.c.version == expected_version)
            .values(version=version, resource_enc=resource_enc, updated_at=now())
        )
        return result.rowcount == 1

    async def list_patients(self, session: AsyncSession, practice_id: str, after: str, limit: int) -> list[Any]:
        rows = await session.execute(
            select(P)
            .where(P.c.practice_id == practice_id, P.c.patient_id > after)
            .order_by(P.c.patient_id)
            .limit(limit)
        )
        return list(rows)

    async def dirty_patients(
        self, session: AsyncSession, practice_id: str, config_id: str, after: str, limit: int
    ) -> list[Any]:
        """Patients the vendor has not seen at their current version, with their link if any."""
        join = P.outerjoin(L, and_(L.c.patient_id == P.c.patient_id, L.c.config_id == config_id))
        rows = await session.execute(
            select(P.c.patient_id, P.c.version, P.c.resource_enc, L.c.external_id)
            .select_from(join)
            .where(
                P.c.practice_id == practice_id,
                P.c.patient_id > after,
                (L.c.patient_id.is_(None)) | (L.c.synced_version < P.c.version),
            )
            .order_by(P.c.patient_id)
            .limit(limit)
        )
        return list(rows)

    # Links

    async def links_by_external_id(self, session: AsyncSession, config_id: str, external_ids: list[str]) -> dict:
        if not external_ids:
            return {}
        rows = await session.execute(select(L).where(L.c.config_id == config_id, L.c.external_id.in_(external_ids)))
        return {row.external_id: row for row in rows}

    async def links_by_patient(self, session: AsyncSession, config_id: str, patient_ids: list[str]) -> dict:
        if not patient_ids:
            return {}
        rows = await session.execute(select(L).where(L.c.config_id == config_id, L.c.patient_id.in_(patient_ids)))
        return {row.patient_id: row for row in rows}

    async def get_link(self, session: AsyncSession, config_id: str, patient_id: str):  # noqa: ANN201
        return (
            await session.execute(select(L).where(L.c.config_id == config_id, L.c.patient_id == patient_id))
        ).first()

    async def insert_links(self, session: AsyncSession, rows: list[dict[str, Any]]) -> None:
        if rows:
            await session.execute(L.insert(), rows)

    async def update_link(self, session: AsyncSession, config_id: str, patient_id: str, **values: Any) -> None:
        await session.execute(
            update(L).where(L.c.config_id == config_id, L.c.patient_id == patient_id).values(synced_at=now(), **values)
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

    async def count_patients(self, session: AsyncSession, practice_id: str) -> int:
        return (await session.execute(select(func.count()).where(P.c.practice_id == practice_id))).scalar_one()
