"""The generic FHIR R4 EMR adapter: resources <-> the hub by `_lastUpdated` search and versioned writes."""

from __future__ import annotations

import asyncio
import re
from urllib.parse import quote

import httpx
from google.protobuf import json_format
from temporalio.exceptions import ApplicationError

from libs.protos.concord.adapter.v1 import adapter_pb2 as pb
from services.adapters import AdapterContext
from services.adapters.common import access_token, struct
from services.adapters.fhir import records, search
from services.adapters.fhir.client import Credentials, FhirClient, FhirError
from services.adapters.fhir.resources import PATIENT, RESOURCES, FhirResource
from services.adapters.fhir.search import ID
from services.adapters.fhir.writes import RecordWriter, plain

# The sandbox (like most EMRs) has no batch/transaction Bundle: one request per record (writes and deletes),
# several in flight.
WRITE_CONCURRENCY = 8
DEFAULT_PAGE = 100
MAX_COUNT = 500
_TENANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,63}$")


def _resource(entity_type: int) -> FhirResource:
    resource = RESOURCES.get(entity_type)
    if resource is None:
        raise ApplicationError(
            "the FHIR adapter does not serve this entity type", type="InvalidArgument", non_retryable=True
        )
    return resource


def base_url(api_base_url: str, tenant: str) -> str:
    """[base] of the config's FHIR server: the definition's base, plus the tenant path segment
    (the connection's external_account_id) on multi-tenant servers such as HAPI's partitions."""
    if not api_base_url:
        raise ApplicationError("the connection names no FHIR base URL", type="NotConnected", non_retryable=True)
    if tenant and not _TENANT.match(tenant):
        raise ApplicationError(
            "the connection's tenant is not a path segment", type="InvalidArgument", non_retryable=True
        )
    return api_base_url.rstrip("/") + (f"/{quote(tenant)}" if tenant else "")


def _activity_error(error: FhirError) -> ApplicationError:
    """Only the status and reason leave the adapter: diagnostics may quote record values."""
    message = f"{error.reason} (HTTP {error.status})"
    if error.status in (0, 401, 429) or error.status >= 500:
        return ApplicationError(message, type="VendorUnavailable")
    # The server refuses the request itself (scope, tenant, unsupported search): a retry would too.
    return ApplicationError(message, type="VendorRejected", non_retryable=True)


def _first_failure(failures: ExceptionGroup) -> BaseException:
    """A batch fails as its first failure, non-retryable ones first."""
    errors = [_activity_error(e) if isinstance(e, FhirError) else e for e in failures.exceptions]
    permanent = [e for e in errors if isinstance(e, ApplicationError) and e.non_retryable]
    return (permanent or errors)[0]


