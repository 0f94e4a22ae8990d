"""The pure audit rules: canonical hashing, chaining and the chain check."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from libs.errors import InvalidArgument
from services.audit import domain
from services.audit.domain import GENESIS_HASH, AuditEvent, ChainHead, ChainVerifier

T0 = datetime(2024, 5, 1, 9, 30, tzinfo=UTC)

names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-", min_size=0, max_size=12)
field_names = st.from_regex(r"[A-Za-z][A-Za-z0-9_.\[\]]{0,20}", fullmatch=True)
event_strategy = st.builds(
    AuditEvent,
    practice_id=st.just("p1"),
    action=st.sampled_from(["patient.read", "patient.update", "sync.pull"]),
    event_id=st.uuids().map(str),
    timestamp=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)),
    user_id=names,
    resource=names,
    patient_id=names,
    integration_type=names,
    data_accessed=st.lists(field_names, max_size=4).map(tuple),
    success=st.booleans(),
    ip_address=names,
    user_agent=st.text(max_size=20),
    correlation_id=names,
)
# Every field a tamperer could change in place without moving the row or its timestamp.
CONTENT_FIELDS = [
    "event_id",
    "user_id",
    "action",
    "resource",
    "patient_id",
    "integration_type",
    "data_accessed",
    "success",
    "ip_address",
    "user_agent",
    "correlation_id",
    "previous_hash",
    "hash",
]


def chain_of(count: int, start: datetime = T0) -> list[AuditEvent]:
    events = [
        AuditEvent(
            practice_id="p1",
            action="patient.read",
            event_id=f"e{i}",
            timestamp=start + timedelta(seconds=i),
            patient_id=f"pat-{i % 3}",
            data_accessed=("name.family", "birthDate"),
            success=True,
        )
        for i in range(count)
    ]
    return domain.link(events, {})[0]


def test_hash_is_sha256_of_sorted_compact_json_without_the_hash() -> None:
    event = chain_of(1)[0]
    document = {
        "action": "patient.read",
        "correlation_id": "",
        "data_accessed": ["name.family", "birthDate"],
        "event_id": "e0",
        "integration_type": "",
        "ip_address": "",
        "patient_id": "pat-0",
        "practice_id": "p1",
        "previous_hash": GENESIS_HASH,
        "resource": "",
        "sequence": 1,
        "success": True,
        "timestamp": "2024-05-01T09:30:00.000000Z",
        "user_agent": "",
        "user_id": "",
    }
    expected = hashlib.sha256(json.dumps(document, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    assert event.hash == expected


def test_timestamps_hash_the_same_in_any_zone_or_naive_as_utc() -> None:
    event = chain_of(1)[0]
    plus_two = event.timestamp.astimezone(timezone(timedelta(hours=2)))
    naive = event.timestamp.replace(tzinfo=None)
    assert domain.event_hash(replace(event, timestamp=plus_two)) == event.hash
    assert domain.event_hash(replace(event, timestamp=naive)) == event.hash


def test_link_chains_each_practice_on_its_own_head() -> None:
    events = [AuditEvent(practice_id=p, action="patient.read", event_id=str(i)) for i, p in enumerate("abab")]
    heads = {"b": ChainHead(7, "f" * 64)}
    linked, new_heads = domain.link(events, heads)
    assert [(e.practice_id, e.sequence) for e in linked] == [("a", 1), ("b", 8), ("a", 2), ("b", 9)]
    assert linked[0].previous_hash == GENESIS_HASH
    assert linked[1].previous_hash == "f" * 64
    assert linked[2].previous_hash == linked[0].hash
    assert linked[3].previous_hash == linked[1].hash
    assert new_heads == {"a": ChainHead(2, linked[2].hash), "b": ChainHead(9, linked[3].hash)}


@pytest.mark.parametrize(
    "value", ["john@example.com", "1990-01-01", "555 0100", "", "name family", "birthDate\n", "a" * 129]
)
def test_data_accessed_takes_field_names_only(value: str) -> None:
    event = AuditEvent(practice_id="p1", action="patient.read", data_accessed=("name.given[0]", value))
    with pytest.raises(InvalidArgument) as error:
        domain.validate_event(event, 3)
    assert error.value.field == "events[3].data_accessed[1]"
    assert value not in error.value.message or not value


def test_required_and_overlong_fields_are_named() -> None:
    with pytest.raises(InvalidArgument) as error:
        domain.validate_event(AuditEvent(practice_id="", action="patient.read"), 0)
    assert error.value.field == "events[0].practice_id"
    with pytest.raises(InvalidArgument) as error:
        domain.validate_event(AuditEvent(practice_id="p1", action="patient.read", resource="x" * 257), 2)
    assert (error.value.field, error.value.reason) == ("events[2].resource", "FIELD_TOO_LONG")
    with pytest.raises(InvalidArgument) as error:
        domain.validate_event(AuditEvent(practice_id="p1", action="read jane doe"), 1)
    assert error.value.field == "events[1].action"


def test_an_empty_chain_is_intact() -> None:
    assert domain.verify([]) == domain.Verification(intact=True, events_checked=0, head_hash="")


def test_edited_row_is_reported_at_its_sequence() -> None:
    events = chain_of(6)
    events[3] = replace(events[3], action="patient.export")
    result = domain.verify(events)
    assert (result.intact, result.first_broken_sequence, result.problem) == (False, 4, "EDITED")
    assert result.events_checked == 4
    assert result.head_hash == events[2].hash


def test_deleted_row_is_missing_at_the_next_one() -> None:
    events = chain_of(6)
    del events[2]
    result = domain.verify(events)
    assert (result.first_broken_sequence, result.problem) == (4, "MISSING")
    first_gone = domain.verify(chain_of(3)[1:])
    assert (first_gone.first_broken_sequence, first_gone.problem) == (2, "MISSING")


def test_swapped_sequences_are_reordered() -> None:
    events = chain_of(6)
    a, b = events[2], events[3]
    events[2:4] = [replace(b, sequence=a.sequence), replace(a, sequence=b.sequence)]
    result = domain.verify(events)
    assert (result.first_broken_sequence, result.problem) == (3, "REORDERED")


def test_swapped_sequences_with_recomputed_hashes_are_reordered() -> None:
    events = chain_of(6)
    a, b = events[1], events[4]
    moved_b = replace(b, sequence=a.sequence)
    moved_a = replace(a, sequence=b.sequence)
    events[1] = replace(moved_b, hash=domain.event_hash(moved_b))
    events[4] = replace(moved_a, hash=domain.event_hash(moved_a))
    result = domain.verify(events)
    assert (result.first_broken_sequence, result.problem) == (2, "REORDERED")


def test_swapped_timestamps_are_reordered_but_a_single_changed_timestamp_is_edited() -> None:
    events = chain_of(6)
    a, b = events[1], events[2]
    events[1], events[2] = replace(a, timestamp=b.timestamp), replace(b, timestamp=a.timestamp)
    result = domain.verify(events)
    assert (result.first_broken_sequence, result.problem) == (2, "REORDERED")

    same_time = domain.link([replace(e, timestamp=T0) for e in chain_of(4)], {})[0]
    same_time[1] = replace(same_time[1], timestamp=T0 + timedelta(days=1))
    assert (domain.verify(same_time).first_broken_sequence, domain.verify(same_time).problem) == (2, "EDITED")


def test_a_swap_across_batches_is_still_seen_whole() -> None:
    events = chain_of(8)
    a, b = events[3], events[4]
    events[3:5] = [replace(b, sequence=a.sequence), replace(a, sequence=b.sequence)]
    verifier = ChainVerifier()
    assert verifier.feed(events[:4])
    assert not verifier.feed(events[4:])
    result = verifier.finish()
    assert (result.first_broken_sequence, result.problem, result.events_checked) == (4, "REORDERED", 4)


def test_batches_verify_like_one() -> None:
    events = chain_of(10)
    verifier = ChainVerifier()
    for start in range(0, 10, 3):
        assert verifier.feed(events[start : start + 3])
    assert verifier.finish() == domain.verify(events)
    assert verifier.finish().head_hash == events[-1].hash


@settings(max_examples=60, deadline=None)
@given(st.lists(event_strategy, min_size=0, max_size=12), st.integers(0, 3))
def test_any_sequence_of_events_verifies(events: list[AuditEvent], batch: int) -> None:
    linked, heads = domain.link(events, {})
    verifier = ChainVerifier()
    for start in range(0, len(linked), batch or 1):
        verifier.feed(linked[start : start + (batch or 1)])
    result = verifier.finish()
    assert result.intact
    assert result.events_checked == len(events)
    assert result.head_hash == (heads["p1"].hash if events else "")


@settings(max_examples=150, deadline=None)
@given(st.lists(event_strategy, min_size=1, max_size=8), st.data())
def test_any_single_field_edit_is_detected(events: list[AuditEvent], data: st.DataObject) -> None:
    linked, _ = domain.link(events, {})
    index = data.draw(st.integers(0, len(linked) - 1))
    name = data.draw(st.sampled_from(CONTENT_FIELDS))
    original = getattr(linked[index], name)
    if isinstance(original, bool):
        changed = not original
    elif isinstance(original, tuple):
        changed = (*original, "extra")
    else:
        changed = data.draw(st.text(max_size=70).filter(lambda value: value != original))
    linked[index] = replace(linked[index], **{name: changed})
    result = domain.verify(linked)
    assert not result.intact
    assert result.first_broken_sequence == index + 1
    assert result.problem == "EDITED"


@settings(max_examples=60, deadline=None)
@given(st.lists(event_strategy, min_size=2, max_size=8), st.data())
def test_any_timestamp_or_sequence_change_breaks_the_chain(events: list[AuditEvent], data: st.DataObject) -> None:
    linked, _ = domain.link(events, {})
    index = data.draw(st.integers(0, len(linked) - 1))
    moved = data.draw(st.sampled_from(["timestamp", "sequence"]))
    if moved == "timestamp":
        linked[index] = replace(linked[index], timestamp=linked[index].timestamp + timedelta(microseconds=1))
    else:
        linked[index] = replace(linked[index], sequence=len(linked) + 5)
        linked.sort(key=lambda event: event.sequence)
    assert not domain.verify(linked).intact
