"""Reads: the records of an sObject changed after a (SystemModstamp, Id) position, in that order.

SystemModstamp has whole seconds, so many records share one. The cursor is therefore the last
record's (SystemModstamp, Id), and the next page asks for
``SystemModstamp > ts OR (SystemModstamp = ts AND Id > id)``: no record sharing a second with a
page boundary is skipped or repeated. A record saved in the second being read could still land
before that position, so only settled seconds are taken: records stamped less than
SETTLE_SECONDS before the server's clock (the response's Date header) wait for the next page.

Records by id (`by_ids`, GetRecords) are the same SELECT with ``Id IN (...)``: as they are now,
no settle rule (nothing is resumed from them).
"""

from __future__ import annotations

import email.utils
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from temporalio.exceptions import ApplicationError

from services.adapters.salesforce.client import DATA_PATH, SalesforceClient, SalesforceError
from services.adapters.salesforce.schemas import SObjectResource

MAX_PAGE = 2000  # Salesforce's largest query batch
SETTLE_SECONDS = 2.0
# Ids per read by id: one query per 200, as sObject Collections take them (the IN list stays short).
MAX_IDS = 200
_ID = re.compile(r"^[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?$")
_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"


@dataclass(frozen=True, order=True)
class Position:
    modstamp: datetime
    record_id: str


@dataclass
class Page:
    records: list[dict[str, Any]]
    last: Position | None
    has_more: bool


def _invalid_cursor() -> ApplicationError:
    return ApplicationError("not a Salesforce cursor", type="InvalidArgument", non_retryable=True)


def _malformed(what: str) -> ApplicationError:
    # Retryable: a vendor glitch; returning the page (or a cursor built from it) could lose records.
    return ApplicationError(f"malformed query page: {what}", type="VendorMalformedPage")


def parse_datetime(value: Any) -> datetime | None:
    """Salesforce's 2024-05-20T20:49:32.000+0000 (or any ISO 8601 with an offset), as UTC."""
    if not isinstance(value, str):
        return None
    for parse in (lambda v: datetime.strptime(v, "%Y-%m-%dT%H:%M:%S.%f%z"), datetime.fromisoformat):
        try:
            moment = parse(value)
        except ValueError:
            continue
        if moment.tzinfo is not None:
            return moment.astimezone(UTC)
    return None


def canonical_id(value: Any) -> str | None:
    """The 18-character form of a 15- or 18-character Salesforce id, or None for anything else
    (an 18-character id whose case-safe suffix does not match included): Salesforce would refuse
    the whole request for it (MALFORMED_ID, INVALID_QUERY_FILTER_OPERATOR), so it is never sent."""
    if not isinstance(value, str) or not _ID.match(value):
        return None
    head = value[:15]
    suffix = "".join(
        _SUFFIX[sum(1 << i for i, char in enumerate(head[start : start + 5]) if "A" <= char <= "Z")]
        for start in (0, 5, 10)
    )
    if len(value) == 18 and value[15:].upper() != suffix:
        return None
    return head + suffix


