"""Declarative definitions read from the registry over gRPC, parsed once and kept briefly.

Shared by the declarative adapter (config -> integration_type -> definition) and the mapping
service (integration_type -> definition). Raises the registry's domain errors (NotFound, ...).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from google.protobuf import json_format

from libs.grpc_client import call
from libs.protos.concord.registry.v1 import registry_pb2 as pb
from libs.protos.concord.registry.v1 import registry_pb2_grpc
from services.adapters.declarative import definition
from services.adapters.declarative.definition import Declarative


class DefinitionCatalog:
    def __init__(
        self,
        registry: registry_pb2_grpc.RegistryServiceStub,
        ttl_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._registry = registry
        self._ttl = ttl_seconds
        self._clock = clock
        self._definitions: dict[str, tuple[float, Declarative | None]] = {}
        # A config never changes vendor: its integration_type is kept for the life of the process.
        self._types: dict[str, str] = {}

    async def by_type(self, integration_type: str) -> Declarative | None:
        """The vendor's declarative definition; None when its definition has no declarative part.
        An edit through UpsertIntegrationDefinition is seen within ttl_seconds."""
        cached = self._definitions.get(integration_type)
        if cached and cached[0] > self._clock():
            return cached[1]
        response = await call(
            self._registry.GetIntegrationDefinition,
            pb.GetIntegrationDefinitionRequest(integration_type=integration_type),
        )
        document = json_format.MessageToDict(response.definition, preserving_proto_field_name=True)
        parsed = definition.parse(document) if definition.has_declarative(document) else None
        self._definitions[integration_type] = (self._clock() + self._ttl, parsed)
        return parsed

    async def integration_type(self, config_id: str) -> str:
        if config_id not in self._types:
            response = await call(
                self._registry.GetIntegrationConfig, pb.GetIntegrationConfigRequest(config_id=config_id)
            )
            self._types[config_id] = response.config.integration_type
        return self._types[config_id]
