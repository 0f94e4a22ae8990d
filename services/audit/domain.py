"""Audit rules: the event, its canonical form and hash, chaining and the chain check. Pure: no gRPC, no SQL.

The hash of an event is SHA-256 (hex) over its canonical form: compact JSON with sorted keys
(``json.dumps(sort_keys=True, separators=(",", ":"))``, ASCII with ``\\uXXXX`` escapes) of every field
but ``hash``, the timestamp as RFC 3339 UTC with microseconds (``2024-05-01T09:30:00.000000Z``).
Anyone holding the rows can recompute it. ``mapping_version`` (added after the first chains were
written) is in the canonical form only when non-zero: every event written before it existed, and
every event that is not a disclosure, hashes exactly as before, so old chains still verify.

A *disclosure* is an event whose action is ``<kind>.disclose`` (PHI sent to a vendor); a
patient's disclosures are its HIPAA accounting of disclosures (45 CFR 164.528).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum

from libs.errors import InvalidArgument

GENESIS_HASH = "0" * 64
# data_accessed holds field names only; anything else (an email, a date) could be a PHI value.
FIELD_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.\[\]]*$")
ACTION = re.compile(r"^[A-Za-z][A-Za-z0-9_.:-]*$")
MAX_LENGTHS = {
    "practice_id": 64,
    "user_id": 128,
    "action": 64,
    "resource": 256,
    "patient_id": 64,
    "integration_type": 64,
    "ip_address": 64,
    "user_agent": 1024,
    "correlation_id": 128,
}
DISCLOSE_VERB = "disclose"
# An action filter: exact (patient.read), every kind's verb (*.disclose) or every verb of a kind (patient.*).
ACTION_PATTERN = re.compile(r"^(?:\*\.[A-Za-z0-9_:-]+|[A-Za-z][A-Za-z0-9_:-]*\.\*)$")
MAX_FIELD_NAME_LENGTH = 128
MAX_FIELDS_PER_EVENT = 200
MAX_EVENTS_PER_RECORD = 10_000


class Problem(StrEnum):
    EDITED = "EDITED"
    MISSING = "MISSING"
    REORDERED = "REORDERED"


@dataclass(frozen=True)
class AuditEvent:
    practice_id: str
    action: str
    event_id: str = ""
    timestamp: datetime | None = None
    user_id: str = ""
    resource: str = ""
    patient_id: str = ""
    integration_type: str = ""
    data_accessed: tuple[str, ...] = ()
    success: bool = False
    ip_address: str = ""
    user_agent: str = ""
    correlation_id: str = ""
    # The field-mapping version a disclosure was made under; 0 otherwise (see canonical).
    mapping_version: int = 0
    sequence: int = 0
    previous_hash: str = ""
    hash: str = ""


@dataclass(frozen=True)
class ChainHead:
    """The last event of a practice's chain: what the next event links to."""

    sequence: int = 0
    hash: str = GENESIS_HASH


@dataclass(frozen=True)
class EventFilter:
    practice_id: str
    patient_id: str = ""
    user_id: str = ""
    action: str = ""
    start_time: datetime | None = None
    end_time: datetime | None = None


@dataclass(frozen=True)
class Verification:
    intact: bool
    events_checked: int
    first_broken_sequence: int = 0
    problem: str = ""
    head_hash: str = ""


def is_disclosure(action: str) -> bool:
    return action.endswith("." + DISCLOSE_VERB)


def validate_action_filter(action: str) -> None:
    """An exact action or a ``*.verb`` / ``kind.*`` pattern; InvalidArgument otherwise."""
    if not action:
        return
    if len(action) > MAX_LENGTHS["action"] or not (ACTION.fullmatch(action) or ACTION_PATTERN.fullmatch(action)):
        raise InvalidArgument(
            "action must be an action (patient.read), *.<verb> or <kind>.*", field="action", reason="INVALID_ACTION"
        )