class FhirAdapter:
    vendor = "fhir"

    def __init__(
        self, context: AdapterContext, http: httpx.AsyncClient | None = None, backoff_seconds: float = 0.5
    ) -> None:
        self._context = context
        self._http = http or httpx.AsyncClient(timeout=httpx.Timeout(30.0))
        self._backoff_seconds = backoff_seconds

    async def aclose(self) -> None:
        await self._http.aclose()

    def _client(self, config_id: str) -> FhirClient:
        async def tokens(force: bool) -> Credentials:
            response = await access_token(self._context.connections, config_id, force)
            return Credentials(
                response.access_token,
                response.token_type or "Bearer",
                base_url(response.api_base_url, response.external_account_id),
            )

        return FhirClient(self._http, tokens, backoff_seconds=self._backoff_seconds)

    async def fetch_changes(self, request: pb.FetchChangesRequest) -> pb.FetchChangesResponse:
        resource = _resource(request.entity_type)
        try:
            cursor = search.Cursor.parse(request.cursor)
        except ValueError:
            raise ApplicationError("not a FHIR cursor", type="InvalidArgument", non_retryable=True) from None
        client = self._client(request.config_id)
        limit = min(request.page_size or DEFAULT_PAGE, MAX_COUNT)
        try:
            found = await search.changes(client, resource.type, cursor, limit)
        except FhirError as error:
            raise _activity_error(error) from None
        return pb.FetchChangesResponse(
            records=[struct(r) for r in found.records],
            next_cursor=found.cursor.dump(),
            has_more=found.has_more,
            vendor_requests=client.requests,
        )

    async def upsert_batch(self, request: pb.UpsertBatchRequest) -> pb.UpsertBatchResponse:
        writer = RecordWriter(self._client(request.config_id), _resource(request.entity_type))
        client = writer.client
        await client.credentials()  # a connection that cannot give a token fails the batch once, not per record
        gate = asyncio.Semaphore(WRITE_CONCURRENCY)

        async def write(item: pb.UpsertItem) -> pb.UpsertResult:
            async with gate:
                return await writer.write(item, plain(json_format.MessageToDict(item.record)))

        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(write(item)) for item in request.items]
        except ExceptionGroup as failures:
            # Temporal retries the batch, which conditional creates and If-Match updates make safe.
            raise _first_failure(failures) from None
        return pb.UpsertBatchResponse(results=[t.result() for t in tasks], vendor_requests=client.requests)

    async def get_records(self, request: pb.GetRecordsRequest) -> pb.GetRecordsResponse:
        """Resources by id as they are now, in the shape fetch_changes returns (records.py)."""
        reader = records.RecordReader(self._client(request.config_id), _resource(request.entity_type))
        wanted = list(dict.fromkeys(request.external_ids))
        try:
            # An id FHIR cannot have names no resource: missing without asking the server.
            found = await reader.read([i for i in wanted if ID.match(i)])
        except FhirError as error:
            raise _activity_error(error) from None
        return pb.GetRecordsResponse(
            records=[struct(found[i]) for i in wanted if i in found],
            missing_ids=[i for i in wanted if i not in found],
            vendor_requests=reader.client.requests,
        )

    async def delete_records(self, request: pb.DeleteRecordsRequest) -> pb.DeleteRecordsResponse:
        """`DELETE [base]/<type>/<id>` per id, WRITE_CONCURRENCY in flight; one already gone is deleted."""
        resource = _resource(request.entity_type)
        client = self._client(request.config_id)
        ids = list(dict.fromkeys(request.external_ids))
        if ids:
            await client.credentials()  # a connection that cannot give a token fails the batch once
        gate = asyncio.Semaphore(WRITE_CONCURRENCY)

        async def delete(external_id: str) -> pb.DeleteResult:
            async with gate:
                return await records.delete(client, resource, external_id)

        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(delete(i)) for i in ids]
        except ExceptionGroup as failures:
            # A retried batch is harmless: deletes of what is already gone succeed.
            raise _first_failure(failures) from None
        return pb.DeleteRecordsResponse(results=[t.result() for t in tasks], vendor_requests=client.requests)

    async def check_health(self, request: pb.CheckHealthRequest) -> pb.CheckHealthResponse:
        """An R4 CapabilityStatement, and a token the server accepts for a count-only search (no PHI read)."""
        client = self._client(request.config_id)
        try:
            metadata = (await client.send("GET", "metadata")).json()
            version = metadata.get("fhirVersion", "") if isinstance(metadata, dict) else ""
            if not str(version).startswith("4.0"):
                return pb.CheckHealthResponse(healthy=False, detail="the server does not speak FHIR R4 (4.0.x)")
            # Patient only: a config may be granted only the types it syncs (no Appointment scope).
            await client.send("GET", PATIENT.type, params={"_summary": "count"})
        except FhirError as error:
            return pb.CheckHealthResponse(healthy=False, detail=error.reason)
        except ValueError:
            return pb.CheckHealthResponse(healthy=False, detail="the CapabilityStatement is not JSON")
        except ApplicationError as error:
            if not error.non_retryable:
                raise
            return pb.CheckHealthResponse(healthy=False, detail=error.message)
        return pb.CheckHealthResponse(healthy=True, detail="ok")
