"""Audit use cases: record, query, verify."""

from __future__ import annotations

import asyncio
import logging
import uuid
from contextlib import AsyncExitStack
from dataclasses import replace
from datetime import UTC, datetime
from weakref import WeakValueDictionary

from libs.errors import InvalidArgument
from libs.identity import current_caller
from services.audit import domain
from services.audit.domain import AuditEvent, EventFilter, Verification
from services.audit.repository import AuditRepository

log = logging.getLogger("concord.audit")

VERIFY_BATCH = 1000


class AuditService:
    def __init__(self, repository: AuditRepository) -> None:
        self._repo = repository
        # One lock per practice chain, dropped once no request holds or awaits it.
        self._locks: WeakValueDictionary[str, asyncio.Lock] = WeakValueDictionary()

    async def record(self, events: list[AuditEvent]) -> list[AuditEvent]:
        if len(events) > domain.MAX_EVENTS_PER_RECORD:
            raise InvalidArgument(
                f"at most {domain.MAX_EVENTS_PER_RECORD} events per request", field="events", reason="TOO_MANY_EVENTS"
            )
        caller = current_caller()
        now = datetime.now(UTC)
        prepared = []
        for index, event in enumerate(events):
            event = replace(
                event,
                event_id=str(uuid.uuid4()),
                timestamp=domain.utc(event.timestamp) if event.timestamp else now,
                user_id=event.user_id or caller.user_id,
                ip_address=event.ip_address or caller.ip_address,
                user_agent=event.user_agent or caller.user_agent,
                correlation_id=event.correlation_id or caller.request_id,
            )
            domain.validate_event(event, index)
            prepared.append(event)
        if not prepared:
            return []
        practices = sorted({event.practice_id for event in prepared})
        async with AsyncExitStack() as stack:
            for practice_id in practices:  # sorted, so overlapping requests cannot deadlock
                await stack.enter_async_context(self._lock(practice_id))
            stored = await self._repo.append(prepared)
        log.info("recorded %d audit events for %d practices", len(stored), len(practices))
        return stored

    def _lock(self, practice_id: str) -> asyncio.Lock:
        lock = self._locks.get(practice_id)
        if lock is None:
            lock = self._locks[practice_id] = asyncio.Lock()
        return lock

    async def query(self, where: EventFilter, after_sequence: int, limit: int) -> list[AuditEvent]:
        if where.start_time and where.end_time and where.end_time <= where.start_time:
            raise InvalidArgument("end_time must be after start_time", field="end_time", reason="INVALID_TIME_RANGE")
        domain.validate_action_filter(where.action)
        return await self._repo.query(where, after_sequence, limit)

    async def list_disclosures(self, where: EventFilter, after_sequence: int, limit: int) -> list[AuditEvent]:
        """The patient's disclosures (every kind's ``.disclose`` events naming it), in chain order."""
        if not where.patient_id:
            raise InvalidArgument("patient_id is required", field="patient_id", reason="REQUIRED_FIELD_MISSING")
        return await self.query(replace(where, action="*." + domain.DISCLOSE_VERB), after_sequence, limit)

    async def verify(self, practice_id: str) -> Verification:
        verifier = domain.ChainVerifier()
        after = 0
        while True:
            batch = await self._repo.chain(practice_id, after, VERIFY_BATCH)
            if not verifier.feed(batch) or len(batch) < VERIFY_BATCH:
                break
            after = batch[-1].sequence
        result = verifier.finish()
        if not result.intact:
            log.warning(
                "audit chain of practice %s broken at sequence %d (%s)",
                practice_id,
                result.first_broken_sequence,
                result.problem,
            )
        return result
