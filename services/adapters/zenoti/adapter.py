"""The Zenoti adapter: guests <-> the hub, page by page, paced under the organisation's 60 a minute.

Each entity is a resource object (guests.py for patients); adding appointments or the catalog is
adding a module and one entry in ``resources``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx
from google.protobuf import json_format
from temporalio.exceptions import ApplicationError

from libs.protos.concord.adapter.v1 import adapter_pb2 as pb
from libs.protos.concord.common.v1 import common_pb2
from services.adapters import AdapterContext
from services.adapters.common import access_token, struct, without_values
from services.adapters.zenoti import schemas
from services.adapters.zenoti.appointments import Appointments
from services.adapters.zenoti.client import Credentials, Pacers, ZenotiClient, ZenotiError
from services.adapters.zenoti.guests import Guests
from services.adapters.zenoti.memberships import Memberships
from services.adapters.zenoti.paging import Step
from services.adapters.zenoti.services import Services

# Several writes in flight hide latency; the organisation's pacer decides how many calls go out.
WRITE_CONCURRENCY = 4


class Resource(Protocol):
    """One entity type at Zenoti: its cursor, its change pages and its writes."""

    def parse_cursor(self, raw: str) -> Any: ...

    async def fetch(self, client: ZenotiClient, center_id: str, cursor: Any, size: int, now: datetime) -> Step: ...

    async def write(
        self, client: ZenotiClient, center_id: str, external_id: str, record: dict
    ) -> tuple[dict, bool]: ...


def _utcnow() -> datetime:
    return datetime.now(UTC)


class ZenotiAdapter:
    vendor = "zenoti"

    def __init__(
        self,
        context: AdapterContext,
        http: httpx.AsyncClient | None = None,
        backoff_seconds: float = 0.5,
        pacers: Pacers | None = None,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._context = context
        self._http = http or httpx.AsyncClient(timeout=httpx.Timeout(30.0))
        self._pacers = pacers or Pacers(enabled=context.settings.vendor_pacing)
        self._backoff_seconds = backoff_seconds
        self._clock = clock
        self.resources: dict[int, Resource] = {
            common_pb2.ENTITY_TYPE_PATIENT: Guests(),
            common_pb2.ENTITY_TYPE_SERVICE: Services(),
            common_pb2.ENTITY_TYPE_APPOINTMENT: Appointments(),
            common_pb2.ENTITY_TYPE_MEMBERSHIP: Memberships(),
        }

    async def aclose(self) -> None:
        await self._http.aclose()

    def _resource(self, entity_type: int) -> Resource:
        resource = self.resources.get(entity_type)
        if resource is None:
            name = common_pb2.EntityType.Name(entity_type) if entity_type in common_pb2.EntityType.values() else "?"
            raise ApplicationError(f"Zenoti does not sync {name}", type="InvalidArgument", non_retryable=True)
        return resource

    def _client(self, config_id: str) -> ZenotiClient:
        async def tokens(force: bool) -> Credentials:
            response = await access_token(self._context.connections, config_id, force)
            if not response.external_account_id:
                raise ApplicationError("CENTER_ID_MISSING", type="NotConnected", non_retryable=True)
            return Credentials(
                response.access_token, response.token_type, response.external_account_id, response.api_base_url
            )

        return ZenotiClient(self._http, tokens, self._pacers, backoff_seconds=self._backoff_seconds)

    async def fetch_changes(self, request: pb.FetchChangesRequest) -> pb.FetchChangesResponse:
        resource = self._resource(request.entity_type)
        cursor = resource.parse_cursor(request.cursor)
        client = self._client(request.config_id)
        creds = await client.credentials()
        step = await resource.fetch(client, creds.center_id, cursor, request.page_size or 100, self._clock())
        return pb.FetchChangesResponse(
            records=[struct(r) for r in step.records],
            next_cursor=step.cursor.encode(),
            has_more=step.has_more,
            vendor_requests=client.requests,
        )

    async def upsert_batch(self, request: pb.UpsertBatchRequest) -> pb.UpsertBatchResponse:
        """Updates linked guests (GET + PUT) and creates new ones after a search, adopting the guest
        Zenoti already holds, so a retried batch duplicates nothing."""
        resource = self._resource(request.entity_type)
        client = self._client(request.config_id)
        creds = await client.credentials()
        gate = asyncio.Semaphore(WRITE_CONCURRENCY)

        async def write(item: pb.UpsertItem) -> pb.UpsertResult:
            record = schemas.whole_numbers(json_format.MessageToDict(item.record))
            async with gate:
                try:
                    guest, created = await resource.write(client, creds.center_id, item.external_id, record)
                except ZenotiError as error:
                    if not error.about_the_record:
                        raise
                    return pb.UpsertResult(
                        ref=item.ref,
                        success=False,
                        error_reason=error.reason,
                        error_message=without_values(error.message, record),
                    )
            return pb.UpsertResult(
                ref=item.ref, external_id=guest["id"], success=True, created=created, record=struct(guest)
            )

        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(write(item)) for item in request.items]
        except ExceptionGroup as failures:
            # The activity fails as the first failure itself, so a non-retryable one stays so;
            # otherwise Temporal retries the batch, which the search-before-create makes safe.
            permanent = [e for e in failures.exceptions if isinstance(e, ApplicationError) and e.non_retryable]
            raise (permanent or failures.exceptions)[0] from None
        return pb.UpsertBatchResponse(results=[t.result() for t in tasks], vendor_requests=client.requests)

    async def check_health(self, request: pb.CheckHealthRequest) -> pb.CheckHealthResponse:
        """The key works and names the connection's center: ``GET /v1/centers/{center_id}``."""
        client = self._client(request.config_id)
        try:
            creds = await client.credentials()
            await client.request("GET", f"/v1/centers/{creds.center_id}")
        except ZenotiError as error:
            return pb.CheckHealthResponse(healthy=False, detail=error.reason)
        except ApplicationError as error:
            if not error.non_retryable:
                raise
            return pb.CheckHealthResponse(healthy=False, detail=error.message)
        return pb.CheckHealthResponse(healthy=True, detail="ok")
