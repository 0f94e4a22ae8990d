"""A call straight to a service gains nothing: without the signed identity the gateway's calls
carry (libs/service_auth.py), every RPC of every service is refused UNAUTHENTICATED, and
metadata naming a caller, a token signed with another key or an expired one change nothing."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from google.protobuf import message_factory
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status
from joserfc import jwt
from joserfc.jwk import OctKey

from libs import service_auth
from libs.errors import NotFound, PermissionDenied
from libs.grpc_client import call, open_channel
from libs.identity import Caller, acting_as
from libs.protos.concord.audit.v1 import audit_pb2
from libs.protos.concord.connection.v1 import connection_pb2
from libs.protos.concord.mapping.v1 import mapping_pb2
from libs.protos.concord.registry.v1 import registry_pb2, registry_pb2_grpc
from libs.protos.concord.sync.v1 import sync_pb2
from services.supervisor import Stack

SERVICES = {
    "registry": registry_pb2.DESCRIPTOR.services_by_name["RegistryService"],
    "connection": connection_pb2.DESCRIPTOR.services_by_name["ConnectionService"],
    "mapping": mapping_pb2.DESCRIPTOR.services_by_name["MappingService"],
    "sync": sync_pb2.DESCRIPTOR.services_by_name["SyncService"],
    "audit": audit_pb2.DESCRIPTOR.services_by_name["AuditService"],
}
EVERY_RPC = [(name, method.full_name) for name, service in SERVICES.items() for method in service.methods]


@pytest.fixture
def stack(bare_stack: Stack) -> Stack:
    return bare_stack


def _reason(error: grpc.aio.AioRpcError) -> str:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info.reason
    return ""


async def _raw_call(address: str, rpc: str, metadata: tuple[tuple[str, str], ...] = ()) -> grpc.aio.AioRpcError:
    """An empty request (valid for every message type) on a plain channel, as grpcurl would send it."""
    service, method = rpc.rsplit(".", 1)
    async with grpc.aio.insecure_channel(address) as channel:
        unary = channel.unary_unary(f"/{service}/{method}")
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await unary(b"", metadata=metadata, timeout=10)
    return refused.value


@pytest.mark.parametrize(("service", "rpc"), EVERY_RPC, ids=[rpc for _, rpc in EVERY_RPC])
async def test_every_rpc_refuses_a_call_without_identity(stack: Stack, service: str, rpc: str) -> None:
    error = await _raw_call(stack.services[service].address, rpc)
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert _reason(error) == "MISSING_SERVICE_IDENTITY"


def _forged(secret: bytes, **claims: object) -> str:
    now = int(time.time())
    body = {"iss": "concord-services", "aud": "concord-services", "iat": now, "exp": now + 300}
    body |= {"sub": "mallory", "prc": "p-victim", "rol": "admin"} | claims
    key = OctKey.import_key(secret)
    return jwt.encode({"alg": "HS256", "kid": service_auth._kid(secret)}, body, key)  # noqa: SLF001


def _own_secret(stack: Stack) -> bytes:
    return base64.b64decode((stack.settings.data_dir / "keys" / "service-token.key").read_text())


async def test_claimed_callers_and_forged_tokens_are_refused_and_change_nothing(stack: Stack) -> None:
    address = stack.services["registry"].address
    create = "concord.registry.v1.RegistryService.CreatePractice"
    attempts = {
        "headers naming a caller": (
            ("x-concord-user", "mallory"),
            ("x-concord-practice", "p-victim"),
            ("x-concord-role", "admin"),
        ),
        "another deployment's key": ((service_auth.METADATA_KEY, _forged(b"k" * 32)),),
        "expired": ((service_auth.METADATA_KEY, _forged(_own_secret(stack), iat=1, exp=2)),),
        "wrong audience": ((service_auth.METADATA_KEY, _forged(_own_secret(stack), aud="concord-gateway")),),
        "alg none": ((service_auth.METADATA_KEY, _unsigned()),),
        "garbage": ((service_auth.METADATA_KEY, "not-a-token"),),
    }
    for what, metadata in attempts.items():
        error = await _raw_call(address, create, metadata)
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED, what
        assert _reason(error) in {"MISSING_SERVICE_IDENTITY", "INVALID_SERVICE_IDENTITY"}, what
    # Nothing was created: the practice the forged calls named does not exist.
    async with open_channel(address) as channel:
        stub = registry_pb2_grpc.RegistryServiceStub(channel)
        with acting_as(Caller(user_id="admin-1", practice_id="p-victim", role="admin")):
            listed = await call(
                stub.ListIntegrationConfigs, registry_pb2.ListIntegrationConfigsRequest(practice_id="p-victim")
            )
    assert not listed.configs


def _unsigned() -> str:
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    now = int(time.time())
    claims = f'{{"iss":"concord-services","aud":"concord-services","exp":{now + 300},"prc":"p-victim","rol":"admin"}}'
    header = b64(b'{"alg":"none"}')
    return f"{header}.{b64(claims.encode())}."


async def test_a_signed_call_goes_through_and_health_needs_no_identity(stack: Stack) -> None:
    address = stack.services["registry"].address
    async with open_channel(address) as channel:
        response = await call(
            registry_pb2_grpc.RegistryServiceStub(channel).GetIntegrationDefinition,
            registry_pb2.GetIntegrationDefinitionRequest(integration_type="ghl"),
        )
    assert response.definition.integration_type == "ghl"
    async with grpc.aio.insecure_channel(address) as channel:
        health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert health.status == health_pb2.HealthCheckResponse.SERVING


def test_the_token_carries_the_caller_and_nothing_else() -> None:
    caller = Caller(user_id="dr-1", practice_id="p1", role="provider", ip_address="10.0.0.7", request_id="r-1")
    token = service_auth.token_for(caller)
    assert token is not None
    assert service_auth.caller_from(token) == caller
    assert service_auth.token_for(caller) == token  # minted once, reused while fresh


# --- confinement to the caller's practice -------------------------------------------------------------

NAMING_A_PRACTICE = [
    (name, method)
    for name, service in SERVICES.items()
    for method in service.methods
    if "practice_id" in method.input_type.fields_by_name
]


def _stub_method(stack: Stack, service: str, method) -> tuple[grpc.aio.Channel, Callable[..., Any]]:  # noqa: ANN001
    channel = open_channel(stack.services[service].address)
    unary = channel.unary_unary(
        f"/{method.containing_service.full_name}/{method.name}",
        request_serializer=lambda message: message.SerializeToString(),
        response_deserializer=lambda data: data,
    )
    return channel, unary


@pytest.mark.parametrize(
    ("service", "method"), NAMING_A_PRACTICE, ids=[method.full_name for _, method in NAMING_A_PRACTICE]
)
async def test_a_user_naming_another_practice_is_refused_on_every_rpc(stack: Stack, service: str, method) -> None:  # noqa: ANN001
    request = message_factory.GetMessageClass(method.input_type)(practice_id="p-victim")
    channel, unary = _stub_method(stack, service, method)
    async with channel:
        with (
            acting_as(Caller(user_id="admin-1", practice_id="p-mine", role="admin")),
            pytest.raises(PermissionDenied) as refused,
        ):
            await call(unary, request)
    assert refused.value.reason == "OTHER_PRACTICE"


async def test_another_practices_record_found_by_id_is_not_returned(stack: Stack) -> None:
    async with open_channel(stack.services["registry"].address) as channel:
        stub = registry_pb2_grpc.RegistryServiceStub(channel)
        with acting_as(Caller(user_id="admin-v", practice_id="p-victim-2", role="admin")):
            await call(stub.CreatePractice, registry_pb2.CreatePracticeRequest(practice_id="p-victim-2", name="Victim"))
            config = (
                await call(
                    stub.CreateIntegrationConfig,
                    registry_pb2.CreateIntegrationConfigRequest(
                        config=registry_pb2.IntegrationConfig(practice_id="p-victim-2", integration_type="ghl")
                    ),
                )
            ).config
        with acting_as(Caller(user_id="admin-1", practice_id="p-mine", role="admin")):
            with pytest.raises((PermissionDenied, NotFound)):
                await call(
                    stub.GetIntegrationConfig, registry_pb2.GetIntegrationConfigRequest(config_id=config.config_id)
                )
            with pytest.raises(PermissionDenied):  # nested: the config it would create names the victim
                await call(
                    stub.CreateIntegrationConfig,
                    registry_pb2.CreateIntegrationConfigRequest(
                        config=registry_pb2.IntegrationConfig(practice_id="p-victim-2", integration_type="zenoti")
                    ),
                )
            mine = await call(stub.ListIntegrationConfigs, registry_pb2.ListIntegrationConfigsRequest())
        assert all(c.practice_id == "p-mine" for c in mine.configs)  # an empty practice_id is the caller's
        with acting_as(Caller(user_id="admin-v", practice_id="p-victim-2", role="admin")):
            theirs = await call(stub.ListIntegrationConfigs, registry_pb2.ListIntegrationConfigsRequest())
        assert [c.integration_type for c in theirs.configs] == ["ghl"]  # the refused create made nothing
