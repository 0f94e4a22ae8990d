"""The Zapier adapter: delivers the hub's changes to the REST hooks Zaps subscribed
(patient.created, patient.updated, appointment.booked, appointment.cancelled).

Zapier holds nothing Concord reads: it calls Concord's actions instead (services/gateway/zapier.py),
so fetching changes yields an empty page. A push batch becomes one POST per subscription and event,
the body a JSON array (Zapier runs the Zap once per element), signed with the subscription's secret.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
from google.protobuf import json_format
from temporalio.exceptions import ApplicationError

from libs.errors import ConcordError
from libs.grpc_client import call
from libs.protos.concord.adapter.v1 import adapter_pb2 as pb
from libs.protos.concord.common.v1 import common_pb2
from libs.protos.concord.connection.v1 import connection_pb2
from services.adapters import AdapterContext
from services.adapters.common import Pacer, Unpaced, heartbeat, struct

log = logging.getLogger("concord.adapters.zapier")

PATIENT = common_pb2.ENTITY_TYPE_PATIENT
APPOINTMENT = common_pb2.ENTITY_TYPE_APPOINTMENT
SIGNATURE_HEADER = "X-Concord-Signature"
# Zapier takes 30 requests a second per hook and 10,000 per 5 minutes per user
# (docs/vendors/VENDOR_APIS.md §4); keep under both with a margin.
PER_HOOK = (25, 1.0)
PER_ACCOUNT = (9_000, 300.0)
MAX_TRIES = 8
MAX_RETRY_AFTER = 300.0


@dataclass(frozen=True)
class Hook:
    subscription_id: str
    event: str
    target_url: str
    signing_secret: str


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def event_of(entity_type: int, item: pb.UpsertItem, record: dict) -> str | None:
    """Which trigger a change fires: a record Zapier has not seen is created (booked); an
    appointment whose status became cancelled is cancelled; other appointment edits fire none."""
    if entity_type == PATIENT:
        return "patient.updated" if item.external_id else "patient.created"
    if record.get("status") == "cancelled":
        return "appointment.cancelled"
    return None if item.external_id else "appointment.booked"


def event_id(ref: str, event: str) -> str:
    """Stable across retries of the same change, so a Zap step (or the app) can drop a repeat."""
    return hashlib.sha256(f"{ref}|{event}".encode()).hexdigest()[:32]


class Gone(Exception):
    """The Zap is off or deleted (410): its subscription goes."""


def _retry_after(response: httpx.Response, fallback: float) -> float:
    raw = response.headers.get("retry-after", "")
    try:
        return min(max(float(raw), 0.0), MAX_RETRY_AFTER)
    except ValueError:
        return fallback


class ZapierAdapter:
    vendor = "zapier"

    def __init__(
        self,
        context: AdapterContext,
        http: httpx.AsyncClient | None = None,
        backoff_seconds: float = 0.5,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._context = context
        self._http = http or httpx.AsyncClient(timeout=httpx.Timeout(30.0))
        self._backoff_seconds = backoff_seconds
        self._sleep = sleep
        paced, share = context.settings.vendor_pacing, context.settings.vendor_rate_share
        self._account = Pacer(*PER_ACCOUNT, share=share) if paced else Unpaced()
        self._hooks: dict[str, Pacer] = defaultdict(lambda: Pacer(*PER_HOOK, share=share) if paced else Unpaced())

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _subscriptions(self, config_id: str) -> list[Hook]:
        hooks, token = [], ""
        while True:
            try:
                response = await call(
                    self._context.connections.ListHookSubscriptions,
                    connection_pb2.ListHookSubscriptionsRequest(
                        config_id=config_id, include_secrets=True, page_size=500, page_token=token
                    ),
                )
            except ConcordError as error:
                raise ApplicationError(error.reason, type="ConnectionUnavailable") from None
            hooks += [Hook(s.subscription_id, s.event, s.target_url, s.signing_secret) for s in response.subscriptions]
            token = response.next_page_token
            if not token:
                return hooks

    async def fetch_changes(self, request: pb.FetchChangesRequest) -> pb.FetchChangesResponse:
        if request.entity_type not in (PATIENT, APPOINTMENT):
            raise ApplicationError(
                "Zapier syncs patients and appointments only", type="InvalidArgument", non_retryable=True
            )
        return pb.FetchChangesResponse(next_cursor=request.cursor, has_more=False)

    async def upsert_batch(self, request: pb.UpsertBatchRequest) -> pb.UpsertBatchResponse:
        if request.entity_type not in (PATIENT, APPOINTMENT):
            raise ApplicationError(
                "Zapier syncs patients and appointments only", type="InvalidArgument", non_retryable=True
            )
        hooks = await self._subscriptions(request.config_id)
        by_event: dict[str, list[dict]] = defaultdict(list)
        results = []
        for item in request.items:
            record = json_format.MessageToDict(item.record)
            hub_id = item.ref.partition("@")[0]
            record["external_id"] = item.external_id or f"concord:{hub_id}"
            event = event_of(request.entity_type, item, record)
            if event is not None:
                by_event[event].append({"id": event_id(item.ref, event), "event": event, **record})
            results.append(
                pb.UpsertResult(
                    ref=item.ref,
                    external_id=record["external_id"],
                    success=True,
                    created=not item.external_id,
                    record=struct(record),
                )
            )
        requests = 0
        for hook in hooks:
            payload = by_event.get(hook.event)
            if not payload:
                continue
            try:
                requests += await self._deliver(hook, payload)
            except Gone:
                requests += 1
                await self._forget(request.config_id, hook)
        return pb.UpsertBatchResponse(results=results, vendor_requests=requests)

    async def _deliver(self, hook: Hook, payload: list[dict]) -> int:
        """POSTs one signed array; waits out 429s and retries 5xx and network errors. Returns the
        requests sent. Every attempt carries the same delivery id and element ids."""
        body = json.dumps(payload, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "Concord",
            SIGNATURE_HEADER: sign(hook.signing_secret, body),
            "X-Concord-Event": hook.event,
            "X-Concord-Delivery": str(uuid.uuid4()),
        }
        backoff = self._backoff_seconds
        for attempt in range(1, MAX_TRIES + 1):
            await self._account.acquire()
            await self._hooks[hook.subscription_id].acquire()
            try:
                response = await self._http.post(hook.target_url, content=body, headers=headers)
            except httpx.HTTPError as error:
                status = type(error).__name__
            else:
                if response.status_code == 410:
                    raise Gone()
                if response.is_success:
                    return attempt
                status = str(response.status_code)
                if response.status_code == 429:
                    # A throttle is a wait, never a failure: it does not count against the tries.
                    heartbeat()
                    await self._sleep(_retry_after(response, 60.0))
                    continue
                if response.status_code < 500:
                    # Zapier refused this hook for good (unknown hook, too large): the records are
                    # not at fault, so the batch goes on; the subscription id tells operators which.
                    log.warning("zapier hook %s refused a delivery: HTTP %s", hook.subscription_id, status)
                    return attempt
            log.info("zapier hook %s delivery attempt %d failed: %s", hook.subscription_id, attempt, status)
            heartbeat()
            await self._sleep(backoff)
            backoff = min(backoff * 2, 30.0)
        raise ApplicationError(f"the hook kept failing ({status})", type="VendorUnavailable")

    async def _forget(self, config_id: str, hook: Hook) -> None:
        try:
            await call(
                self._context.connections.DeleteHookSubscription,
                connection_pb2.DeleteHookSubscriptionRequest(config_id=config_id, subscription_id=hook.subscription_id),
            )
        except ConcordError as error:
            if error.reason != "SUBSCRIPTION_NOT_FOUND":
                raise ApplicationError(error.reason, type="ConnectionUnavailable") from None
        log.info("zapier hook %s answered 410: subscription removed", hook.subscription_id)

    async def check_health(self, request: pb.CheckHealthRequest) -> pb.CheckHealthResponse:
        try:
            hooks = await self._subscriptions(request.config_id)
        except ApplicationError as error:
            return pb.CheckHealthResponse(healthy=False, detail=error.message)
        return pb.CheckHealthResponse(healthy=True, detail=f"{len(hooks)} hook subscriptions")
