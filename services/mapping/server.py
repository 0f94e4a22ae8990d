"""Builds the mapping service: mapper registry, the registry channel its declarative mappers read
definitions through and its config checks ask, the audit channel mapping changes are recorded
through, its database (per-config field mapping overrides), use cases, gRPC server."""

from __future__ import annotations

from pathlib import Path

from libs.grpc_client import open_channel
from libs.grpc_server import ServiceBinding
from libs.protos.concord.audit.v1 import audit_pb2_grpc
from libs.protos.concord.mapping.v1 import mapping_pb2, mapping_pb2_grpc
from libs.protos.concord.registry.v1 import registry_pb2_grpc
from libs.service import RunningService, open_database, serve_grpc
from libs.settings import Settings
from services.adapters.declarative.catalog import DefinitionCatalog
from services.mapping.audit import MappingAudit
from services.mapping.configs import ConfigDirectory
from services.mapping.repository import MappingRepository
from services.mapping.service import MappingService
from services.mapping.servicer import MappingServicer

NAME = "mapping"


async def start(settings: Settings, address: str = "127.0.0.1:0") -> RunningService:
    db = await open_database(NAME, settings, Path(__file__).parent / "migrations")
    channel = open_channel(settings.registry_address)
    audit_channel = open_channel(settings.audit_address)
    registry = registry_pb2_grpc.RegistryServiceStub(channel)
    service = MappingService(
        definitions=DefinitionCatalog(registry),
        repository=MappingRepository(db.sessions),
        configs=ConfigDirectory(registry),
        audit=MappingAudit(audit_pb2_grpc.AuditServiceStub(audit_channel)),
    )
    binding = ServiceBinding(
        mapping_pb2.DESCRIPTOR.services_by_name["MappingService"].full_name,
        mapping_pb2_grpc.add_MappingServiceServicer_to_server,
        MappingServicer(service),
    )
    return await serve_grpc(NAME, address, [binding], [channel.close, audit_channel.close, db.engine.dispose])
