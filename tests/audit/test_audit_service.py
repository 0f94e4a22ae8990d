"""The audit service over real gRPC on 127.0.0.1:0, on each database backend."""

from __future__ import annotations

import asyncio
import uuid
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from google.protobuf import timestamp_pb2
from sqlalchemy import delete, update

from libs.db import create_engine
from libs.errors import Aborted, InvalidArgument
from libs.grpc_client import call, open_channel
from libs.identity import Caller, reset_caller, set_caller
from libs.protos.concord.audit.v1 import audit_pb2 as pb
from libs.protos.concord.audit.v1 import audit_pb2_grpc
from libs.service import open_database
from services.audit import convert, domain, models
from services.audit.domain import GENESIS_HASH, AuditEvent, ChainHead
from services.audit.repository import AuditRepository
from services.audit.server import start

MIGRATIONS = Path(__file__).parents[2] / "services" / "audit" / "migrations"
T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
async def stub(settings):  # noqa: ANN001
    async with serving(settings) as audit:
        yield audit


@asynccontextmanager
async def serving(settings):  # noqa: ANN001
    service = await start(settings)
    channel = open_channel(service.address)
    try:
        yield audit_pb2_grpc.AuditServiceStub(channel)
    finally:
        await channel.close()
        await service.stop()


@asynccontextmanager
async def database(settings):  # noqa: ANN001
    """Direct access to the audit tables, as a tamperer (or an operator) would have it."""
    engine = create_engine("audit", settings)
    try:
        async with engine.begin() as conn:
            yield conn
    finally:
        await engine.dispose()


def stamp(value: datetime) -> timestamp_pb2.Timestamp:
    result = timestamp_pb2.Timestamp()
    result.FromDatetime(value)
    return result


def event(practice_id: str = "p1", action: str = "patient.read", **fields) -> pb.AuditEvent:  # noqa: ANN003
    return pb.AuditEvent(practice_id=practice_id, action=action, **fields)


async def record(stub, *events: pb.AuditEvent) -> list[pb.AuditEvent]:  # noqa: ANN001
    return list((await call(stub.Record, pb.RecordRequest(events=events))).events)


async def verify(stub, practice_id: str = "p1") -> pb.VerifyResponse:  # noqa: ANN001
    return await call(stub.Verify, pb.VerifyRequest(practice_id=practice_id))


async def query_all(stub, **filters) -> list[pb.AuditEvent]:  # noqa: ANN001, ANN003
    events, token = [], ""
    while True:
        page = await call(stub.Query, pb.QueryRequest(page_token=token, **filters))
        events.extend(page.events)
        token = page.next_page_token
        if not token:
            return events


def recomputed_hash(message: pb.AuditEvent) -> str:
    stored = {"event_id": message.event_id, "sequence": message.sequence, "previous_hash": message.previous_hash}
    return domain.event_hash(replace(convert.event_from_proto(message), **stored))


async def test_record_fills_id_time_and_caller_and_returns_the_chained_events(stub) -> None:  # noqa: ANN001
    caller = Caller(user_id="u-7", ip_address="10.0.0.7", user_agent="concord-test/1", request_id="req-1")
    token = set_caller(caller)
    try:
        before = datetime.now(UTC)
        stored = await record(
            stub,
            event(
                resource="Patient/a", patient_id="a", data_accessed=["name.family", "telecom[0].value"], success=True
            ),
            event(action="patient.update", user_id="u-explicit", ip_address="10.9.9.9", timestamp=stamp(T0)),
        )
    finally:
        reset_caller(token)

    first, second = stored
    assert uuid.UUID(first.event_id) and first.event_id != second.event_id
    assert before - timedelta(seconds=1) <= first.timestamp.ToDatetime(tzinfo=UTC) <= datetime.now(UTC)
    assert (first.user_id, first.ip_address, first.user_agent, first.correlation_id) == (
        "u-7",
        "10.0.0.7",
        "concord-test/1",
        "req-1",
    )
    assert list(first.data_accessed) == ["name.family", "telecom[0].value"] and first.success
    assert (second.user_id, second.ip_address, second.user_agent) == ("u-explicit", "10.9.9.9", "concord-test/1")
    assert second.timestamp.ToDatetime(tzinfo=UTC) == T0
    assert [e.sequence for e in stored] == [1, 2]
    assert first.previous_hash == GENESIS_HASH and second.previous_hash == first.hash
    assert [recomputed_hash(e) for e in stored] == [e.hash for e in stored]

    assert [(e.event_id, e.hash) for e in await query_all(stub, practice_id="p1")] == [
        (e.event_id, e.hash) for e in stored
    ]
    result = await verify(stub)
    assert (result.intact, result.events_checked, result.head_hash) == (True, 2, second.hash)


