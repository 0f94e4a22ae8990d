"""The GoHighLevel adapter: contacts <-> the hub, page by page, paced under GHL's limit."""

from __future__ import annotations

import asyncio
import json

import httpx
from google.protobuf import json_format, struct_pb2
from temporalio.exceptions import ApplicationError

from libs.errors import ConcordError, FailedPrecondition
from libs.grpc_client import call
from libs.protos.concord.adapter.v1 import adapter_pb2 as pb
from libs.protos.concord.connection.v1 import connection_pb2
from services.adapters import AdapterContext
from services.adapters.ghl import schemas
from services.adapters.ghl.client import Credentials, GhlClient, GhlError

# GHL has no batch write for contacts: one request per record, several in flight, all paced.
WRITE_CONCURRENCY = 10
MAX_PAGE = 500


def _struct(record: dict) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(record)
    return message


class GhlAdapter:
    vendor = "ghl"

    def __init__(self, context: AdapterContext, http: httpx.AsyncClient | None = None) -> None:
        self._context = context
        self._http = http or httpx.AsyncClient(timeout=httpx.Timeout(30.0))

    async def aclose(self) -> None:
        await self._http.aclose()

    def _client(self, config_id: str) -> GhlClient:
        async def tokens(force: bool) -> Credentials:
            try:
                response = await call(
                    self._context.connections.GetAccessToken,
                    connection_pb2.GetAccessTokenRequest(config_id=config_id, force_refresh=force),
                )
            except FailedPrecondition as error:
                raise ApplicationError(error.reason, type="NotConnected", non_retryable=True) from None
            except ConcordError as error:
                raise ApplicationError(error.reason, type="ConnectionUnavailable") from None
            return Credentials(response.access_token, response.external_account_id, response.api_base_url)

        return GhlClient(self._http, tokens)

    async def fetch_changes(self, request: pb.FetchChangesRequest) -> pb.FetchChangesResponse:
        """Contacts in (dateUpdated, id) order after the cursor: a contact changed later sorts
        after everything already seen, so the next run picks it up."""
        client = self._client(request.config_id)
        creds = await client.credentials()
        cursor = json.loads(request.cursor) if request.cursor else {}
        limit = min(request.page_size or 100, MAX_PAGE)
        body: dict = {
            "locationId": creds.location_id,
            "pageLimit": limit,
            "sort": [{"field": "dateUpdated", "direction": "asc"}],
        }
        if cursor.get("search_after"):
            body["searchAfter"] = cursor["search_after"]
        page = await client.request("POST", "/contacts/search", json=body)
        contacts = page.get("contacts")
        if not isinstance(contacts, list):
            raise ApplicationError("malformed search page", type="VendorMalformedPage")
        records = []
        for contact in contacts:
            search_after = contact.pop("searchAfter", None)
            if search_after:
                cursor = {"search_after": search_after}
            records.append(_struct(contact))
        return pb.FetchChangesResponse(
            records=records,
            next_cursor=json.dumps(cursor) if cursor else request.cursor,
            has_more=len(contacts) == limit,
            vendor_requests=client.requests,
        )

    async def upsert_batch(self, request: pb.UpsertBatchRequest) -> pb.UpsertBatchResponse:
        """Updates linked contacts by id and upserts new ones (GHL matches on email, then phone),
        so a retried batch updates what the first attempt created instead of duplicating it."""
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
                    if error.status >= 500 or error.status == 429:
                        raise
                    return pb.UpsertResult(
                        ref=item.ref, success=False, error_reason=error.reason, error_message=error.message
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
        except* GhlError as errors:
            # Unavailable after paced retries: fail the activity so Temporal retries the batch.
            raise errors.exceptions[0] from None
        return pb.UpsertBatchResponse(results=[t.result() for t in tasks], vendor_requests=client.requests)

    async def check_health(self, request: pb.CheckHealthRequest) -> pb.CheckHealthResponse:
        client = self._client(request.config_id)
        creds = await client.credentials()
        try:
            await client.request("POST", "/contacts/search", json={"locationId": creds.location_id, "pageLimit": 1})
        except GhlError as error:
            return pb.CheckHealthResponse(healthy=False, detail=error.reason)
        return pb.CheckHealthResponse(healthy=True, detail="ok")
