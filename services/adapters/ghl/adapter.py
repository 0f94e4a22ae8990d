"""The GoHighLevel adapter: contacts <-> the hub, page by page, paced under GHL's limit."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
from google.protobuf import json_format, struct_pb2
from temporalio.exceptions import ApplicationError

from libs.errors import ConcordError, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from libs.grpc_client import call
from libs.protos.concord.adapter.v1 import adapter_pb2 as pb
from libs.protos.concord.common.v1 import common_pb2
from libs.protos.concord.connection.v1 import connection_pb2
from services.adapters import AdapterContext
from services.adapters.ghl import schemas
from services.adapters.ghl.client import Credentials, GhlClient, GhlError, Pacers

# GHL has no batch write for contacts: one request per record, several in flight, all paced.
WRITE_CONCURRENCY = 10
MAX_PAGE = 500


def _struct(record: dict) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(record)
    return message


def _contacts_only(entity_type: int) -> None:
    if entity_type != common_pb2.ENTITY_TYPE_PATIENT:
        raise ApplicationError("GoHighLevel syncs patients only", type="InvalidArgument", non_retryable=True)


def _malformed(what: str) -> ApplicationError:
    # Retryable: a vendor glitch; returning the page (or a cursor built from it) would lose records.
    return ApplicationError(f"malformed search page: {what}", type="VendorMalformedPage")


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
        raise ApplicationError("not a GoHighLevel cursor", type="InvalidArgument", non_retryable=True)
    return cursor.get("search_after")


def _updated(contact: Any) -> datetime:
    """Checks one contact of a page: the next cursor and the pull's order are built from it."""
    if not isinstance(contact, dict) or not isinstance(contact.get("id"), str):
        raise _malformed("a contact without an id")
    if not _is_search_after(contact.get("searchAfter")):
        raise _malformed("a contact without a valid searchAfter")
    try:
        updated = datetime.fromisoformat(str(contact.get("dateUpdated")).replace("Z", "+00:00"))
    except ValueError:
        raise _malformed("a contact without dateUpdated") from None
    return updated if updated.tzinfo else updated.replace(tzinfo=UTC)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _without_values(message: str, record: dict) -> str:
    """GHL's messages name fields, not values; should one ever quote a value, it is cut out (PHI)."""
    for value in sorted({v.strip() for v in _strings(record) if len(v.strip()) >= 2}, key=len, reverse=True):
        message = re.sub(rf"(?<!\w){re.escape(value)}(?!\w)", "[value]", message, flags=re.IGNORECASE)
    return message


class GhlAdapter:
    vendor = "ghl"

    def __init__(
        self, context: AdapterContext, http: httpx.AsyncClient | None = None, backoff_seconds: float = 0.5
    ) -> None:
        self._context = context
        self._http = http or httpx.AsyncClient(timeout=httpx.Timeout(30.0))
        self._pacers = Pacers(enabled=context.settings.vendor_pacing)
        self._backoff_seconds = backoff_seconds

    async def aclose(self) -> None:
        await self._http.aclose()

    def _client(self, config_id: str) -> GhlClient:
        async def tokens(force: bool) -> Credentials:
            try:
                response = await call(
                    self._context.connections.GetAccessToken,
                    connection_pb2.GetAccessTokenRequest(config_id=config_id, force_refresh=force),
                )
            except (FailedPrecondition, NotFound, InvalidArgument, PermissionDenied) as error:
                # No usable connection (never made, expired, disconnected): retrying cannot help.
                raise ApplicationError(error.reason, type="NotConnected", non_retryable=True) from None
            except ConcordError as error:
                raise ApplicationError(error.reason, type="ConnectionUnavailable") from None
            return Credentials(response.access_token, response.external_account_id, response.api_base_url)

        return GhlClient(self._http, tokens, self._pacers, backoff_seconds=self._backoff_seconds)

    async def fetch_changes(self, request: pb.FetchChangesRequest) -> pb.FetchChangesResponse:
        """Contacts in (dateUpdated, id) order after the cursor: a contact changed later sorts
        after everything already seen, so the next run picks it up."""
        _contacts_only(request.entity_type)
        last = _parse_cursor(request.cursor)
        client = self._client(request.config_id)
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
            raise _malformed("no contact list of at most pageLimit")
        records = []
        previous = None
        for contact in contacts:
            updated = _updated(contact)
            # We asked for dateUpdated ascending; anything else means the next cursor may skip records.
            if previous is not None and updated < previous:
                raise _malformed("contacts out of order")
            previous = updated
            last = contact.pop("searchAfter")
            records.append(_struct(contact))
        return pb.FetchChangesResponse(
            records=records,
            next_cursor=json.dumps({"search_after": last}) if last is not None else request.cursor,
            has_more=len(contacts) == limit,
            vendor_requests=client.requests,
        )

    async def upsert_batch(self, request: pb.UpsertBatchRequest) -> pb.UpsertBatchResponse:
        """Updates linked contacts by id and upserts new ones (GHL matches on email, then phone),
        so a retried batch updates what the first attempt created instead of duplicating it."""
        _contacts_only(request.entity_type)
        client = self._client(request.config_id)
        creds = await client.credentials()
        gate = asyncio.Semaphore(WRITE_CONCURRENCY)

        async def write(item: pb.UpsertItem) -> pb.UpsertResult:
            record = json_format.MessageToDict(item.record)
            async with gate:
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
                    return pb.UpsertResult(
                        ref=item.ref,
                        success=False,
                        error_reason=error.reason,
                        error_message=_without_values(error.message, record),
                    )
            contact = body.get("contact") or {}
            return pb.UpsertResult(
                ref=item.ref,
                external_id=str(contact.get("id", item.external_id)),
                success=True,
                created=created,
                record=_struct(contact),
            )

        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(write(item)) for item in request.items]
        except ExceptionGroup as failures:
            # The activity fails as the first failure itself, so a non-retryable one stays so;
            # otherwise Temporal retries the batch, which the upserts make safe.
            permanent = [e for e in failures.exceptions if isinstance(e, ApplicationError) and e.non_retryable]
            raise (permanent or failures.exceptions)[0] from None
        return pb.UpsertBatchResponse(results=[t.result() for t in tasks], vendor_requests=client.requests)

    async def check_health(self, request: pb.CheckHealthRequest) -> pb.CheckHealthResponse:
        client = self._client(request.config_id)
        try:
            creds = await client.credentials()
            await client.request("POST", "/contacts/search", json={"locationId": creds.location_id, "pageLimit": 1})
        except GhlError as error:
            return pb.CheckHealthResponse(healthy=False, detail=error.reason)
        except ApplicationError as error:
            if not error.non_retryable:
                raise
            return pb.CheckHealthResponse(healthy=False, detail=error.message)
        return pb.CheckHealthResponse(healthy=True, detail="ok")