async def test_query_filters_by_patient_user_action_and_time_with_paging(stub) -> None:  # noqa: ANN001
    rows = [
        ("a", "u1", "patient.read"),
        ("b", "u1", "patient.update"),
        ("a", "u2", "patient.read"),
        ("a", "u1", "patient.update"),
        ("c", "u2", "patient.disclose"),
        ("a", "u2", "patient.read"),
        ("b", "u1", "patient.read"),
    ]
    await record(
        stub,
        *[
            event(patient_id=p, user_id=u, action=a, timestamp=stamp(T0 + timedelta(minutes=i)))
            for i, (p, u, a) in enumerate(rows)
        ],
    )
    await record(stub, event(practice_id="p2", patient_id="a", user_id="u1"))

    def sequences(events: list[pb.AuditEvent]) -> list[int]:
        return [e.sequence for e in events]

    assert sequences(await query_all(stub, practice_id="p1", patient_id="a", page_size=2)) == [1, 3, 4, 6]
    assert sequences(await query_all(stub, practice_id="p1", user_id="u2", page_size=1)) == [3, 5, 6]
    assert sequences(await query_all(stub, practice_id="p1", action="patient.read", user_id="u1")) == [1, 7]
    window = {"start_time": stamp(T0 + timedelta(minutes=2)), "end_time": stamp(T0 + timedelta(minutes=5))}
    assert sequences(await query_all(stub, practice_id="p1", page_size=2, **window)) == [3, 4, 5]
    assert sequences(await query_all(stub, practice_id="p1", patient_id="a", **window)) == [3, 4]

    first = await call(stub.Query, pb.QueryRequest(practice_id="p1", page_size=3))
    assert sequences(first.events) == [1, 2, 3] and first.next_page_token
    rest = await call(stub.Query, pb.QueryRequest(practice_id="p1", page_size=3, page_token=first.next_page_token))
    assert sequences(rest.events) == [4, 5, 6] and rest.next_page_token
    default = await call(stub.Query, pb.QueryRequest(practice_id="p1"))
    assert len(default.events) == 7 and not default.next_page_token

    with pytest.raises(InvalidArgument) as error:
        await call(stub.Query, pb.QueryRequest(practice_id="p1", page_token="%%%"))
    assert error.value.field == "page_token"
    with pytest.raises(InvalidArgument) as error:
        await call(stub.Query, pb.QueryRequest(patient_id="a"))
    assert error.value.field == "practice_id"
    with pytest.raises(InvalidArgument) as error:
        await call(stub.Query, pb.QueryRequest(practice_id="p1", start_time=stamp(T0), end_time=stamp(T0)))
    assert error.value.field == "end_time"


async def test_chain_continues_across_requests_and_practices(stub) -> None:  # noqa: ANN001
    first = await record(stub, event("p1"), event("p2"), event("p1"))
    second = await record(stub, event("p2"), event("p1"))
    assert [(e.practice_id, e.sequence) for e in first + second] == [
        ("p1", 1),
        ("p2", 1),
        ("p1", 2),
        ("p2", 2),
        ("p1", 3),
    ]
    p1 = [first[0], first[2], second[1]]
    p2 = [first[1], second[0]]
    for chain in (p1, p2):
        assert chain[0].previous_hash == GENESIS_HASH
        assert [e.previous_hash for e in chain[1:]] == [e.hash for e in chain[:-1]]
    for practice_id, chain in (("p1", p1), ("p2", p2)):
        result = await verify(stub, practice_id)
        assert (result.intact, result.events_checked, result.head_hash) == (True, len(chain), chain[-1].hash)
    empty = await verify(stub, "p3")
    assert (empty.intact, empty.events_checked, empty.head_hash) == (True, 0, "")


async def test_concurrent_records_for_one_practice_never_fork_the_chain(stub) -> None:  # noqa: ANN001
    requests = [[event(patient_id=f"pat-{i}") for _ in range(i % 3 + 1)] for i in range(20)]
    await asyncio.gather(*(record(stub, *events) for events in requests))
    total = sum(len(events) for events in requests)
    assert [e.sequence for e in await query_all(stub, practice_id="p1", page_size=500)] == list(range(1, total + 1))
    result = await verify(stub)
    assert (result.intact, result.events_checked) == (True, total)


async def test_two_servers_on_one_database_share_one_chain(settings) -> None:  # noqa: ANN001
    async with serving(settings) as one, serving(settings) as two:
        await asyncio.gather(*(record(stub, event(), event("p2")) for stub in (one, two) for _ in range(10)))
        assert [e.sequence for e in await query_all(one, practice_id="p1", page_size=500)] == list(range(1, 21))
        for practice_id in ("p1", "p2"):
            result = await verify(two, practice_id)
            assert (result.intact, result.events_checked) == (True, 20)


