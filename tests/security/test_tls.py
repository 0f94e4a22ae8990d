"""Mutual TLS between services when certificates are configured: the whole stack runs on it, a
plaintext client or one without a certificate from the deployment's CA is not served."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import httpx
import pytest

from libs import tls
from libs.grpc_client import call, open_channel
from libs.protos.concord.registry.v1 import registry_pb2, registry_pb2_grpc
from libs.settings import Settings
from services.supervisor import Stack, start_stack


@pytest.fixture(scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory, temporal_binary: str) -> AsyncIterator[Stack]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("tls"), tls_dev_certificates=True)
    running = await start_stack(settings, ephemeral_ports=True, with_sandbox=False, adapter_workers=())
    yield running
    await running.stop()
    tls.install(Settings(data_dir=settings.data_dir))  # later stacks in this process speak plaintext again


async def test_the_stack_serves_the_gateway_over_mutual_tls(stack: Stack) -> None:
    token = stack.gateway.issuer.mint("admin-1", "p-tls", "admin")  # type: ignore[union-attr]
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as http:
        created = await http.post(
            "/practice", json={"name": "TLS Clinic"}, headers={"Authorization": f"Bearer {token}"}
        )
    assert created.status_code == 201  # gateway -> registry -> audit, each hop over mutual TLS
    async with open_channel(stack.services["registry"].address) as channel:
        response = await call(
            registry_pb2_grpc.RegistryServiceStub(channel).GetIntegrationDefinition,
            registry_pb2.GetIntegrationDefinitionRequest(integration_type="ghl"),
        )
    assert response.definition.integration_type == "ghl"


async def _refused(channel: grpc.aio.Channel) -> grpc.StatusCode:
    async with channel:
        stub = registry_pb2_grpc.RegistryServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.GetIntegrationDefinition(registry_pb2.GetIntegrationDefinitionRequest(), timeout=5)
    return refused.value.code()


async def test_plaintext_and_certificateless_clients_are_not_served(stack: Stack) -> None:
    address = stack.services["registry"].address
    material = tls.installed()
    assert material is not None
    assert await _refused(grpc.aio.insecure_channel(address)) == grpc.StatusCode.UNAVAILABLE
    no_client_cert = grpc.ssl_channel_credentials(root_certificates=material.ca)
    assert await _refused(grpc.aio.secure_channel(address, no_client_cert)) == grpc.StatusCode.UNAVAILABLE


def test_development_certificates_are_made_once_with_private_keys_kept_private(stack: Stack) -> None:
    folder = stack.settings.data_dir / "keys" / "tls"
    again = tls.development_certificates(folder)
    assert again == tls.installed()
    for name in ("ca-key.pem", "service-key.pem"):
        assert (folder / name).stat().st_mode & 0o077 == 0
