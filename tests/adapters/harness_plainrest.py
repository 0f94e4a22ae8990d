"""PlainREST in the shared adapter suite: a vendor with no Python of its own. Its definition,
sandbox/plainrest/integration.json, is a JSON document registered through the registry's
UpsertIntegrationDefinition; load_adapter falls back to the declarative adapter, which reads it
from the registry."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from google.protobuf import json_format

import sandbox.plainrest
from libs.asgi import serve_asgi
from libs.grpc_client import call, open_channel
from libs.protos.concord.connection.v1 import connection_pb2 as cpb
from libs.protos.concord.connection.v1 import connection_pb2_grpc
from libs.protos.concord.registry.v1 import registry_pb2 as rpb
from libs.protos.concord.registry.v1 import registry_pb2_grpc
from libs.settings import Settings
from sandbox.plainrest import AccountConfig, PlainRestSandboxSettings, create_app
from services.adapters import AdapterContext
from services.adapters.declarative.adapter import DeclarativeAdapter
from tests.adapters.conftest import PRACTICE_ID, AdapterHarness, _start_services

VENDOR = "plainrest"
# An API key is the whole credential: the suite's token-refresh test is not collected for it.
REFRESHES_TOKENS = False
API_KEY = "prk_test_adapter_suite_0123456789abcdef"
ACCOUNT_ID = "acct_suite"

# The whole integration as a practice admin registers it: a JSON document, no code.
DEFINITION: dict[str, Any] = json.loads((Path(sandbox.plainrest.__file__).parent / "integration.json").read_text())


def definition_message(document: dict[str, Any] = DEFINITION) -> rpb.IntegrationDefinition:
    return json_format.ParseDict(document, rpb.IntegrationDefinition())


async def register(registry: registry_pb2_grpc.RegistryServiceStub, document: dict[str, Any] = DEFINITION) -> None:
    await call(
        registry.UpsertIntegrationDefinition,
        rpb.UpsertIntegrationDefinitionRequest(definition=definition_message(document)),
    )


def sandbox_settings(rate_limit: tuple[int, float] | None = None) -> PlainRestSandboxSettings:
    limits = {} if rate_limit is None else {"rate_limit": rate_limit[0], "rate_window": rate_limit[1]}
    return PlainRestSandboxSettings(accounts=[AccountConfig(ACCOUNT_ID, "Suite Clinic", API_KEY)], **limits)


async def connect_with_api_key(connections: connection_pb2_grpc.ConnectionServiceStub, config_id: str) -> None:
    """The vendor's real auth: the practice pastes the API key it created in PlainREST."""
    request = cpb.ConnectWithCredentialsRequest(config_id=config_id, api_key=cpb.ApiKeyCredential(api_key=API_KEY))
    await call(connections.ConnectWithCredentials, request)


@dataclass
class PlainRestHarness(AdapterHarness):
    def record_id(self, record: dict) -> str:
        return record["id"]

    async def seed(self, count: int) -> list[str]:
        return (await self._admin("POST", "/seed", json={"account_id": ACCOUNT_ID, "count": count}))["ids"]

    async def edit(self, external_id: str) -> None:
        await self._admin("PATCH", f"/patients/{external_id}", json={"city": "Edited Springs"})

    async def stored(self) -> dict[str, dict]:
        listed = await self._admin("GET", "/patients", params={"account_id": ACCOUNT_ID})
        return {p["id"]: p for p in listed["data"]}

    def new_records(self, count: int) -> list[dict]:
        return [
            {
                "first_name": f"Adapter{i}",
                "last_name": "Suite",
                "email": f"adapter.suite.{i}@example.com",
                "mobile": f"+1617555{i:04d}",
                "dob": "1980-02-29",
                "sex": "F",
                "city": "Boston",
                "country_code": "US",
            }
            for i in range(count)
        ]

    def changed(self, record: dict) -> dict:
        return {**record, "city": f"Moved {record['first_name']}"}

    def changed_value(self, stored: dict) -> Any:
        return stored.get("city")

    def malformed(self, record: dict) -> list[tuple[dict, str]]:
        return [
            ({**record, "email": "not-an-email"}, "not-an-email"),
            ({**record, "favourite_colour": "teal-and-violet"}, "teal-and-violet"),
        ]

    async def expire_access_tokens(self) -> None:
        raise NotImplementedError(
            "PlainREST API keys never expire: no access token to refresh (see test_declarative_adapter)"
        )

    async def revoke_tokens(self) -> None:
        await self._admin("POST", "/faults", json={"revoke_tokens": True})

    async def live_refresh_tokens(self) -> set[str]:
        raise NotImplementedError("PlainREST has no refresh tokens: an API key is the whole credential")

    async def token_requests(self) -> int:
        raise NotImplementedError("PlainREST has no token endpoint")


async def open_harness(
    stack: contextlib.AsyncExitStack, settings: Settings, http: httpx.AsyncClient, rate_limit: tuple[int, float] | None
) -> PlainRestHarness:
    served = await serve_asgi(create_app(sandbox_settings(rate_limit)))
    stack.push_async_callback(served.stop)
    settings = await _start_services(stack, settings, VENDOR, served.url)

    registry_channel = open_channel(settings.registry_address)
    stack.push_async_callback(registry_channel.close)
    registry = registry_pb2_grpc.RegistryServiceStub(registry_channel)
    await register(registry)
    await call(registry.CreatePractice, rpb.CreatePracticeRequest(practice_id=PRACTICE_ID, name="Suite Clinic"))
    config = await call(
        registry.CreateIntegrationConfig,
        rpb.CreateIntegrationConfigRequest(
            config=rpb.IntegrationConfig(practice_id=PRACTICE_ID, integration_type=VENDOR)
        ),
    )
    channel = open_channel(settings.connection_address)
    stack.push_async_callback(channel.close)
    connections = connection_pb2_grpc.ConnectionServiceStub(channel)
    await connect_with_api_key(connections, config.config.config_id)

    # Retries after a 5xx back off 20 ms, not 0.5 s: the suite waits for retries, not for outages.
    adapter = DeclarativeAdapter(AdapterContext(settings, connections), vendor=VENDOR, backoff_seconds=0.02)
    stack.push_async_callback(adapter.aclose)
    return PlainRestHarness(
        vendor=VENDOR,
        settings=settings,
        sandbox_url=served.url,
        config_id=config.config.config_id,
        connections=connections,
        adapter=adapter,
        http=http,
    )
