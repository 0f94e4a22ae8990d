"""Contacts (the hub's patients): searched by dateUpdated, written one upsert or update each."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from google.protobuf import json_format

from libs.protos.concord.adapter.v1 import adapter_pb2 as pb
from services.adapters.common import struct
from services.adapters.ghl import marketing, schemas
from services.adapters.ghl.client import GhlClient, GhlError
from services.adapters.ghl.resource import bad_cursor, malformed, refused, write_all

MAX_PAGE = 500


def _is_search_after(value: Any) -> bool:
    """GHL's opaque searchAfter: the contact's sort values, [dateUpdated epoch ms, id] as seen so far."""
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(v, str | int | float) and not isinstance(v, bool) for v in value)
    )


def _parse_cursor(raw: str) -> list | None:
    try:
        cursor = json.loads(raw) if raw else {}
    except ValueError:
        cursor = None
    if not isinstance(cursor, dict) or not (
        cursor.get("search_after") is None or _is_search_after(cursor["search_after"])
    ):
        raise bad_cursor()
    return cursor.get("search_after")


def _updated(contact: Any) -> datetime:
    """Checks one contact of a page: the next cursor and the pull's order are built from it."""
    if not isinstance(contact, dict) or not isinstance(contact.get("id"), str):
        raise malformed("a contact without an id")
    if not _is_search_after(contact.get("searchAfter")):
        raise malformed("a contact without a valid searchAfter")
    try:
        updated = datetime.fromisoformat(str(contact.get("dateUpdated")).replace("Z", "+00:00"))
    except ValueError:
        raise malformed("a contact without dateUpdated") from None
    return updated if updated.tzinfo else updated.replace(tzinfo=UTC)


class Contacts:
    async def fetch(self, client: GhlClient, request: pb.FetchChangesRequest) -> pb.FetchChangesResponse:
        """Contacts in (dateUpdated, id) order after the cursor: a contact changed later sorts
        after everything already seen, so the next run picks it up."""
        last = _parse_cursor(request.cursor)
        creds = await client.credentials()
        limit = min(request.page_size or 100, MAX_PAGE)
        body: dict = {
            "locationId": creds.location_id,
            "pageLimit": limit,
            "sort": [{"field": "dateUpdated", "direction": "asc"}],
        }
        if last is not None:
            body["searchAfter"] = last
        page = await client.request("POST", "/contacts/search", json=body)
        contacts = page.get("contacts") if isinstance(page, dict) else None
        if not isinstance(contacts, list) or len(contacts) > limit:
            raise malformed("no contact list of at most pageLimit")
        records = []
        previous = None
        for contact in contacts:
            updated = _updated(contact)
            # We asked for dateUpdated ascending; anything else means the next cursor may skip records.
            if previous is not None and updated < previous:
                raise malformed("contacts out of order")
            previous = updated
            last = contact.pop("searchAfter")
            records.append(struct(contact))
        return pb.FetchChangesResponse(
            records=records,
            next_cursor=json.dumps({"search_after": last}) if last is not None else request.cursor,
            has_more=len(contacts) == limit,
            vendor_requests=client.requests,
        )

    async def upsert(self, client: GhlClient, request: pb.UpsertBatchRequest) -> pb.UpsertBatchResponse:
        """Updates linked contacts by id and upserts new ones (GHL matches on email, then phone),
        so a retried batch updates what the first attempt created instead of duplicating it."""
        creds = await client.credentials()

        async def write(item: pb.UpsertItem) -> pb.UpsertResult:
            record = json_format.MessageToDict(item.record)
            try:
                if item.external_id:
                    body = await client.request(
                        "PUT", f"/contacts/{item.external_id}", json=schemas.update_body(record)
                    )
                    created = False
                else:
                    body = await client.request(
                        "POST", "/contacts/upsert", json={**record, "locationId": creds.location_id}
                    )
                    created = bool(body.get("new"))
            except GhlError as error:
                if not error.about_the_record:
                    raise
                return refused(item, error, record)
            contact = body.get("contact") or {}
            try:
                contact = await marketing.apply_to_contact(client, request.options.marketing, contact, record)
            except GhlError as error:
                if not error.about_the_record:
                    raise
                # The contact is written; its marketing step failed: the record fails with the reason.
                return refused(item, error, record, "MARKETING_FAILED")
            return pb.UpsertResult(
                ref=item.ref,
                external_id=str(contact.get("id", item.external_id)),
                success=True,
                created=created,
                record=struct(contact),
            )

        results = await write_all(request.items, write)
        return pb.UpsertBatchResponse(results=results, vendor_requests=client.requests)