def utc(value: datetime) -> datetime:
    """UTC-aware; naive values (SQLite hands them back so) are taken as UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def rfc3339(value: datetime) -> str:
    return utc(value).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def validate_event(event: AuditEvent, index: int) -> None:
    """Raises InvalidArgument naming ``events[index].<field>``; messages never quote the value."""
    prefix = f"events[{index}]"
    for name in ("practice_id", "action"):
        if not getattr(event, name):
            raise InvalidArgument(
                f"{prefix}.{name} is required", field=f"{prefix}.{name}", reason="REQUIRED_FIELD_MISSING"
            )
    for name, limit in MAX_LENGTHS.items():
        if len(getattr(event, name)) > limit:
            raise InvalidArgument(
                f"{prefix}.{name} must be at most {limit} characters", field=f"{prefix}.{name}", reason="FIELD_TOO_LONG"
            )
    if not ACTION.fullmatch(event.action):
        raise InvalidArgument(
            f"{prefix}.action must be a name such as patient.read", field=f"{prefix}.action", reason="INVALID_ACTION"
        )
    if len(event.data_accessed) > MAX_FIELDS_PER_EVENT:
        raise InvalidArgument(
            f"{prefix}.data_accessed may name at most {MAX_FIELDS_PER_EVENT} fields",
            field=f"{prefix}.data_accessed",
            reason="TOO_MANY_FIELDS",
        )
    if event.mapping_version < 0:
        raise InvalidArgument(
            f"{prefix}.mapping_version must not be negative",
            field=f"{prefix}.mapping_version",
            reason="INVALID_MAPPING_VERSION",
        )
    for position, name in enumerate(event.data_accessed):
        if len(name) > MAX_FIELD_NAME_LENGTH or not FIELD_NAME.fullmatch(name):
            field = f"{prefix}.data_accessed[{position}]"
            raise InvalidArgument(
                f"{field} must be a field name (letters, digits, '_', '.', '[]'), never a value",
                field=field,
                reason="NOT_A_FIELD_NAME",
            )


def canonical(event: AuditEvent) -> bytes:
    document = dict(vars(event))
    del document["hash"]
    document["timestamp"] = rfc3339(event.timestamp) if event.timestamp else ""
    document["data_accessed"] = list(event.data_accessed)
    if not event.mapping_version:
        # Absent rather than 0: events from before the field existed keep their hashes.
        del document["mapping_version"]
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def event_hash(event: AuditEvent) -> str:
    return hashlib.sha256(canonical(event)).hexdigest()


def link(events: Iterable[AuditEvent], heads: dict[str, ChainHead]) -> tuple[list[AuditEvent], dict[str, ChainHead]]:
    """Chains events onto their practices' heads in the order given; returns them and the new heads."""
    heads = dict(heads)
    linked = []
    for event in events:
        head = heads.get(event.practice_id, ChainHead())
        event = replace(event, sequence=head.sequence + 1, previous_hash=head.hash, hash="")
        event = replace(event, hash=event_hash(event))
        heads[event.practice_id] = ChainHead(event.sequence, event.hash)
        linked.append(event)
    return linked, heads


class ChainVerifier:
    """Checks one practice's chain fed in sequence order, batch by batch, and stops at the first break.

    At each event it expects the next sequence number, a previous_hash equal to the predecessor's hash
    and a hash that matches its own content. A break is classified as:
    - MISSING: the sequence jumps, or the event is intact but links to an event that is nowhere (deleted);
    - REORDERED: the event links to another event that is still there, or its hash fits again once it
      takes back the timestamp of an event it was swapped with (partners looked for in the batch);
    - EDITED: anything else about its content.
    ``first_broken_sequence`` is the sequence of the first event that does not fit (for MISSING, the
    one after the gap). Deleting the newest events leaves no trace in the chain: compare ``head_hash``
    with a head kept elsewhere to catch that.
    """

    def __init__(self) -> None:
        self._last: AuditEvent | None = None
        # The newest event is held back until the next batch so a swap across batches is seen whole.
        self._pending: list[AuditEvent] = []
        self.checked = 0
        self.broken: tuple[int, Problem] | None = None

    def feed(self, batch: Sequence[AuditEvent]) -> bool:
        """Checks a batch; False once the chain is broken (read no further)."""
        events = self._pending + list(batch)
        self._pending = events[-1:]
        self._check(events[:-1], events)
        return self.broken is None

    def finish(self) -> Verification:
        if self.broken is None:
            self._check(self._pending, self._pending)
        self._pending = []
        head = self._last.hash if self._last else ""
        if self.broken is None:
            return Verification(intact=True, events_checked=self.checked, head_hash=head)
        sequence, problem = self.broken
        return Verification(False, self.checked, sequence, problem.value, head)

    def _check(self, events: Sequence[AuditEvent], window: Sequence[AuditEvent]) -> None:
        for position, event in enumerate(events):
            if self.broken is not None:
                return
            self.checked += 1
            problem = self._problem(event, window[position + 1 :])
            if problem:
                self.broken = (event.sequence, problem)
                return
            self._last = event

    def _problem(self, event: AuditEvent, later: Sequence[AuditEvent]) -> Problem | None:
        expected_sequence = self._last.sequence + 1 if self._last else 1
        expected_link = self._last.hash if self._last else GENESIS_HASH
        content_ok = event_hash(event) == event.hash
        if event.sequence > expected_sequence:
            return Problem.MISSING
        if event.previous_hash != expected_link:
            if any(other.hash == event.previous_hash or other.previous_hash == expected_link for other in later):
                return Problem.REORDERED
            return Problem.MISSING if content_ok and event.sequence == expected_sequence else Problem.EDITED
        if content_ok and event.sequence == expected_sequence:
            return None
        if any(_timestamps_swapped(event, other) for other in later):
            return Problem.REORDERED
        return Problem.EDITED


def _timestamps_swapped(event: AuditEvent, other: AuditEvent) -> bool:
    if event.timestamp == other.timestamp:
        return False
    return (
        event_hash(replace(event, timestamp=other.timestamp)) == event.hash
        and event_hash(replace(other, timestamp=event.timestamp)) == other.hash
    )


def verify(events: Iterable[AuditEvent]) -> Verification:
    """Verifies a whole chain held in memory."""
    verifier = ChainVerifier()
    verifier.feed(list(events))
    return verifier.finish()
