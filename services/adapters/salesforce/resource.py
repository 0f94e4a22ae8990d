"""What every Salesforce entity module (patients, appointments) shares: the resource contract the
adapter dispatches to, and the sObject read (changes.py) and write (collections.py) paths."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from temporalio.exceptions import ApplicationError

from libs.protos.concord.adapter.v1 import adapter_pb2 as pb
from services.adapters.common import struct
from services.adapters.salesforce import changes
from services.adapters.salesforce.client import SalesforceClient, SalesforceError
from services.adapters.salesforce.collections import Collections
from services.adapters.salesforce.schemas import SObjectResource

T = TypeVar("T")


class Resource(Protocol):
    """One entity type at Salesforce; the adapter picks it by the request's entity_type."""

    async def fetch(self, client: SalesforceClient, request: pb.FetchChangesRequest) -> pb.FetchChangesResponse: ...

    async def upsert(self, client: SalesforceClient, request: pb.UpsertBatchRequest) -> pb.UpsertBatchResponse: ...

    async def get(self, client: SalesforceClient, request: pb.GetRecordsRequest) -> pb.GetRecordsResponse: ...

    async def delete(self, client: SalesforceClient, request: pb.DeleteRecordsRequest) -> pb.DeleteRecordsResponse: ...


async def vendor_call(run: Callable[[], Awaitable[T]]) -> T:
    """A whole request Salesforce refused with a 4xx is our request's fault (a field the org lacks,
    a permission): retrying cannot help. Its 5xx outside the retried statuses can."""
    try:
        return await run()
    except SalesforceError as error:
        detail = f"{error.code} on {', '.join(error.fields)}" if error.fields else error.code
        if error.status >= 500:
            raise ApplicationError(f"Salesforce failed: {detail}", type="VendorUnavailable") from None
        raise ApplicationError(f"Salesforce refused: {detail}", type="VendorRejected", non_retryable=True) from None


class SObjectEntity:
    """An entity that is one sObject: (SystemModstamp, Id) pages, Collections upserts on its external id."""

    def __init__(self, sobject: SObjectResource, settle_seconds: float = changes.SETTLE_SECONDS) -> None:
        self.sobject = sobject
        self.settle_seconds = settle_seconds

    async def fetch(self, client: SalesforceClient, request: pb.FetchChangesRequest) -> pb.FetchChangesResponse:
        """Records in (SystemModstamp, Id) order after the cursor; see changes.py for the rule."""
        after = changes.parse_cursor(request.cursor, self.sobject.key_prefix)
        limit = min(max(request.page_size or 100, 1), changes.MAX_PAGE)
        page = await vendor_call(lambda: changes.fetch(client, self.sobject, after, limit, self.settle_seconds))
        return pb.FetchChangesResponse(
            records=[struct(r) for r in page.records],
            next_cursor=changes.cursor_json(page.last),
            has_more=page.has_more,
            vendor_requests=client.requests,
        )

    async def write(self, client: SalesforceClient, items: list[pb.UpsertItem]) -> list[pb.UpsertResult]:
        return await vendor_call(lambda: Collections(self.sobject).upsert(client, items))

    async def upsert(self, client: SalesforceClient, request: pb.UpsertBatchRequest) -> pb.UpsertBatchResponse:
        """Upserts on the hub's id and updates linked records by Id, 200 a call; a record Salesforce
        refuses fails alone, with its errorCode and field names."""
        results = await self.write(client, list(request.items))
        return pb.UpsertBatchResponse(results=results, vendor_requests=client.requests)

    async def get(self, client: SalesforceClient, request: pb.GetRecordsRequest) -> pb.GetRecordsResponse:
        """The records of these ids as they are now, in fetch's shape (its SELECT with Id IN (...)),
        each once; the ids of no live record of this entity in missing_ids, in request order. An id
        that is not a Salesforce id, or is another sObject's, is missing without being sent."""
        asked = list(dict.fromkeys(request.external_ids))
        canonical = {raw: changes.canonical_id(raw) for raw in asked}
        prefix = self.sobject.key_prefix
        wanted = list(dict.fromkeys(c for c in canonical.values() if c and c.startswith(prefix)))
        found = await vendor_call(lambda: changes.by_ids(client, self.sobject, wanted)) if wanted else {}
        response = pb.GetRecordsResponse()
        returned: set[str] = set()
        for raw in asked:
            record_id = canonical[raw]
            if record_id not in found:
                response.missing_ids.append(raw)
            elif record_id not in returned:  # a 15- and an 18-character form of one record: once
                returned.add(record_id)
                response.records.append(struct(found[record_id]))
        gone = [canonical[raw] for raw in response.missing_ids if canonical[raw] and canonical[raw].startswith(prefix)]
        if gone:  # merged into another record (a merge's loser is a deleted record with MasterRecordId)
            masters = await vendor_call(lambda: changes.merged_into(client, self.sobject, gone))
            for raw in response.missing_ids:
                if canonical[raw] in masters:
                    response.merged_into[raw] = masters[canonical[raw]]
        response.vendor_requests = client.requests
        return response

    async def delete(self, client: SalesforceClient, request: pb.DeleteRecordsRequest) -> pb.DeleteRecordsResponse:
        """Collections deletes by Id, 200 a call; one already gone counts as deleted."""
        ids = list(request.external_ids)
        results = await vendor_call(lambda: Collections(self.sobject).delete(client, ids))
        return pb.DeleteRecordsResponse(results=results, vendor_requests=client.requests)
