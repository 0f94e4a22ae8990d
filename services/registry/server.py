"""Builds the registry service: database, use cases, gRPC server."""

from __future__ import annotations

from pathlib import Path

from libs.grpc_server import ServiceBinding
from libs.protos.concord.registry.v1 import registry_pb2, registry_pb2_grpc
from libs.service import RunningService, open_database, serve_grpc
from libs.settings import Settings
from services.registry.repository import RegistryRepository
from services.registry.service import RegistryService
from services.registry.servicer import RegistryServicer

NAME = "registry"


async def start(settings: Settings, address: str = "127.0.0.1:0") -> RunningService:
    db = await open_database(NAME, settings, Path(__file__).parent / "migrations")
    service = RegistryService(RegistryRepository(db.sessions), settings.vendor_base_urls)
    await service.seed_definitions()
    binding = ServiceBinding(
        registry_pb2.DESCRIPTOR.services_by_name["RegistryService"].full_name,
        registry_pb2_grpc.add_RegistryServiceServicer_to_server,
        RegistryServicer(service),
    )
    return await serve_grpc(NAME, address, [binding], [db.engine.dispose])