def soql_datetime(moment: datetime) -> str:
    text = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{moment.microsecond // 1000:03d}Z" if moment.microsecond else f"{text}Z"


def parse_cursor(raw: str, key_prefix: str = "") -> Position | None:
    """The cursor's position; with ``key_prefix``, its record must be of that object: a config whose
    appointment object changed would otherwise resume one object's read at the other's position."""
    try:
        cursor = json.loads(raw) if raw else {}
    except ValueError:
        raise _invalid_cursor() from None
    if not isinstance(cursor, dict) or set(cursor) - {"after"}:
        raise _invalid_cursor()
    after = cursor.get("after")
    if after is None:
        return None
    # Both values go into SOQL: only a real datetime and a well-formed id pass.
    modstamp = parse_datetime(after.get("SystemModstamp")) if isinstance(after, dict) else None
    record_id = after.get("Id") if isinstance(after, dict) else None
    if modstamp is None or not isinstance(record_id, str) or not _ID.match(record_id):
        raise _invalid_cursor()
    if key_prefix and not record_id.startswith(key_prefix):
        raise ApplicationError(
            "the cursor is a position in another sObject (did the config's appointment object change?)",
            type="InvalidArgument",
            non_retryable=True,
        )
    return Position(modstamp, record_id)


def cursor_json(position: Position | None) -> str:
    if position is None:
        return "{}"
    return json.dumps({"after": {"SystemModstamp": soql_datetime(position.modstamp), "Id": position.record_id}})


def soql(resource: SObjectResource, after: Position | None, limit: int) -> str:
    conditions = [resource.where] if resource.where else []
    if after is not None:
        ts = soql_datetime(after.modstamp)
        conditions.append(f"(SystemModstamp > {ts} OR (SystemModstamp = {ts} AND Id > '{after.record_id}'))")
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    # The only values in it are a parsed datetime and an id checked against _ID (parse_cursor).
    select = f"SELECT {', '.join(resource.select)} FROM {resource.sobject}"  # noqa: S608
    return f"{select}{where} ORDER BY SystemModstamp, Id LIMIT {limit}"


def _server_time(date_header: str | None) -> datetime:
    try:
        moment = email.utils.parsedate_to_datetime(date_header or "")
    except (TypeError, ValueError):
        moment = None
    return moment.astimezone(UTC) if moment and moment.tzinfo else datetime.now(UTC)


def _batch(response: httpx.Response) -> tuple[list, bool, str | None]:
    try:
        body = response.json()
    except ValueError:
        raise _malformed("not JSON") from None
    if (
        not isinstance(body, dict)
        or not isinstance(body.get("records"), list)
        or not isinstance(body.get("done"), bool)
    ):
        raise _malformed("no records list and done flag")
    next_url = body.get("nextRecordsUrl")
    if not body["done"] and not (isinstance(next_url, str) and next_url.startswith("/services/data/")):
        raise _malformed("more records without a nextRecordsUrl")
    return body["records"], body["done"], next_url


async def fetch(
    client: SalesforceClient,
    resource: SObjectResource,
    after: Position | None,
    limit: int,
    settle_seconds: float = SETTLE_SECONDS,
) -> Page:
    """One page of at most `limit` records after `after`; usually one API call (a query batch holds
    up to 2000 records; should Salesforce return fewer, the rest come through nextRecordsUrl)."""
    response = await client.request("GET", f"{DATA_PATH}/query", params={"q": soql(resource, after, limit)})
    horizon = _server_time(response.headers.get("Date")) - timedelta(seconds=settle_seconds)
    rows = await _with_more_batches(client, response, limit)
    if len(rows) > limit:
        raise _malformed("more records than the query's LIMIT")
    records: list[dict[str, Any]] = []
    last = after
    for row in rows:
        if not isinstance(row, dict) or not isinstance(row.get("Id"), str) or not _ID.match(row["Id"]):
            raise _malformed("a record without an id")
        modstamp = parse_datetime(row.get("SystemModstamp"))
        if modstamp is None:
            raise _malformed("a record without SystemModstamp")
        position = Position(modstamp, row["Id"])
        # We asked for (SystemModstamp, Id) after the cursor, ascending: anything else could skip records.
        if last is not None and position <= last:
            raise _malformed("records out of order")
        if modstamp >= horizon:
            return Page(records, last, has_more=False)  # this and every later record wait for the next run
        last = position
        records.append({k: v for k, v in row.items() if k != "attributes"})
    return Page(records, last, has_more=len(rows) == limit)


async def _with_more_batches(client: SalesforceClient, response: Any, limit: int | None = None) -> list:
    """A query answer's records, following nextRecordsUrl until done (or `limit` records are in)."""
    rows, done, next_url = _batch(response)
    while not done and (limit is None or len(rows) < limit):
        try:
            more = await client.request("GET", next_url or "")
        except SalesforceError as error:
            if error.code == "INVALID_QUERY_LOCATOR":
                raise _malformed("a nextRecordsUrl Salesforce does not know") from None
            raise
        batch, done, next_url = _batch(more)
        if not batch and not done:
            raise _malformed("an empty batch with more to come")
        rows += batch
    return rows


def by_ids_soql(resource: SObjectResource, record_ids: list[str]) -> str:
    conditions = [resource.where] if resource.where else []
    # The only values in it are ids canonical_id made (18 letters and digits).
    conditions.append("Id IN (" + ", ".join(f"'{i}'" for i in record_ids) + ")")
    select = f"SELECT {', '.join(resource.select)} FROM {resource.sobject}"  # noqa: S608
    return f"{select} WHERE {' AND '.join(conditions)}"


# sObjects Salesforce merges (their deleted records keep MasterRecordId).
MERGEABLE = ("Account", "Contact", "Lead")


async def merged_into(client: SalesforceClient, resource: SObjectResource, record_ids: list[str]) -> dict[str, str]:
    """Of these canonical ids of deleted records, those merged into another: id -> the master's
    id. queryAll reads the recycle bin; one query per MAX_IDS ids."""
    if resource.sobject not in MERGEABLE:
        return {}
    found: dict[str, str] = {}
    for start in range(0, len(record_ids), MAX_IDS):
        chunk = record_ids[start : start + MAX_IDS]
        # The only values in it are ids canonical_id made (18 letters and digits).
        soql = (
            f"SELECT Id, MasterRecordId FROM {resource.sobject} "  # noqa: S608
            "WHERE IsDeleted = true AND MasterRecordId != null AND Id IN (" + ", ".join(f"'{i}'" for i in chunk) + ")"
        )
        response = await client.request("GET", f"{DATA_PATH}/queryAll", params={"q": soql})
        for row in await _with_more_batches(client, response):
            record_id = canonical_id(row.get("Id")) if isinstance(row, dict) else None
            master = canonical_id(row.get("MasterRecordId")) if isinstance(row, dict) else None
            if record_id in chunk and master:
                found[record_id] = master
    return found


async def by_ids(client: SalesforceClient, resource: SObjectResource, record_ids: list[str]) -> dict[str, dict]:
    """The live records (the resource's filter applies) of these canonical ids, as `fetch` gives
    them, by canonical id: one query per MAX_IDS ids (more only if Salesforce pages the answer).
    Deleted records (in the recycle bin) and ids of no record are simply not in it."""
    found: dict[str, dict] = {}
    for start in range(0, len(record_ids), MAX_IDS):
        chunk = record_ids[start : start + MAX_IDS]
        response = await client.request("GET", f"{DATA_PATH}/query", params={"q": by_ids_soql(resource, chunk)})
        rows = await _with_more_batches(client, response)
        asked = set(chunk)
        for row in rows:
            record_id = canonical_id(row.get("Id")) if isinstance(row, dict) else None
            if record_id is None:
                raise _malformed("a record without an id")
            if record_id not in asked:
                raise _malformed("a record that was not asked for")
            found[record_id] = {k: v for k, v in row.items() if k != "attributes"}
    return found
