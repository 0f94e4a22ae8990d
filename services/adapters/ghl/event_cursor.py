"""The appointments cursor. GHL lists calendar events by start-time window only, with no
"changed since", so a pull is a pass over a window of start times (WINDOW_BACK before now to
WINDOW_AHEAD after), calendar by calendar, WINDOW_PAGE at a time, and the cursor remembers what
was delivered so that only changed events come back:

- ``floor``: every event whose ``dateUpdated`` is at or before it was delivered at that version,
  if it lay in the last pass's window and calendars. It is the last pass's start less
  CLOCK_MARGIN (by the adapter's clock; the margin absorbs skew between it and GHL's).
- ``seen``: event id -> the ``dateUpdated`` delivered, for versions newer than the floor.

An event is returned when its ``dateUpdated`` is not the one delivered and either is newer than
the floor or the event is new to us (its start outside the last window, or its calendar not
walked last pass). Within a pass, a page that did not fit is resumed after the last
(dateUpdated, id) returned. Events that leave the window at its back are no longer read.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any

from services.adapters.ghl.resource import bad_cursor

WINDOW_BACK = timedelta(days=90)
WINDOW_AHEAD = timedelta(days=180)
WINDOW_PAGE = timedelta(days=30)
CLOCK_MARGIN_MS = 5 * 60_000
# A window no pass of any version of this module spans; a cursor naming a wider one is not ours.
MAX_WINDOW_MS = 2 * 366 * 86_400_000


def _ms(delta: timedelta) -> int:
    return int(delta.total_seconds() * 1000)


@dataclass
class Pass:
    window: list[int]  # [start, end) of start times, epoch ms
    started: int  # epoch ms, adapter clock
    calendar: str = ""  # the calendar being read; "" before the first
    page: int = 0  # index of the window page being read
    after: list | None = None  # [dateUpdated ms, id]: the page's last record returned, when it did not fit
    walked: list[str] = field(default_factory=list)  # calendars read through

    def pages(self) -> list[tuple[int, int]]:
        start, end = self.window
        step = _ms(WINDOW_PAGE)
        return [(s, min(s + step, end) - 1) for s in range(start, end, step)]  # GHL's bounds are inclusive


@dataclass
class EventCursor:
    floor: int | None = None
    seen: dict[str, int] = field(default_factory=dict)
    last_window: list[int] | None = None
    last_calendars: list[str] = field(default_factory=list)
    current: Pass | None = None

    @classmethod
    def parse(cls, raw: str) -> EventCursor:
        if not raw:
            return cls()
        try:
            data = json.loads(raw)
            cursor = cls(**{k: v for k, v in data.items() if k != "current"})
            cursor.current = Pass(**data["current"]) if data.get("current") else None
        except (ValueError, TypeError, AttributeError):
            raise bad_cursor() from None
        if not _valid(cursor):
            raise bad_cursor()
        return cursor

    def dump(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    def begin(self, now_ms: int) -> Pass:
        """The pass under way, or a new one over the window around now."""
        if self.current is None:
            window = [now_ms - _ms(WINDOW_BACK), now_ms + _ms(WINDOW_AHEAD)]
            self.current = Pass(window=window, started=now_ms)
        return self.current

    def wants(self, event_id: str, updated: int, start: int, calendar_id: str) -> bool:
        if self.seen.get(event_id) == updated:
            return False
        if self.floor is None or updated > self.floor:
            return True
        known = self.last_window is not None and self.last_window[0] <= start < self.last_window[1]
        return not known or calendar_id not in self.last_calendars

    def delivered(self, current: Pass, event_id: str, updated: int) -> None:
        if updated > current.started - CLOCK_MARGIN_MS:  # at or before: the next floor covers it
            self.seen[event_id] = updated
        else:
            self.seen.pop(event_id, None)

    def finish(self, current: Pass) -> None:
        """The pass is complete: what it read becomes what the next one compares with."""
        self.floor = current.started - CLOCK_MARGIN_MS
        self.seen = {i: u for i, u in self.seen.items() if u > self.floor}
        self.last_window = current.window
        self.last_calendars = current.walked
        self.current = None


def _ints(value: Any, size: int) -> bool:
    return isinstance(value, list) and len(value) == size and all(type(v) is int for v in value)


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _valid_pass(current: Pass) -> bool:
    after = current.after
    return (
        _ints(current.window, 2)
        and 0 < current.window[1] - current.window[0] <= MAX_WINDOW_MS
        and type(current.started) is int
        and isinstance(current.calendar, str)
        and type(current.page) is int
        and 0 <= current.page < len(current.pages())
        and (
            after is None
            or (isinstance(after, list) and len(after) == 2 and _ints(after[:1], 1) and _strings(after[1:]))
        )
        and _strings(current.walked)
    )


def _valid(cursor: EventCursor) -> bool:
    return (
        (cursor.floor is None or type(cursor.floor) is int)
        and isinstance(cursor.seen, dict)
        and all(type(u) is int for u in cursor.seen.values())
        and (cursor.last_window is None or _ints(cursor.last_window, 2))
        and _strings(cursor.last_calendars)
        and (cursor.current is None or _valid_pass(cursor.current))
    )
