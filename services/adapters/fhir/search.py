"""Incremental reads: `GET [base]/<type>?_lastUpdated=ge<since>&_sort=_lastUpdated&_count=n`,
following the Bundle's next links inside one activity until it holds n records.

The cursor is a point in the server's own `meta.lastUpdated` time plus the ids already returned
at exactly that instant (servers stamp a whole transaction alike, so `gt` alone could skip ties):
- a traversal that reached its last page ends at the search time (the searchset's
  `Bundle.meta.lastUpdated`): everything stamped up to then was in the result, anything written
  later is stamped later;
- a traversal cut at n records ends at the latest `lastUpdated` it returned that is not after the
  search time. Pages show each match's current version, so a record changed after the search
  carries a later stamp than its place in the sort; it is returned (again) by the next search.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from temporalio.exceptions import ApplicationError

from services.adapters.fhir.client import FhirClient, FhirError, heartbeat

ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_INSTANT = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def malformed(what: str) -> ApplicationError:
    # Retryable: a vendor glitch; returning the page (or a cursor built from it) could lose records.
    return ApplicationError(f"malformed search page: {what}", type="VendorMalformedPage")


def instant(text: Any) -> datetime | None:
    """A FHIR instant (zone required) as an aware datetime; None when it is not one."""
    match = _INSTANT.match(text) if isinstance(text, str) else None
    if match is None:
        return None
    seconds, fraction, zone = match.groups()
    fraction = (fraction or "")[:7]  # datetime keeps microseconds
    try:
        return datetime.fromisoformat(f"{seconds}{fraction}{'+00:00' if zone == 'Z' else zone}")
    except ValueError:
        return None


@dataclass(frozen=True)
class Cursor:
    since: str = ""  # the server's own instant text, sent back as `_lastUpdated=ge<since>`
    seen: tuple[str, ...] = ()  # ids already returned whose lastUpdated is exactly `since`

    @classmethod
    def parse(cls, raw: str) -> Cursor:
        """Raises ValueError when ``raw`` is not a cursor this adapter made."""
        document = json.loads(raw) if raw else {}
        if not isinstance(document, dict) or set(document) - {"since", "seen"}:
            raise ValueError("not a FHIR cursor")
        since, seen = document.get("since", ""), document.get("seen", [])
        if (
            (since and instant(since) is None)
            or not isinstance(seen, list)
            or not all(isinstance(i, str) for i in seen)
        ):
            raise ValueError("not a FHIR cursor")
        return cls(since, tuple(seen))

    def dump(self) -> str:
        return json.dumps({"since": self.since, "seen": list(self.seen)}) if self.since else ""


@dataclass(frozen=True)
class Changes:
    records: list[dict]
    cursor: Cursor
    has_more: bool


def _search_time(bundle: dict, response: httpx.Response) -> tuple[datetime, str] | None:
    """When the search ran: Bundle.meta.lastUpdated, else the Date header less its second of rounding."""
    text = (bundle.get("meta") or {}).get("lastUpdated") if isinstance(bundle.get("meta"), dict) else None
    if (stamp := instant(text)) is not None:
        return stamp, text
    try:
        stamp = parsedate_to_datetime(response.headers["Date"]).astimezone(UTC) - timedelta(seconds=1)
    except (KeyError, TypeError, ValueError):
        return None
    return stamp, stamp.isoformat()


def _matches(bundle: Any, resource_type: str) -> list[tuple[dict, datetime]]:
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise malformed("not a Bundle")
    if bundle.get("type") != "searchset":
        raise malformed("a Bundle that is not a searchset")
    entries = bundle.get("entry", [])
    if not isinstance(entries, list):
        raise malformed("entry is not a list")
    found = []
    for entry in entries:
        if not isinstance(entry, dict):
            raise malformed("an entry that is not an object")
        mode = (entry.get("search") or {}).get("mode") if isinstance(entry.get("search"), dict) else None
        resource = entry.get("resource")
        kind = resource.get("resourceType") if isinstance(resource, dict) else None
        if mode in ("include", "outcome") or (kind == "OperationOutcome" and mode is None):
            continue
        if kind != resource_type or not isinstance(resource.get("id"), str) or not ID.match(resource["id"]):
            raise malformed(f"a match that is not a {resource_type} with an id")
        meta = resource.get("meta")
        stamp = instant(meta.get("lastUpdated")) if isinstance(meta, dict) else None
        if stamp is None:
            raise malformed("a match without meta.lastUpdated")
        found.append((resource, stamp))
    return found


def _next_link(bundle: dict) -> str | None:
    links = bundle.get("link") or []
    if not isinstance(links, list):
        raise malformed("link is not a list")
    for link in links:
        if isinstance(link, dict) and link.get("relation") == "next":
            if not isinstance(link.get("url"), str) or not link["url"]:
                raise malformed("a next link without a url")
            return link["url"]
    return None


async def _follow(client: FhirClient, url: str) -> Any:
    try:
        response = await client.send("GET", url)
    except FhirError as error:
        # An expired or corrupt page link (410, 400, 404) or one to another server: the next try searches again.
        if error.status in (400, 404, 410) or error.reason == "VENDOR_FOREIGN_LINK":
            raise malformed(f"the next link failed ({error.reason})") from None
        raise
    return _json(response)


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        raise malformed("a body that is not JSON") from None


async def changes(client: FhirClient, resource_type: str, cursor: Cursor, limit: int) -> Changes:
    """Up to ``limit`` resources changed since the cursor, in lastUpdated order, and the cursor after them."""
    since = instant(cursor.since) if cursor.since else None
    params = {"_sort": "_lastUpdated", "_count": str(limit)}
    if cursor.since:
        params["_lastUpdated"] = f"ge{cursor.since}"
    response = await client.send("GET", resource_type, params=params)
    bundle = _json(response)
    searched = _search_time(bundle, response) if isinstance(bundle, dict) else None
    records: list[tuple[dict, datetime]] = []
    returned: set[str] = set()
    latest_in_order: datetime | None = None
    cut = False
    while True:
        for resource, stamp in _matches(bundle, resource_type):
            if since is not None and stamp < since:
                raise malformed("a match older than the _lastUpdated asked for")
            if resource["id"] in returned or (stamp == since and resource["id"] in cursor.seen):
                continue
            if len(records) == limit:
                cut = True
                break
            if searched is None or stamp <= searched[0]:
                # Records changed after the search may come anywhere; the rest must be sorted, or a cut loses some.
                if latest_in_order is not None and stamp < latest_in_order:
                    raise malformed("matches out of _lastUpdated order")
                latest_in_order = stamp
            records.append((resource, stamp))
            returned.add(resource["id"])
        link = None if cut else _next_link(bundle)
        if link is None or len(records) == limit:
            break
        heartbeat()
        bundle = await _follow(client, link)
    complete = not cut and link is None
    return Changes([r for r, _ in records], _next_cursor(cursor, since, records, searched, complete), not complete)


def _next_cursor(
    cursor: Cursor,
    since: datetime | None,
    records: list[tuple[dict, datetime]],
    searched: tuple[datetime, str] | None,
    complete: bool,
) -> Cursor:
    settled = [(r, s) for r, s in records if searched is None or s <= searched[0]]
    if complete and searched is not None:
        at, text = searched
    elif settled:
        resource, at = max(settled, key=lambda rs: rs[1])
        text = resource["meta"]["lastUpdated"]
    else:
        return cursor  # nothing settled was returned: search from the same point again
    if since is not None and at < since:
        at, text = since, cursor.since  # a server clock behind its own stamps must not move the cursor back
    seen = [r["id"] for r, s in records if s == at]
    if at == since:
        seen = list(dict.fromkeys([*cursor.seen, *seen]))
    return Cursor(text, tuple(seen))


async def by_ids(client: FhirClient, resource_type: str, ids: list[str]) -> dict[str, dict] | None:
    """The live resources among ``ids`` (valid FHIR ids, each once: no character needs escaping) by id: `GET [base]/<type>?_id=a,b,c`,
    following next links. Deleted and unknown ones are simply not matched. None when the server ignored
    `_id` (it matched a resource not asked for): the caller reads each by id instead."""
    wanted = set(ids)
    # Written out, not as params: httpx would send the commas that separate the ids as %2C.
    response = await client.send("GET", f"{resource_type}?_id={','.join(ids)}&_count={len(ids)}")
    bundle = _json(response)
    found: dict[str, dict] = {}
    # Every page but the last holds a match: more pages than ids is a server looping on its links.
    for _ in range(len(ids) + 1):
        for resource, _stamp in _matches(bundle, resource_type):
            if resource["id"] not in wanted:
                return None
            found.setdefault(resource["id"], resource)
        link = _next_link(bundle)
        if link is None:
            return found
        heartbeat()
        bundle = await _follow(client, link)
    raise malformed("more pages than ids asked for")
