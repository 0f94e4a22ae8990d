"""The declarative adapter: any plain REST vendor whose registry definition carries
``extra.declarative`` (README.md), with no Python of its own.

It reads the definition from the registry over gRPC (config -> integration_type -> definition,
cached) and serves each entity through the definition's resource for it: one generic
``RestResource`` per entity, so a new entity is a new resource in the document.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from typing import Any

import httpx
from google.protobuf import json_format
from temporalio.exceptions import ApplicationError

from libs.errors import ConcordError, InvalidArgument, NotFound
from libs.grpc_client import open_channel
from libs.protos.concord.adapter.v1 import adapter_pb2 as pb
from libs.protos.concord.common.v1 import common_pb2
from libs.protos.concord.registry.v1 import registry_pb2_grpc
from services.adapters import AdapterContext
from services.adapters.common import access_token, struct, without_values
from services.adapters.declarative.catalog import DefinitionCatalog
from services.adapters.declarative.client import Credentials, DeclarativeClient, Pacers, VendorError
from services.adapters.declarative.definition import Declarative, Resource, get_path
from services.adapters.declarative.pagination import PullCursor, malformed, read_page


def _json_values(value: Any) -> Any:
    """Struct carries every number as a double: a whole 3.0 goes back to the vendor as 3."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _json_values(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_values(v) for v in value]
    return value