async def test_a_writer_that_lost_the_head_retries_on_the_unique_key(stub, settings, monkeypatch) -> None:  # noqa: ANN001
    await record(stub, event(), event())
    db = await open_database("audit", settings, MIGRATIONS)
    try:
        repository = AuditRepository(db.sessions)
        real_head = repository._head
        stale = {"left": 1}

        async def head(session, practice_id: str) -> ChainHead:  # noqa: ANN001
            # Another process appended after this head was read.
            if stale["left"]:
                stale["left"] -= 1
                return ChainHead()
            return await real_head(session, practice_id)

        monkeypatch.setattr(repository, "_head", head)
        stored = await repository.append([AuditEvent("p1", "patient.read", event_id="e-late", timestamp=T0)])
        assert stored[0].sequence == 3

        stale["left"] = 100
        with pytest.raises(Aborted) as error:
            await repository.append([AuditEvent("p1", "patient.read", event_id="e-lost", timestamp=T0)])
        assert error.value.reason == "AUDIT_CHAIN_CONFLICT"
    finally:
        await db.engine.dispose()
    result = await verify(stub)
    assert (result.intact, result.events_checked) == (True, 3)


async def _five_events(stub) -> list[pb.AuditEvent]:  # noqa: ANN001
    first = await record(stub, *[event(timestamp=stamp(T0 + timedelta(seconds=i))) for i in range(3)])
    return first + await record(stub, *[event(timestamp=stamp(T0 + timedelta(seconds=i))) for i in range(3, 5)])


async def test_verify_detects_an_edited_row(stub, settings) -> None:  # noqa: ANN001
    events = await _five_events(stub)
    async with database(settings) as conn:
        c = models.events.c
        await conn.execute(
            update(models.events).where(c.event_id == events[2].event_id).values(action="patient.export")
        )
    result = await verify(stub)
    assert (result.intact, result.first_broken_sequence, result.problem) == (False, 3, "EDITED")
    assert (result.events_checked, result.head_hash) == (3, events[1].hash)


async def test_verify_detects_a_deleted_row(stub, settings) -> None:  # noqa: ANN001
    events = await _five_events(stub)
    async with database(settings) as conn:
        await conn.execute(delete(models.events).where(models.events.c.event_id == events[1].event_id))
    result = await verify(stub)
    assert (result.intact, result.first_broken_sequence, result.problem) == (False, 3, "MISSING")
    assert result.head_hash == events[0].hash


async def test_verify_detects_two_rows_swapped(stub, settings) -> None:  # noqa: ANN001
    events = await _five_events(stub)
    c = models.events.c
    async with database(settings) as conn:
        # Through a free number: (practice_id, sequence) is unique.
        for event_id, sequence in ((events[2].event_id, -1), (events[3].event_id, 3), (events[2].event_id, 4)):
            await conn.execute(update(models.events).where(c.event_id == event_id).values(sequence=sequence))
    result = await verify(stub)
    assert (result.intact, result.first_broken_sequence, result.problem) == (False, 3, "REORDERED")


async def test_verify_detects_swapped_timestamps(stub, settings) -> None:  # noqa: ANN001
    events = await _five_events(stub)
    c = models.events.c
    async with database(settings) as conn:
        for mine, theirs in ((events[0], events[1]), (events[1], events[0])):
            when = theirs.timestamp.ToDatetime(tzinfo=UTC)
            await conn.execute(update(models.events).where(c.event_id == mine.event_id).values(timestamp=when))
    result = await verify(stub)
    assert (result.intact, result.first_broken_sequence, result.problem) == (False, 1, "REORDERED")


@pytest.mark.parametrize("value", ["john@example.com", "1990-01-01"])
async def test_a_value_in_data_accessed_is_refused_and_nothing_is_stored(stub, value: str) -> None:  # noqa: ANN001
    good = event(data_accessed=["name.family"])
    with pytest.raises(InvalidArgument) as error:
        await record(stub, good, event(data_accessed=["birthDate", value]))
    assert error.value.field == "events[1].data_accessed[1]"
    assert error.value.reason == "NOT_A_FIELD_NAME"
    assert value not in error.value.message
    assert await query_all(stub, practice_id="p1") == []
    assert (await verify(stub)).events_checked == 0


async def test_missing_required_fields_are_named_and_nothing_is_stored(stub) -> None:  # noqa: ANN001
    with pytest.raises(InvalidArgument) as error:
        await record(stub, event(), event(practice_id=""))
    assert (error.value.field, error.value.reason) == ("events[1].practice_id", "REQUIRED_FIELD_MISSING")
    with pytest.raises(InvalidArgument) as error:
        await record(stub, event(action=""))
    assert error.value.field == "events[0].action"
    with pytest.raises(InvalidArgument) as error:
        await verify(stub, "")
    assert error.value.field == "practice_id"
    assert await query_all(stub, practice_id="p1") == []


async def test_migration_matches_the_models_and_reverts(settings) -> None:  # noqa: ANN001
    from alembic import command
    from alembic.autogenerate import compare_metadata
    from alembic.config import Config
    from alembic.migration import MigrationContext
    from sqlalchemy import inspect

    db = await open_database("audit", settings, MIGRATIONS)

    def check(connection) -> None:  # noqa: ANN001
        context = MigrationContext.configure(connection)
        assert compare_metadata(context, models.metadata) == []
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = connection
        command.downgrade(config, "base")
        assert "audit_events" not in inspect(connection).get_table_names()
        command.upgrade(config, "head")
        assert "audit_events" in inspect(connection).get_table_names()

    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(check)
    finally:
        await db.engine.dispose()
