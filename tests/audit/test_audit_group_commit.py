"""Group commit (AuditService._append_grouped): requests for one practice that arrive while its
chain is being appended to are appended together in the next transaction, and each caller is
answered with its own events only once that transaction has committed; a failed append fails
every request in it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from libs.errors import Aborted
from libs.service import open_database
from services.audit import domain
from services.audit.domain import AuditEvent
from services.audit.repository import AuditRepository
from services.audit.service import AuditService

MIGRATIONS = Path(__file__).parents[2] / "services" / "audit" / "migrations"


class Gated(AuditRepository):
    """The real repository, whose appends wait for ``gate`` and some of which fail; it counts
    the events each append brings."""

    def __init__(self, sessions) -> None:  # noqa: ANN001
        super().__init__(sessions)
        self.gate = asyncio.Event()
        self.appends: list[int] = []
        self.failing: set[int] = set()  # which appends fail (1: the first)

    async def append(self, events: list[AuditEvent]) -> list[AuditEvent]:
        self.appends.append(len(events))
        await self.gate.wait()
        if len(self.appends) in self.failing:
            raise Aborted("the audit chain is busy; retry the request", reason="AUDIT_CHAIN_CONFLICT")
        return await super().append(events)


@pytest.fixture
async def repository(settings) -> AsyncIterator[Gated]:  # noqa: ANN001
    db = await open_database("audit", settings, MIGRATIONS)
    try:
        yield Gated(db.sessions)
    finally:
        await db.engine.dispose()


def _events(patient: str, count: int = 1, practice_id: str = "p1") -> list[AuditEvent]:
    return [AuditEvent(practice_id, "patient.read", patient_id=patient, resource=f"Patient/{patient}")] * count


async def _until(condition) -> None:  # noqa: ANN001
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("never happened")


async def test_requests_waiting_for_the_chain_are_appended_in_one_transaction(repository: Gated) -> None:
    service = AuditService(repository)
    first = asyncio.create_task(service.record(_events("a")))
    await _until(lambda: repository.appends)
    assert not service._committers  # noqa: SLF001 (alone, it appends in its own task)
    # While the first append runs, three more requests arrive.
    waiting = [
        asyncio.create_task(service.record(_events(patient, n))) for patient, n in (("b", 2), ("c", 1), ("d", 3))
    ]
    await _until(lambda: len(service._waiting.get("p1", ())) == 3)  # noqa: SLF001
    await asyncio.sleep(0.05)
    # Nothing is acknowledged before its transaction has committed.
    assert not first.done() and not any(task.done() for task in waiting)

    repository.gate.set()
    answers = [await first] + [await task for task in waiting]
    assert repository.appends == [1, 6]  # the three waiting requests in one append
    # Each caller gets its own events, in order, chained one after the other.
    assert [[e.patient_id for e in answer] for answer in answers] == [["a"], ["b", "b"], ["c"], ["d", "d", "d"]]
    assert [e.sequence for answer in answers for e in answer] == list(range(1, 8))
    assert domain.verify(await repository.chain("p1", 0, 100)).intact
    assert not service._waiting and not service._committers  # noqa: SLF001


async def test_a_failed_append_fails_every_request_in_it_and_stores_none_of_them(repository: Gated) -> None:
    service = AuditService(repository)
    repository.failing = {1, 4}
    first = asyncio.create_task(service.record(_events("a")))
    await _until(lambda: repository.appends)
    waiting = [asyncio.create_task(service.record(_events(patient))) for patient in ("b", "c")]
    await _until(lambda: len(service._waiting.get("p1", ())) == 2)  # noqa: SLF001
    repository.gate.set()
    with pytest.raises(Aborted):
        await first
    # The next append (b and c together) is not the failed one: both are stored.
    assert [[e.sequence for e in await task] for task in waiting] == [[1], [2]]

    repository.gate.clear()
    first = asyncio.create_task(service.record(_events("d")))
    await _until(lambda: len(repository.appends) == 3)
    waiting = [asyncio.create_task(service.record(_events(patient))) for patient in ("e", "f")]
    await _until(lambda: len(service._waiting.get("p1", ())) == 2)  # noqa: SLF001
    repository.gate.set()
    assert [e.sequence for e in await first] == [3]
    # This time the append of e and f together fails: each of them is refused.
    for task in waiting:
        with pytest.raises(Aborted):
            await task
    assert repository.appends == [1, 2, 1, 2]
    stored = await repository.chain("p1", 0, 100)
    assert [e.patient_id for e in stored] == ["b", "c", "d"] and domain.verify(stored).intact


async def test_a_request_given_up_before_its_append_is_not_written(repository: Gated) -> None:
    service = AuditService(repository)
    first = asyncio.create_task(service.record(_events("a")))
    await _until(lambda: repository.appends)
    gone, kept = (asyncio.create_task(service.record(_events(patient))) for patient in ("b", "c"))
    await _until(lambda: len(service._waiting.get("p1", ())) == 2)  # noqa: SLF001
    gone.cancel()
    repository.gate.set()
    await first
    assert [e.patient_id for e in await kept] == ["c"]
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert [e.patient_id for e in await repository.chain("p1", 0, 100)] == ["a", "c"]


async def test_practices_are_committed_apart_and_requests_naming_several_still_go_through(repository: Gated) -> None:
    repository.gate.set()
    service = AuditService(repository)
    answers = await asyncio.gather(
        *(service.record(_events(f"x{i}", practice_id=f"p{i % 2}")) for i in range(6)),
        service.record(_events("both", practice_id="p0") + _events("both", practice_id="p1")),
    )
    assert all(len(answer) == 1 for answer in answers[:6]) and len(answers[6]) == 2
    for practice_id in ("p0", "p1"):
        chain = await repository.chain(practice_id, 0, 100)
        assert len(chain) == 4 and domain.verify(chain).intact
