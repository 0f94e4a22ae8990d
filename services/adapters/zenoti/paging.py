"""Change pulls over Zenoti's page-number lists, which carry no modification time per record.

A *pass* reads every record of a list filtered by ``last_updated >= since`` (oldest change first).
The records carry no timestamp, so the next pass starts from the clock at this pass's start, less
an overlap for clock skew; what that overlap reads again unchanged is recognised by fingerprint
(a hash of the whole record) and not returned twice.

Pages are numbered from the front, and an edit during a pass moves a record from its place to the
end of the list. Reading front to back, that shifts an unread record into a page already read and
skips it. So a pass reads back to front: it learns the total from page 1, then reads the range
ending at the end of the list, then the one before it, down to position 0. Moves and deletions only
shift records towards the front, into what is still unread (read again at worst, never skipped);
records changed after the pass began sit at the end and are the next pass's.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.exceptions import ApplicationError

MAX_PAGE = 100  # guides/pagination.md: size > 100 is refused with 422
OVERLAP = timedelta(minutes=5)
# Fingerprints kept per pass (8 bytes each): enough for every change within the overlap of a busy
# center; beyond it, unchanged records may be returned again (the hub's merge makes that harmless).
FINGERPRINT_CAP = 1000
_FP = 8


def fingerprint(record: dict) -> bytes:
    return hashlib.sha256(json.dumps(record, sort_keys=True, separators=(",", ":")).encode()).digest()[:_FP]


@dataclass
class Fingerprints:
    """An ordered, capped set: the first ones added (the newest records: the end of the list) stay."""

    items: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._set = set(self.items)

    def __contains__(self, value: bytes) -> bool:
        return value in self._set

    def add(self, value: bytes) -> None:
        if value not in self._set and len(self.items) < FINGERPRINT_CAP:
            self.items.append(value)
            self._set.add(value)

    def encode(self) -> str:
        return base64.b64encode(b"".join(self.items)).decode()

    @classmethod
    def decode(cls, raw: Any) -> Fingerprints:
        if not isinstance(raw, str):
            raise ValueError("fingerprints")
        data = base64.b64decode(raw, validate=True)
        if len(data) % _FP or len(data) > _FP * FINGERPRINT_CAP:
            raise ValueError("fingerprints")
        return cls([data[i : i + _FP] for i in range(0, len(data), _FP)])


@dataclass
class Pass:
    started: datetime
    below: int  # every record of the pass not yet read sits at a position below this
    seen: Fingerprints


@dataclass
class Cursor:
    since: datetime | None = None
    known: Fingerprints = field(default_factory=Fingerprints)  # what the last finished pass saw
    current: Pass | None = None

    def encode(self) -> str:
        body: dict[str, Any] = {"v": 1, "since": _stamp(self.since), "known": self.known.encode()}
        if self.current is not None:
            body["pass"] = {
                "started": _stamp(self.current.started),
                "below": self.current.below,
                "seen": self.current.seen.encode(),
            }
        return json.dumps(body, separators=(",", ":"))

    @classmethod
    def decode(cls, raw: str, vendor: str) -> Cursor:
        """An empty cursor is the beginning; anything not made by ``encode`` is InvalidArgument."""
        if not raw:
            return cls()
        try:
            body = json.loads(raw)
            if not isinstance(body, dict) or body.get("v") != 1:
                raise ValueError("version")
            current = None
            if body.get("pass") is not None:
                p = body["pass"]
                below = p["below"]
                if not isinstance(below, int) or isinstance(below, bool) or below < 0:
                    raise ValueError("below")
                current = Pass(_parse(p["started"]), below, Fingerprints.decode(p["seen"]))
            since = _parse(body["since"]) if body.get("since") is not None else None
            return cls(since, Fingerprints.decode(body["known"]), current)
        except (ValueError, KeyError, TypeError):
            raise ApplicationError(f"not a {vendor} cursor", type="InvalidArgument", non_retryable=True) from None


def _stamp(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value is not None else None


def _parse(value: Any) -> datetime:
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError("naive time")
    return parsed


@dataclass
class Page:
    records: list[dict]
    total: int


# (since, page number from 1, size) -> that page of the filtered list and the list's total.
ListPage = Callable[[datetime | None, int, int], Awaitable[Page]]


@dataclass
class Step:
    records: list[dict]
    cursor: Cursor
    has_more: bool


async def next_step(cursor: Cursor, size: int, list_page: ListPage, now: datetime) -> Step:
    """One FetchChanges: at most ``size`` records, and the cursor after them."""
    size = min(max(size, 1), MAX_PAGE)
    current = cursor.current
    if current is None:
        first = await list_page(cursor.since, 1, size)
        current = Pass(now, first.total, Fingerprints())
        if first.total <= size:  # the whole pass is this one page
            return _finish(cursor, current, first.records)
        # Page 1 is read again last: a move in the list since this read may have shifted records into it.
    page_number = max(1, math.ceil(current.below / size))
    page = await list_page(cursor.since, page_number, size)
    current.below = (page_number - 1) * size
    if current.below == 0:
        return _finish(cursor, current, page.records)
    fresh = _fresh(page.records, cursor.known, current.seen)
    return Step(fresh, Cursor(cursor.since, cursor.known, current), True)


def _fresh(records: Iterable[dict], known: Fingerprints, seen: Fingerprints) -> list[dict]:
    fresh = []
    for record in records:
        fp = fingerprint(record)
        if fp not in known and fp not in seen:
            fresh.append(record)
        seen.add(fp)
    return fresh


def _finish(cursor: Cursor, current: Pass, records: list[dict]) -> Step:
    fresh = _fresh(records, cursor.known, current.seen)
    return Step(fresh, Cursor(current.started - OVERLAP, current.seen), False)


def since_param(since: datetime) -> str:
    """Zenoti's ``last_updated``: UTC, whole seconds, rounded down (the overlap covers the rest)."""
    return since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
