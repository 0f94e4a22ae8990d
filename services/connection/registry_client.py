"""What the connection service asks the registry: a config's owner and its vendor's definition."""

from __future__ import annotations

import time

import grpc
from google.protobuf import json_format

from libs.grpc_client import call
from libs.protos.concord.registry.v1 import registry_pb2 as pb
from libs.protos.concord.registry.v1 import registry_pb2_grpc
from services.connection.domain import ConfigRef, VendorDefinition, vendor_definition


class RegistryClient:
    def __init__(self, channel: grpc.aio.Channel, definition_ttl_seconds: float) -> None:
        self._stub = registry_pb2_grpc.RegistryServiceStub(channel)
        self._ttl = definition_ttl_seconds
        self._definitions: dict[str, tuple[float, VendorDefinition]] = {}

    async def get_config(self, config_id: str) -> ConfigRef:
        """Raises the registry's NotFound (CONFIG_NOT_FOUND) for an unknown config."""
        response = await call(self._stub.GetIntegrationConfig, pb.GetIntegrationConfigRequest(config_id=config_id))
        config = response.config
        return ConfigRef(config.config_id, config.practice_id, config.integration_type)

    async def get_definition(self, integration_type: str) -> VendorDefinition:
        # Adapters ask for a token before every page: the catalog changes rarely, so reuse it briefly.
        cached = self._definitions.get(integration_type)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        response = await call(
            self._stub.GetIntegrationDefinition, pb.GetIntegrationDefinitionRequest(integration_type=integration_type)
        )
        document = json_format.MessageToDict(response.definition, preserving_proto_field_name=True)
        definition = vendor_definition(document)
        self._definitions[integration_type] = (time.monotonic() + self._ttl, definition)
        return definition
