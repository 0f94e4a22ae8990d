"""Audit use cases: record, query, verify."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import uuid
from collections import deque
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
# Group commit: the most events of waiting requests one chain append takes (a single request may
# bring as many on its own).
GROUP_COMMIT_MAX_EVENTS = domain.MAX_EVENTS_PER_RECORD

# A request waiting for its practice's next append: its events, and the future its caller awaits.
_Waiting = tuple[list[AuditEvent], "asyncio.Future[list[AuditEvent]]"]


class AuditService:
    def __init__(self, repository: AuditRepository) -> None:
        self._repo = repository
        # One lock per practice chain, dropped once no request holds or awaits it.
        self._locks: WeakValueDictionary[str, asyncio.Lock] = WeakValueDictionary()
        # Group commit (_append_grouped): the practices whose chain a request is appending to
        # itself; per practice, the requests waiting for the next append and the task appending
        # them, both present only while some request waits.
        self._appending: set[str] = set()
        self._waiting: dict[str, deque[_Waiting]] = {}
        self._committers: dict[str, asyncio.Task[None]] = {}

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
        if len(practices) == 1:  # every read's event, every page of a sync run
            stored = await self._append_grouped(practices[0], prepared)
        else:
            async with AsyncExitStack() as stack:
                for practice_id in practices:  # sorted, so overlapping requests cannot deadlock
                    await stack.enter_async_context(self._lock(practice_id))
                stored = await self._repo.append(prepared)
        log.info("recorded %d audit events for %d practices", len(stored), len(practices))
        return stored

    async def _append_grouped(self, practice_id: str, events: list[AuditEvent]) -> list[AuditEvent]:
        """Group commit. A practice's chain takes one append at a time, so requests arriving
        while one runs wait, and the next append takes all of them: one transaction (one head read,
        one insert, one commit) for what would have been as many. Each caller gets its own events
        back only once that transaction has committed, and an append that fails fails every
        request in it: nothing is acknowledged before it is durable, and a refused audit still
        refuses the caller's read.

        A request finding nothing under way appends on its own, in its own task: handing it to
        another would cost it two turns of the event loop, which under load (every read waits
        for its audit event) more than tripled the median read."""
        if practice_id not in self._appending and practice_id not in self._committers:
            self._appending.add(practice_id)
            try:
                async with self._lock(practice_id):
                    return await self._repo.append(events)
            finally:
                self._appending.discard(practice_id)
        waiting = (events, asyncio.get_running_loop().create_future())
        self._waiting.setdefault(practice_id, deque()).append(waiting)
        if practice_id not in self._committers:
            # A context of its own: the append serves several requests, so it joins none of their
            # traces and runs as no request's caller.
            self._committers[practice_id] = asyncio.create_task(
                self._commit_waiting(practice_id), context=contextvars.Context()
            )
        return await waiting[1]

    async def _commit_waiting(self, practice_id: str) -> None:
        """Appends the practice's waiting requests, GROUP_COMMIT_MAX_EVENTS at most at a time,
        until none waits. Each batch is taken once the chain is free (the request appending on
        its own is done), so it holds every request that arrived meanwhile."""
        queue = self._waiting[practice_id]
        batch: list[_Waiting] = []
        try:
            while queue:
                async with self._lock(practice_id):  # shared with requests appending on their own
                    batch, size = [], 0
                    while queue and (not batch or size + len(queue[0][0]) <= GROUP_COMMIT_MAX_EVENTS):
                        events, future = queue.popleft()
                        if not future.done():  # else its caller gave up before the append: nothing of it is written
                            batch.append((events, future))
                            size += len(events)
                    if not batch:
                        continue
                    try:
                        stored = await self._repo.append([event for events, _ in batch for event in events])
                    except Exception as error:  # noqa: BLE001 (handed to each caller, which raises it)
                        for _, future in batch:
                            if not future.done():
                                future.set_exception(error)
                        continue
                at = 0
                for events, future in batch:
                    if not future.done():
                        future.set_result(stored[at : at + len(events)])
                    at += len(events)
        finally:
            # Cancelled (the service is stopping): whoever still waits is answered, not left hanging.
            for _, future in [*batch, *queue]:
                future.cancel()
            del self._waiting[practice_id]
            del self._committers[practice_id]

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
