"""Builds the mapping service: mapper registry, the registry channel its declarative mappers read
definitions through, use cases, gRPC server. Stateless for now: the per-config mapping rules will
bring its database (open_database, as the registry does)."""

from __future__ import annotations

from libs.grpc_client import open_channel
from libs.grpc_server import ServiceBinding
from libs.protos.concord.mapping.v1 import mapping_pb2, mapping_pb2_grpc
from libs.protos.concord.registry.v1 import registry_pb2_grpc
from libs.service import RunningService, serve_grpc
from libs.settings import Settings
from services.adapters.declarative.catalog import DefinitionCatalog
from services.mapping.service import MappingService
from services.mapping.servicer import MappingServicer

NAME = "mapping"


async def start(settings: Settings, address: str = "127.0.0.1:0") -> RunningService:
    channel = open_channel(settings.registry_address)
    definitions = DefinitionCatalog(registry_pb2_grpc.RegistryServiceStub(channel))
    binding = ServiceBinding(
        mapping_pb2.DESCRIPTOR.services_by_name["MappingService"].full_name,
        mapping_pb2_grpc.add_MappingServiceServicer_to_server,
        MappingServicer(MappingService(definitions=definitions)),
    )
    return await serve_grpc(NAME, address, [binding], [channel.close])
