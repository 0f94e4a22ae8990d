"""Audit persistence (SQLAlchemy 2 async): append-only, no UPDATE or DELETE is ever issued."""

from __future__ import annotations

import hashlib
import logging

from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from libs.errors import Aborted
from services.audit import domain, models
from services.audit.domain import AuditEvent, ChainHead, EventFilter

log = logging.getLogger("concord.audit")

APPEND_ATTEMPTS = 5


class AuditRepository:
    def __init__(self, sessions: async_sessionmaker) -> None:
        self._sessions = sessions

    async def append(self, events: list[AuditEvent]) -> list[AuditEvent]:
        """Chains and stores events in one transaction, retrying when another writer took a head."""
        practices = sorted({event.practice_id for event in events}, key=_lock_key)
        for attempt in range(1, APPEND_ATTEMPTS + 1):
            try:
                async with self._sessions() as session, session.begin():
                    await self._lock_chains(session, practices)
                    heads = {practice_id: await self._head(session, practice_id) for practice_id in practices}
                    linked, _ = domain.link(events, heads)
                    await session.execute(models.events.insert(), [_row(event) for event in linked])
                return linked
            except IntegrityError:
                log.warning("audit chain head taken by another writer (attempt %d of %d)", attempt, APPEND_ATTEMPTS)
        raise Aborted("the audit chain is busy; retry the request", reason="AUDIT_CHAIN_CONFLICT")

    async def _lock_chains(self, session: AsyncSession, practices: list[str]) -> None:
        """Serialises appends to the same chains across processes, so the unique key rarely has to."""
        if session.get_bind().dialect.name == "postgresql":
            for practice_id in practices:  # in key order, so two writers never wait on each other in a cycle
                await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _lock_key(practice_id)})
        else:
            # SQLite has one writer anyway: take its write lock before reading the heads.
            await session.execute(text("BEGIN IMMEDIATE"))

    async def _head(self, session: AsyncSession, practice_id: str) -> ChainHead:
        c = models.events.c
        row = (
            await session.execute(
                select(c.sequence, c.hash).where(c.practice_id == practice_id).order_by(c.sequence.desc()).limit(1)
            )
        ).first()
        return ChainHead(row.sequence, row.hash) if row else ChainHead()

    async def query(self, where: EventFilter, after_sequence: int, limit: int) -> list[AuditEvent]:
        c = models.events.c
        conditions = [c.practice_id == where.practice_id, c.sequence > after_sequence]
        if where.patient_id:
            conditions.append(c.patient_id == where.patient_id)
        if where.user_id:
            conditions.append(c.user_id == where.user_id)
        if where.action.startswith("*."):
            conditions.append(c.action.endswith(where.action[1:], autoescape=True))
        elif where.action.endswith(".*"):
            conditions.append(c.action.startswith(where.action[:-1], autoescape=True))
        elif where.action:
            conditions.append(c.action == where.action)
        if where.start_time:
            conditions.append(c.timestamp >= domain.utc(where.start_time))
        if where.end_time:
            conditions.append(c.timestamp < domain.utc(where.end_time))
        async with self._sessions() as session:
            rows = await session.execute(select(models.events).where(*conditions).order_by(c.sequence).limit(limit))
            return [_event(row._mapping) for row in rows]

    async def chain(self, practice_id: str, after_sequence: int, limit: int) -> list[AuditEvent]:
        """One batch of a practice's chain in sequence order."""
        return await self.query(EventFilter(practice_id), after_sequence, limit)


def _lock_key(practice_id: str) -> int:
    """A signed 64-bit advisory lock key for the practice's chain."""
    return int.from_bytes(hashlib.sha256(f"audit:{practice_id}".encode()).digest()[:8], "big", signed=True)


def _row(event: AuditEvent) -> dict:
    row = dict(vars(event))
    row["data_accessed"] = list(event.data_accessed)
    return row


def _event(row) -> AuditEvent:  # noqa: ANN001
    values = dict(row)
    values["timestamp"] = domain.utc(values["timestamp"])
    values["data_accessed"] = tuple(values["data_accessed"])
    return AuditEvent(**values)