def _body(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        raise malformed("a body that is not JSON") from None


def idempotency_key(config_id: str, ref: str) -> str:
    """The same item of a retried batch (same config, same ref) sends the same key."""
    return hashlib.sha256(f"{config_id}\n{ref}".encode()).hexdigest()[:40]


@dataclass
class RestResource:
    """One entity of one vendor, as its definition describes it."""

    resource: Resource
    client: DeclarativeClient

    async def fetch(self, cursor: PullCursor, page_size: int) -> tuple[list[dict], PullCursor, bool]:
        listing = self.resource.list
        limit = min(page_size or 100, listing.max_page_size)
        if cursor.next is not None and listing.next_type == "link":
            creds = await self.client.credentials()
            url = cursor.next if "://" in cursor.next else f"{self.client.base_url(creds)}{cursor.next}"
            if not self.client.same_origin(creds, url):
                raise ApplicationError("the next link leaves the API host", type="InvalidArgument", non_retryable=True)
            response = await self.client.request(listing.method, url, absolute=True)
        else:
            query = listing.query(cursor.query_values(limit))
            if listing.method == "GET":
                response = await self.client.request("GET", listing.path, params=query)
            else:
                response = await self.client.request(listing.method, listing.path, json=query)
        return read_page(listing, self.resource.id_field, _body(response), limit, cursor)

    async def write(self, config_id: str, item: pb.UpsertItem) -> pb.UpsertResult:
        record = _json_values(json_format.MessageToDict(item.record))
        try:
            if item.external_id:
                operation, record_id = self.resource.update, item.external_id
                response = await self.client.request(operation.method, operation.url_path(record_id), json=record)
                created = False
            else:
                operation, record_id = self.resource.create, ""
                key = {operation.idempotency_key_header: idempotency_key(config_id, item.ref)}
                response = await self.client.request(operation.method, operation.path, json=record, headers=key)
                created = response.status_code == operation.created_status
            stored = await self._stored(operation.result, response, record_id, record)
        except VendorError as error:
            return pb.UpsertResult(
                ref=item.ref,
                success=False,
                error_reason=error.reason,
                error_message=without_values(error.message, record),
            )
        return pb.UpsertResult(
            ref=item.ref,
            external_id=str(stored[self.resource.id_field]),
            success=True,
            created=created,
            record=struct(stored),
        )

    async def _stored(self, result: str, response: httpx.Response, record_id: str, sent: dict) -> dict:
        """The vendor's record after a write: from the answer, else read back, else what was sent."""
        body = _body(response)
        if body is None and record_id:
            if self.resource.get is None:
                return {**sent, self.resource.id_field: record_id}
            body = _body(await self.client.request("GET", self.resource.get.url_path(record_id)))
            result = self.resource.get.result
        found, stored = get_path(body, result)
        record_id_found = stored.get(self.resource.id_field) if isinstance(stored, dict) else None
        if (
            not found
            or not isinstance(stored, dict)
            or record_id_found in (None, "")
            or isinstance(record_id_found, bool)
        ):
            # Retryable: the write happened or not; a retry updates or replays it under the same key.
            raise ApplicationError("the vendor's answer to a write holds no record id", type="VendorMalformedResponse")
        return stored


class DeclarativeAdapter:
    """``vendor`` is the task queue's vendor; a config of another vendor is refused."""

    def __init__(
        self,
        context: AdapterContext,
        vendor: str = "",
        http: httpx.AsyncClient | None = None,
        backoff_seconds: float = 0.5,
        definition_ttl_seconds: float = 60.0,
    ) -> None:
        self.vendor = vendor
        self._context = context
        self._http = http or httpx.AsyncClient(timeout=httpx.Timeout(30.0))
        self._channel = open_channel(context.settings.registry_address)
        self._catalog = DefinitionCatalog(registry_pb2_grpc.RegistryServiceStub(self._channel), definition_ttl_seconds)
        self._pacers = Pacers(enabled=context.settings.vendor_pacing, share=context.settings.vendor_rate_share)
        self._backoff_seconds = backoff_seconds

    async def aclose(self) -> None:
        await self._http.aclose()
        await self._channel.close()

    async def _definition(self, config_id: str) -> Declarative:
        try:
            integration_type = await self._catalog.integration_type(config_id)
            if self.vendor and integration_type != self.vendor:
                raise ApplicationError(
                    f"the config is not a {self.vendor} config", type="InvalidArgument", non_retryable=True
                )
            found = await self._catalog.by_type(integration_type)
        except (NotFound, InvalidArgument) as error:
            raise ApplicationError(error.reason, type=type(error).__name__, non_retryable=True) from None
        except ConcordError as error:
            raise ApplicationError(error.reason, type="RegistryUnavailable") from None
        if found is None:
            raise ApplicationError(
                f"{integration_type} has no declarative definition", type="InvalidArgument", non_retryable=True
            )
        return found

    async def _resource(self, config_id: str, entity_type: int) -> RestResource:
        definition = await self._definition(config_id)
        name = common_pb2.EntityType.Name(entity_type) if entity_type in common_pb2.EntityType.values() else ""
        resource = definition.resource(name)
        if resource is None:
            raise ApplicationError(
                f"{definition.integration_type} does not sync this entity type",
                type="InvalidArgument",
                non_retryable=True,
            )
        return RestResource(resource, self._client(config_id, definition))

    def _client(self, config_id: str, definition: Declarative) -> DeclarativeClient:
        async def tokens(force: bool) -> Credentials:
            response = await access_token(self._context.connections, config_id, force)
            return Credentials(response.access_token, response.api_base_url)

        pacer = self._pacers(definition, config_id)
        return DeclarativeClient(self._http, definition, tokens, pacer, backoff_seconds=self._backoff_seconds)

    async def fetch_changes(self, request: pb.FetchChangesRequest) -> pb.FetchChangesResponse:
        resource = await self._resource(request.config_id, request.entity_type)
        cursor = PullCursor.parse(request.cursor)
        try:
            records, after, more = await resource.fetch(cursor, request.page_size)
        except VendorError as error:
            # A refused read is our request's fault (bad parameter, gone endpoint): a retry repeats it.
            raise ApplicationError(error.reason, type="VendorRejected", non_retryable=True) from None
        return pb.FetchChangesResponse(
            records=[struct(r) for r in records],
            next_cursor=after.dump(),
            has_more=more,
            vendor_requests=resource.client.requests,
        )

    async def upsert_batch(self, request: pb.UpsertBatchRequest) -> pb.UpsertBatchResponse:
        """Creates go under an idempotency key made from (config, ref), so a retried batch replays
        what the first attempt created; linked records are written by id."""
        resource = await self._resource(request.config_id, request.entity_type)
        gate = asyncio.Semaphore(resource.client.definition.concurrency)

        async def write(item: pb.UpsertItem) -> pb.UpsertResult:
            async with gate:
                return await resource.write(request.config_id, item)

        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(write(item)) for item in request.items]
        except ExceptionGroup as failures:
            # The activity fails as the first failure itself, so a non-retryable one stays so.
            permanent = [e for e in failures.exceptions if isinstance(e, ApplicationError) and e.non_retryable]
            raise (permanent or failures.exceptions)[0] from None
        return pb.UpsertBatchResponse(results=[t.result() for t in tasks], vendor_requests=resource.client.requests)

    async def check_health(self, request: pb.CheckHealthRequest) -> pb.CheckHealthResponse:
        try:
            definition = await self._definition(request.config_id)
            resource = RestResource(
                next(iter(definition.resources.values())), self._client(request.config_id, definition)
            )
            await resource.fetch(PullCursor(), 1)
        except VendorError as error:
            return pb.CheckHealthResponse(healthy=False, detail=error.reason)
        except ApplicationError as error:
            if not error.non_retryable:
                raise
            return pb.CheckHealthResponse(healthy=False, detail=error.message)
        return pb.CheckHealthResponse(healthy=True, detail="ok")
