"""The Zenoti adapter: guests, appointments, the catalog and memberships <-> the hub, page by page,
paced under the organisation's 60 a minute; provider availability from the booking flow's slots;
guests and appointments by id (get_records). No delete_records: Zenoti's API deletes neither.

Each entity is a resource object (guests.py for patients, appointments.py + booking.py, services.py,
memberships.py); adding one is adding a module and one entry in ``resources``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from typing import Any, Protocol

import httpx
from google.protobuf import json_format
from temporalio.exceptions import ApplicationError

from libs.protos.concord.adapter.v1 import adapter_pb2 as pb
from libs.protos.concord.common.v1 import common_pb2
from libs.protos.concord.registry.v1 import registry_pb2
from services.adapters import AdapterContext
from services.adapters.common import access_token, struct, without_values
from services.adapters.zenoti import booking, schemas
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
        self,
        client: ZenotiClient,
        center_id: str,
        external_id: str,
        record: dict,
        options: registry_pb2.VendorOptions | None = None,
    ) -> tuple[dict, bool]: ...


# What a GET by a well-formed id answers when Zenoti holds no such record: 404 "Guest not found."
# (the sandbox's choice; the docs say nothing), or 400 "Invalid guest id." should Zenoti refuse the id.
# Nothing else in such a GET could be refused.
ABSENT = (400, 404)
_GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)


def _record_key(external_id: str) -> str | None:
    """A Zenoti id (a GUID, matched in any case) lower-cased; None for anything else."""
    return external_id.lower() if _GUID.fullmatch(external_id) else None


def _id_of(written: dict) -> str:
    """A guest's ``id`` or an appointment's ``appointment_id``."""
    return str(written.get("id") or written.get("appointment_id") or "")


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
        self._pacers = pacers or Pacers(
            enabled=context.settings.vendor_pacing, share=context.settings.vendor_rate_share
        )
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

    async def get_records(self, request: pb.GetRecordsRequest) -> pb.GetRecordsResponse:
        """Guests (``GET /v1/guests/{id}``) or appointments (``GET /v1/appointments/{id}``) by id as
        they are now, each the object a pull returns. One paced call per distinct id (GUIDs that
        differ only in case are one record); an id that is not a GUID is missing without a call, and
        so is one Zenoti answers 404 (or 400, its refusal of the id) for."""
        reader = self._reader(request.entity_type)
        client = self._client(request.config_id)
        asked = [(external_id, _record_key(external_id)) for external_id in request.external_ids]
        ids = {key: external_id for external_id, key in reversed(asked) if key is not None}  # first spelling
        gate = asyncio.Semaphore(WRITE_CONCURRENCY)

        async def read(external_id: str) -> dict | None:
            async with gate:
                try:
                    return await reader(client, external_id)
                except ZenotiError as error:
                    if error.status not in ABSENT:  # the record's absence, not the connection's
                        raise
                    return None

        found: dict[str, dict | None] = {}
        if ids:
            try:
                async with asyncio.TaskGroup() as group:
                    tasks = {key: group.create_task(read(external_id)) for key, external_id in ids.items()}
            except ExceptionGroup as failures:
                permanent = [e for e in failures.exceptions if isinstance(e, ApplicationError) and e.non_retryable]
                raise (permanent or failures.exceptions)[0] from None
            found = {key: task.result() for key, task in tasks.items()}
        response = pb.GetRecordsResponse()
        answered: set[str] = set()
        for external_id, key in asked:  # request order, each id once
            seen = key if key is not None else f"not-a-guid:{external_id}"
            if seen in answered:
                continue
            answered.add(seen)
            record = found.get(key) if key is not None else None
            if record is None:
                response.missing_ids.append(external_id)
            else:
                response.records.append(struct(record))
        response.vendor_requests = client.requests
        return response

    def _reader(self, entity_type: int) -> Callable[[ZenotiClient, str], Awaitable[dict]]:
        read = getattr(self._resource(entity_type), "read", None)
        if read is None:
            raise ApplicationError(
                "Zenoti reads guests and appointments by id only", type="InvalidArgument", non_retryable=True
            )
        return read

    async def upsert_batch(self, request: pb.UpsertBatchRequest) -> pb.UpsertBatchResponse:
        """Writes each record through its resource: guests are updated (GET + PUT) or created after a
        search, appointments booked through the booking flow after a look at the guest's day; either
        way what Zenoti already holds is adopted, so a retried batch duplicates nothing."""
        resource = self._resource(request.entity_type)
        client = self._client(request.config_id)
        creds = await client.credentials()
        gate = asyncio.Semaphore(WRITE_CONCURRENCY)

        async def write(item: pb.UpsertItem) -> pb.UpsertResult:
            record = schemas.whole_numbers(json_format.MessageToDict(item.record))
            async with gate:
                try:
                    written, created = await resource.write(
                        client, creds.center_id, item.external_id, record, request.options
                    )
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
                ref=item.ref,
                external_id=_id_of(written),
                success=True,
                created=created,
                record=struct(written),
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

    async def get_availability(self, request: pb.GetAvailabilityRequest) -> pb.GetAvailabilityResponse:
        """Free slots of a service (with a therapist, or any) for a guest, day by day; nothing held."""
        if not (request.patient_external_id and request.service_external_id):
            raise ApplicationError("a guest and a service are required", type="InvalidArgument", non_retryable=True)
        try:
            first = date.fromisoformat(request.date)
        except ValueError:
            raise ApplicationError("date must be YYYY-MM-DD", type="InvalidArgument", non_retryable=True) from None
        if not 1 <= request.days <= 7:
            raise ApplicationError("days must be 1 to 7", type="InvalidArgument", non_retryable=True)
        zone = booking.center_zone(request.options)
        client = self._client(request.config_id)
        creds = await client.credentials()
        booker = booking.Booker(client, creds.center_id, zone)
        try:
            found = await booker.available(
                request.patient_external_id,
                request.service_external_id,
                request.provider_external_id,
                first,
                request.days,
            )
        except ZenotiError as error:
            if not error.about_the_record:
                raise
            # Zenoti's own words ("Invalid service id.", "... past date."): they quote no record value.
            raise ApplicationError(error.message, type="InvalidArgument", non_retryable=True) from None
        slots = []
        for start, local in found:
            slot = pb.AvailableSlot(local_start=local)
            slot.start.FromDatetime(start)
            slots.append(slot)
        return pb.GetAvailabilityResponse(slots=slots, vendor_requests=client.requests)

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
