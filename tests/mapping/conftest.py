"""The mapping service over real gRPC on 127.0.0.1:0, with the registry its declarative mappers
read definitions from and its config checks ask, and the audit service its changes are recorded in."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from libs.grpc_client import call, open_channel
from libs.protos.concord.audit.v1 import audit_pb2_grpc
from libs.protos.concord.mapping.v1 import mapping_pb2_grpc
from libs.protos.concord.registry.v1 import registry_pb2 as rpb
from libs.protos.concord.registry.v1 import registry_pb2_grpc
from libs.service import RunningService
from services.audit.server import start as start_audit
from services.mapping.server import start
from services.registry.server import start as start_registry


@dataclass
class MappingStack:
    stub: mapping_pb2_grpc.MappingServiceStub
    registry: registry_pb2_grpc.RegistryServiceStub
    audit: audit_pb2_grpc.AuditServiceStub
    audit_service: RunningService

    async def config(self, integration_type: str = "ghl", practice_id: str = "") -> rpb.IntegrationConfig:
        """A config of its own practice (made when not given) in the registry."""
        if not practice_id:
            practice_id = f"p-{uuid.uuid4().hex[:10]}"
            await call(self.registry.CreatePractice, rpb.CreatePracticeRequest(practice_id=practice_id, name="Clinic"))
        request = rpb.CreateIntegrationConfigRequest(
            config=rpb.IntegrationConfig(practice_id=practice_id, integration_type=integration_type)
        )
        return (await call(self.registry.CreateIntegrationConfig, request)).config


@pytest.fixture
async def mapping(settings) -> AsyncIterator[MappingStack]:  # noqa: ANN001
    registry = await start_registry(settings)
    audit = await start_audit(settings)
    service = await start(
        settings.model_copy(update={"registry_address": registry.address, "audit_address": audit.address})
    )
    channels = [open_channel(address) for address in (service.address, registry.address, audit.address)]
    yield MappingStack(
        mapping_pb2_grpc.MappingServiceStub(channels[0]),
        registry_pb2_grpc.RegistryServiceStub(channels[1]),
        audit_pb2_grpc.AuditServiceStub(channels[2]),
        audit,
    )
    for channel in channels:
        await channel.close()
    await service.stop()
    await audit.stop()  # a test may have stopped it already
    await registry.stop()


@pytest.fixture
def stub(mapping: MappingStack) -> mapping_pb2_grpc.MappingServiceStub:
    return mapping.stub
