"""Builds the mapping service: mapper registry, the registry channel its declarative mappers read
definitions through, its database (per-config field mapping overrides), use cases, gRPC server."""

from __future__ import annotations

from pathlib import Path

from libs.grpc_client import open_channel
from libs.grpc_server import ServiceBinding
from libs.protos.concord.mapping.v1 import mapping_pb2, mapping_pb2_grpc
from libs.protos.concord.registry.v1 import registry_pb2_grpc
from libs.service import RunningService, open_database, serve_grpc
from libs.settings import Settings
from services.adapters.declarative.catalog import DefinitionCatalog
from services.mapping.repository import MappingRepository
from services.mapping.service import MappingService
from services.mapping.servicer import MappingServicer

NAME = "mapping"


async def start(settings: Settings, address: str = "127.0.0.1:0") -> RunningService:
    db = await open_database(NAME, settings, Path(__file__).parent / "migrations")
    channel = open_channel(settings.registry_address)
    definitions = DefinitionCatalog(registry_pb2_grpc.RegistryServiceStub(channel))
    binding = ServiceBinding(
        mapping_pb2.DESCRIPTOR.services_by_name["MappingService"].full_name,
        mapping_pb2_grpc.add_MappingServiceServicer_to_server,
        MappingServicer(MappingService(definitions=definitions, repository=MappingRepository(db.sessions))),
    )
    return await serve_grpc(NAME, address, [binding], [channel.close, db.engine.dispose])
