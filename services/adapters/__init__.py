"""Vendor adapters: one folder per vendor, one generic Temporal worker.

Each ``services/adapters/<vendor>/__init__.py`` exposes ``ADAPTER``, a factory
``(AdapterContext) -> Adapter``. The generic worker (``python -m services.adapters --vendor ghl``)
finds it, and serves its methods as the activities ``fetch_changes``, ``upsert_batch`` and
``check_health`` on task queue ``adapter.<vendor>``. The sync service calls them by name and
never imports adapter code.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from libs.protos.concord.adapter.v1 import adapter_pb2 as pb
from libs.protos.concord.connection.v1 import connection_pb2_grpc
from libs.settings import Settings

TASK_QUEUE_PREFIX = "adapter."


def task_queue(vendor: str) -> str:
    return f"{TASK_QUEUE_PREFIX}{vendor}"


@dataclass
class AdapterContext:
    settings: Settings
    connections: connection_pb2_grpc.ConnectionServiceStub


class Adapter(Protocol):
    vendor: str

    async def fetch_changes(self, request: pb.FetchChangesRequest) -> pb.FetchChangesResponse: ...

    async def upsert_batch(self, request: pb.UpsertBatchRequest) -> pb.UpsertBatchResponse: ...

    async def check_health(self, request: pb.CheckHealthRequest) -> pb.CheckHealthResponse: ...

    async def aclose(self) -> None: ...


class MessageSender(Protocol):
    """Optional capability: an adapter that has ``send_message`` is served the activity of that
    name too (one email or SMS to a linked contact, sent at most once)."""

    async def send_message(self, request: pb.SendMessageRequest) -> pb.SendMessageResponse: ...


class AvailabilityReader(Protocol):
    """Optional capability: an adapter that has ``get_availability`` is served that activity too
    (the free slots of a service for a patient, read without reserving anything)."""

    async def get_availability(self, request: pb.GetAvailabilityRequest) -> pb.GetAvailabilityResponse: ...


class RecordReader(Protocol):
    """Optional capability: records by vendor id as they are now (the webhook inbox reads the
    record an event names, so a late or repeated event applies only the current state)."""

    async def get_records(self, request: pb.GetRecordsRequest) -> pb.GetRecordsResponse: ...


class RecordDeleter(Protocol):
    """Optional capability: deletes vendor records by id; one already gone counts as deleted."""

    async def delete_records(self, request: pb.DeleteRecordsRequest) -> pb.DeleteRecordsResponse: ...


class WebhookVerifier(Protocol):
    """Optional capability: verifies a webhook delivery's signature and parses its events."""

    async def verify_webhook(self, request: pb.VerifyWebhookRequest) -> pb.VerifyWebhookResponse: ...


AdapterFactory = Callable[[AdapterContext], Adapter]


def load_adapter(vendor: str) -> AdapterFactory:
    """The vendor's own package, else the declarative adapter, which reads the vendor's
    ``extra.declarative`` definition from the registry (settings.registry_address) per config."""
    if not vendor.isidentifier() or vendor == "declarative":
        raise ValueError(f"not a vendor name: {vendor!r}")
    try:
        module = importlib.import_module(f"{__name__}.{vendor}")
    except ModuleNotFoundError as error:
        if error.name != f"{__name__}.{vendor}":
            raise
        from services.adapters.declarative import declarative_adapter

        return declarative_adapter(vendor)
    return module.ADAPTER
