"""The Salesforce Health Cloud adapter: Person Accounts <-> the hub, a query page or a 200-record
collection per API call, paced under the org's daily API allowance."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import httpx
from google.protobuf import struct_pb2
from temporalio.exceptions import ApplicationError

from libs.protos.concord.adapter.v1 import adapter_pb2 as pb
from libs.protos.concord.common.v1 import common_pb2
from services.adapters import AdapterContext
from services.adapters.common import access_token
from services.adapters.salesforce import changes, schemas
from services.adapters.salesforce.client import (
    DATA_PATH,
    AllowancePolicy,
    Allowances,
    Credentials,
    SalesforceClient,
    SalesforceError,
)
from services.adapters.salesforce.collections import Collections

# Entity type -> the sObject that carries it.
RESOURCES: dict[int, schemas.SObjectResource] = {common_pb2.ENTITY_TYPE_PATIENT: schemas.PERSON_ACCOUNTS}

T = TypeVar("T")


def _struct(record: dict) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(record)
    return message


def _resource(entity_type: int) -> schemas.SObjectResource:
    if entity_type not in RESOURCES:
        raise ApplicationError("Salesforce syncs patients only", type="InvalidArgument", non_retryable=True)
    return RESOURCES[entity_type]


async def _vendor_call(run: Callable[[], Awaitable[T]]) -> T:
    """A whole request Salesforce refused with a 4xx is our request's fault (a field the org lacks,
    a permission): retrying cannot help. Its 5xx outside the retried statuses can."""
    try:
        return await run()
    except SalesforceError as error:
        detail = f"{error.code} on {', '.join(error.fields)}" if error.fields else error.code
        if error.status >= 500:
            raise ApplicationError(f"Salesforce failed: {detail}", type="VendorUnavailable") from None
        raise ApplicationError(f"Salesforce refused: {detail}", type="VendorRejected", non_retryable=True) from None


class SalesforceAdapter:
    vendor = "salesforce"

    def __init__(
        self,
        context: AdapterContext,
        http: httpx.AsyncClient | None = None,
        backoff_seconds: float = 0.5,
        allowance: AllowancePolicy | None = None,
        settle_seconds: float = changes.SETTLE_SECONDS,
    ) -> None:
        self._context = context
        self._http = http or httpx.AsyncClient(timeout=httpx.Timeout(60.0))
        self._backoff_seconds = backoff_seconds
        self.allowances = Allowances(allowance or AllowancePolicy())
        self._settle_seconds = settle_seconds

    async def aclose(self) -> None:
        await self._http.aclose()

    def _client(self, config_id: str) -> SalesforceClient:
        async def tokens(force: bool) -> Credentials:
            response = await access_token(self._context.connections, config_id, force)
            if not response.api_base_url:
                raise ApplicationError("the connection names no instance URL", type="NotConnected", non_retryable=True)
            return Credentials(response.access_token, response.token_type, response.api_base_url)

        return SalesforceClient(self._http, tokens, self.allowances, backoff_seconds=self._backoff_seconds)

    async def fetch_changes(self, request: pb.FetchChangesRequest) -> pb.FetchChangesResponse:
        """Records in (SystemModstamp, Id) order after the cursor; see changes.py for the rule."""
        resource = _resource(request.entity_type)
        after = changes.parse_cursor(request.cursor)
        limit = min(max(request.page_size or 100, 1), changes.MAX_PAGE)
        client = self._client(request.config_id)
        page = await _vendor_call(lambda: changes.fetch(client, resource, after, limit, self._settle_seconds))
        return pb.FetchChangesResponse(
            records=[_struct(r) for r in page.records],
            next_cursor=changes.cursor_json(page.last),
            has_more=page.has_more,
            vendor_requests=client.requests,
        )

    async def upsert_batch(self, request: pb.UpsertBatchRequest) -> pb.UpsertBatchResponse:
        """Upserts on the hub's id (Concord_Patient_Id__c) and updates linked records by Id, 200 a call;
        a record Salesforce refuses fails alone, with its errorCode and field names."""
        resource = _resource(request.entity_type)
        client = self._client(request.config_id)
        results = await _vendor_call(lambda: Collections(resource).upsert(client, list(request.items)))
        return pb.UpsertBatchResponse(results=results, vendor_requests=client.requests)

    async def check_health(self, request: pb.CheckHealthRequest) -> pb.CheckHealthResponse:
        client = self._client(request.config_id)
        try:
            creds = await client.credentials()
            await client.request("GET", f"{DATA_PATH}/limits")
        except SalesforceError as error:
            return pb.CheckHealthResponse(healthy=False, detail=error.code)
        except ApplicationError as error:
            if error.non_retryable or error.type in ("VendorRateLimited", "VendorAllowanceLow"):
                return pb.CheckHealthResponse(healthy=False, detail=error.message)
            raise
        allowance = self.allowances(creds.instance_url)
        return pb.CheckHealthResponse(healthy=True, detail=f"ok; daily API usage {allowance.used}/{allowance.max}")
