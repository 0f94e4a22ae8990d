"""The pull cursor of a declarative list endpoint: walks of the vendor's pages, each walk asking
for records updated at or after a high-water mark.

A walk starts with ``{since}`` = the highest update time the previous walk saw (empty the first
time) and follows the vendor's next cursor or link to the end. ``updated_since`` filters are
inclusive at most vendors, so records at exactly the mark come back: their ids are kept in the
cursor (``seen``) and left out, which makes an unchanged vendor return nothing. A record edited
during a walk sorts after the walk's position (the vendor orders by update time) or is picked up
by the next walk, whose mark is the highest time this one saw.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from temporalio.exceptions import ApplicationError

from services.adapters.declarative.definition import ListOperation, get_path


def malformed(what: str) -> ApplicationError:
    # Retryable: a vendor glitch; returning the page (or a cursor built from it) could lose records.
    return ApplicationError(f"malformed page: {what}", type="VendorMalformedPage")


def _invalid_cursor() -> ApplicationError:
    return ApplicationError("not a cursor of this adapter", type="InvalidArgument", non_retryable=True)


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 update time (a date-time without offset is UTC); None when it is not one."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass(frozen=True)
class PullCursor:
    since: str | None = None  # the vendor's own update time: sent back as it was read
    seen: tuple[str, ...] = ()  # ids at exactly `since` already returned
    next: str | None = None  # the vendor's next cursor or link, mid-walk
    high: str | None = None  # highest update time seen in this walk
    high_ids: tuple[str, ...] = field(default=())

    @classmethod
    def parse(cls, raw: str) -> PullCursor:
        try:
            data = json.loads(raw) if raw else {}
        except ValueError:
            raise _invalid_cursor() from None
        if not isinstance(data, dict) or set(data) - {"since", "seen", "next", "high", "high_ids"}:
            raise _invalid_cursor()
        for key in ("since", "next", "high"):
            if data.get(key) is not None and not isinstance(data[key], str):
                raise _invalid_cursor()
        for key in ("seen", "high_ids"):
            if not isinstance(data.get(key, []), list) or not all(isinstance(i, str) for i in data.get(key, [])):
                raise _invalid_cursor()
        for key in ("since", "high"):
            if data.get(key) is not None and parse_time(data[key]) is None:
                raise _invalid_cursor()
        return cls(
            data.get("since"),
            tuple(data.get("seen", [])),
            data.get("next"),
            data.get("high"),
            tuple(data.get("high_ids", [])),
        )

    def dump(self) -> str:
        return json.dumps(
            {
                "since": self.since,
                "seen": list(self.seen),
                "next": self.next,
                "high": self.high,
                "high_ids": list(self.high_ids),
            },
            separators=(",", ":"),
        )

    def query_values(self, page_size: int) -> dict[str, str | int | None]:
        return {"since": self.since, "page_size": page_size, "cursor": self.next}


def read_page(
    listing: ListOperation, id_field: str, body: Any, limit: int, cursor: PullCursor
) -> tuple[list[dict], PullCursor, bool]:
    """(records to return, the cursor after them, whether the walk goes on). Checks the page first."""
    found, items = get_path(body, listing.items)
    if not found or not isinstance(items, list):
        raise malformed("no list of records where the definition says")
    if len(items) > limit:
        raise malformed("more records than asked for")
    _, vendor_next = get_path(body, listing.next)  # absent: the last page
    if isinstance(vendor_next, bool) or (vendor_next is not None and not isinstance(vendor_next, str | int)):
        raise malformed("a next cursor that is not a string")
    vendor_next = str(vendor_next) if vendor_next not in (None, "") else None
    since = parse_time(cursor.since) if cursor.since else None
    high, high_ids = cursor.high, list(cursor.high_ids)
    high_time = parse_time(high) if high else None
    records = []
    for item in items:
        if not isinstance(item, dict):
            raise malformed("a record that is not an object")
        record_id = item.get(id_field)
        if isinstance(record_id, bool) or not isinstance(record_id, str | int) or record_id == "":
            raise malformed("a record without an id")
        record_id = str(record_id)
        raw_updated = item.get(listing.updated_field)
        updated = parse_time(raw_updated)
        if updated is None:
            raise malformed("a record without a valid update time")
        if high_time is None or updated > high_time:
            high, high_time, high_ids = raw_updated, updated, [record_id]
        elif updated == high_time and record_id not in high_ids:
            high_ids.append(record_id)
        if since is not None and updated == since and record_id in cursor.seen:
            continue  # returned by the walk that set the mark
        records.append(item)
    if vendor_next is not None:
        return records, replace(cursor, next=vendor_next, high=high, high_ids=tuple(high_ids)), True
    if high_time is None:
        return records, PullCursor(cursor.since, cursor.seen), False
    seen = (*cursor.seen, *(i for i in high_ids if i not in cursor.seen)) if high_time == since else tuple(high_ids)
    return records, PullCursor(high if high_time != since else cursor.since, seen), False
