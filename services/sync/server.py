"""Builds the sync service: database, peers, Temporal worker, gRPC server."""

from __future__ import annotations

import asyncio
from pathlib import Path

from temporalio.worker import Worker

from libs.blind_index import BlindIndexer
from libs.crypto import EnvelopeCipher, LocalKeyring, rewrap_in_background
from libs.grpc_client import open_channel
from libs.grpc_server import ServiceBinding
from libs.key_providers import key_provider_from
from libs.protos.concord.audit.v1 import audit_pb2_grpc
from libs.protos.concord.connection.v1 import connection_pb2_grpc
from libs.protos.concord.mapping.v1 import mapping_pb2_grpc
from libs.protos.concord.registry.v1 import registry_pb2_grpc
from libs.protos.concord.sync.v1 import sync_pb2, sync_pb2_grpc
from libs.service import RunningService, open_database, serve_grpc
from libs.settings import Settings
from libs.temporal import connect
from services.sync import models
from services.sync.activities import SyncActivities
from services.sync.availability import AvailabilityWorkflow
from services.sync.messaging import SendMessageWorkflow
from services.sync.reconciliation import ReconcileWorkflow, ReconciliationActivities
from services.sync.service import Peers, SyncService
from services.sync.servicer import SyncServicer
from services.sync.workflows import InboxWorkflow, PatientSyncWorkflow, ScheduledSyncWorkflow, VerifyWebhookWorkflow

NAME = "sync"


async def start(settings: Settings, address: str = "127.0.0.1:0") -> RunningService:
    db = await open_database(NAME, settings, Path(__file__).parent / "migrations")
    # Data keys wrapped by the configured key provider (the local keyring, or AWS KMS).
    cipher = EnvelopeCipher(key_provider_from(settings), db.sessions, models.data_keys)
    channels = {
        name: open_channel(settings.service_address(name)) for name in ("registry", "connection", "mapping", "audit")
    }
    peers = Peers(
        registry=registry_pb2_grpc.RegistryServiceStub(channels["registry"]),
        connection=connection_pb2_grpc.ConnectionServiceStub(channels["connection"]),
        mapping=mapping_pb2_grpc.MappingServiceStub(channels["mapping"]),
        audit=audit_pb2_grpc.AuditServiceStub(channels["audit"]),
    )
    temporal = await connect(settings)
    indexer = BlindIndexer(LocalKeyring.in_data_dir(settings.data_dir).derive("sync-blind-index"))
    service = SyncService(db.sessions, cipher, peers, temporal, settings.sync_task_queue, indexer, settings)
    worker = Worker(
        temporal,
        task_queue=settings.sync_task_queue,
        workflows=[
            PatientSyncWorkflow,
            ScheduledSyncWorkflow,
            InboxWorkflow,
            VerifyWebhookWorkflow,
            SendMessageWorkflow,
            AvailabilityWorkflow,
            ReconcileWorkflow,
        ],
        activities=SyncActivities(service).all() + ReconciliationActivities(service.reconciliations).all(),
    )
    worker_task = asyncio.create_task(worker.run())

    async def stop_worker() -> None:
        await worker.shutdown()
        await worker_task

    async def close_channels() -> None:
        for channel in channels.values():
            await channel.close()

    binding = ServiceBinding(
        sync_pb2.DESCRIPTOR.services_by_name["SyncService"].full_name,
        sync_pb2_grpc.add_SyncServiceServicer_to_server,
        SyncServicer(service),
    )
    return await serve_grpc(
        NAME, address, [binding], [db.engine.dispose, close_channels, stop_worker, rewrap_in_background(cipher, NAME)]
    )
