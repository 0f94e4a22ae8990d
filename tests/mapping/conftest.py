"""The mapping service over real gRPC on 127.0.0.1:0, with the registry its declarative mappers
read definitions from."""

from __future__ import annotations

import pytest

from libs.grpc_client import open_channel
from libs.protos.concord.mapping.v1 import mapping_pb2_grpc
from services.mapping.server import start
from services.registry.server import start as start_registry


@pytest.fixture
async def stub(settings):  # noqa: ANN001
    # Vendors without a hand-written mapper are mapped from their registry definition.
    registry = await start_registry(settings)
    service = await start(settings.model_copy(update={"registry_address": registry.address}))
    channel = open_channel(service.address)
    yield mapping_pb2_grpc.MappingServiceStub(channel)
    await channel.close()
    await service.stop()
    await registry.stop()
