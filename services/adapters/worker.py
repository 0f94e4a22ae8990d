"""The generic adapter worker: one vendor's adapter served as Temporal activities."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TypeVar

import grpc
from temporalio import activity
from temporalio.client import Client
from temporalio.worker import Worker

from libs import service_auth, tls
from libs.grpc_client import open_channel
from libs.protos.concord.adapter.v1 import adapter_pb2 as pb
from libs.protos.concord.connection.v1 import connection_pb2_grpc
from libs.settings import Settings
from services.adapters import Adapter, AdapterContext, load_adapter, task_queue
from services.adapters.common import current_lane

T = TypeVar("T")

# While an activity works it heartbeats this often, whatever the adapter does: a worker that dies
# (SIGKILL, a lost machine) stops heartbeating, and Temporal gives the activity to another worker
# once the step's heartbeat timeout passes (services/sync/workflows.py VENDOR_STEP).
HEARTBEAT_EVERY = 5.0


async def _alive(work: Awaitable[T], lane: int = pb.LANE_USER) -> T:
    """Runs an adapter call, heartbeating, its vendor requests waiting in ``lane`` of each pacer."""
    current_lane.set(lane or pb.LANE_USER)

    async def beat() -> None:
        while True:
            activity.heartbeat()
            await asyncio.sleep(HEARTBEAT_EVERY)

    beating = asyncio.create_task(beat())
    try:
        return await work
    finally:
        beating.cancel()


# Capabilities an adapter may have (services/adapters/__init__.py): served when it has the method.
OPTIONAL = ("send_message", "get_availability", "get_records", "delete_records", "verify_webhook")


class AdapterActivities:
    """Binds one adapter instance to the activity names the sync workflows call."""

    def __init__(self, adapter: Adapter) -> None:
        self._adapter = adapter

    @activity.defn(name="fetch_changes")
    async def fetch_changes(self, request: pb.FetchChangesRequest) -> pb.FetchChangesResponse:
        return await _alive(self._adapter.fetch_changes(request), request.lane)

    @activity.defn(name="upsert_batch")
    async def upsert_batch(self, request: pb.UpsertBatchRequest) -> pb.UpsertBatchResponse:
        return await _alive(self._adapter.upsert_batch(request), request.lane)

    @activity.defn(name="send_message")
    async def send_message(self, request: pb.SendMessageRequest) -> pb.SendMessageResponse:
        return await _alive(self._adapter.send_message(request), pb.LANE_REALTIME)  # type: ignore[attr-defined]

    @activity.defn(name="get_availability")
    async def get_availability(self, request: pb.GetAvailabilityRequest) -> pb.GetAvailabilityResponse:
        return await _alive(self._adapter.get_availability(request), pb.LANE_REALTIME)  # type: ignore[attr-defined]

    @activity.defn(name="get_records")
    async def get_records(self, request: pb.GetRecordsRequest) -> pb.GetRecordsResponse:
        return await _alive(self._adapter.get_records(request), request.lane)  # type: ignore[attr-defined]

    @activity.defn(name="delete_records")
    async def delete_records(self, request: pb.DeleteRecordsRequest) -> pb.DeleteRecordsResponse:
        return await _alive(self._adapter.delete_records(request), request.lane)  # type: ignore[attr-defined]

    @activity.defn(name="verify_webhook")
    async def verify_webhook(self, request: pb.VerifyWebhookRequest) -> pb.VerifyWebhookResponse:
        return await _alive(self._adapter.verify_webhook(request))  # type: ignore[attr-defined]

    def served(self) -> list:
        """The activities this adapter answers: the contract, plus its optional capabilities."""
        served = [self.fetch_changes, self.upsert_batch, self.check_health]
        for name in OPTIONAL:
            if callable(getattr(self._adapter, name, None)):
                served.append(getattr(self, name))
        return served

    @activity.defn(name="check_health")
    async def check_health(self, request: pb.CheckHealthRequest) -> pb.CheckHealthResponse:
        return await _alive(self._adapter.check_health(request))


@dataclass
class AdapterWorker:
    worker: Worker
    adapter: Adapter
    channel: grpc.aio.Channel

    async def run(self) -> None:
        await self.worker.run()

    async def shutdown(self) -> None:
        await self.worker.shutdown()
        await self.adapter.aclose()
        await self.channel.close()


def build_worker(vendor: str, settings: Settings, client: Client) -> AdapterWorker:
    service_auth.install(settings)
    tls.install(settings)
    channel = open_channel(settings.connection_address)
    context = AdapterContext(settings, connection_pb2_grpc.ConnectionServiceStub(channel))
    adapter = load_adapter(vendor)(context)
    activities = AdapterActivities(adapter)
    worker = Worker(
        client,
        task_queue=task_queue(vendor),
        activities=activities.served(),
        max_concurrent_activities=20,
    )
    return AdapterWorker(worker, adapter, channel)
