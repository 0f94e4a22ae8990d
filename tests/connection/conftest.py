"""The connection service over real gRPC, against the registry and the vendor sandboxes (GoHighLevel,
Salesforce, Zenoti, FHIR) served over real HTTP (uvicorn on 127.0.0.1:0), on each database backend."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import uvicorn
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from google.protobuf import json_format
from joserfc.jwk import ECKey, RSAKey
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from starlette.applications import Starlette

from libs.crypto import EnvelopeCipher, LocalKeyring
from libs.db import create_engine, create_session_factory
from libs.grpc_client import call, open_channel
from libs.protos.concord.audit.v1 import audit_pb2_grpc
from libs.protos.concord.common.v1 import common_pb2
from libs.protos.concord.connection.v1 import connection_pb2 as pb
from libs.protos.concord.connection.v1 import connection_pb2_grpc
from libs.protos.concord.registry.v1 import registry_pb2 as rpb
from libs.protos.concord.registry.v1 import registry_pb2_grpc
from libs.settings import Settings
from sandbox.fhir.app import create_app as create_fhir
from sandbox.fhir.settings import FhirSandboxSettings
from sandbox.ghl.app import create_app
from sandbox.ghl.settings import GhlSandboxSettings
from sandbox.ghl.state import Sandbox
from sandbox.salesforce.app import create_app as create_salesforce
from sandbox.salesforce.settings import SalesforceSandboxSettings
from sandbox.zenoti.app import create_app as create_zenoti
from sandbox.zenoti.settings import OrgConfig, ZenotiSandboxSettings
from services.audit.server import start as start_audit
from services.connection import domain, models
from services.connection.server import ConnectionServer, start
from services.connection.settings import ConnectionSettings
from services.registry.server import start as start_registry

CLIENT_ID = "concord-test-app"
CLIENT_SECRET = "s3cret-client-value-0123456789"
REDIRECT_URI = "http://127.0.0.1:8080/oauth/callback/ghl"
API_VERSION = "2021-07-28"


class _Uvicorn(uvicorn.Server):
    """Tells when its sockets are bound, and leaves the test runner's signal handlers alone."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()

    async def startup(self, sockets=None) -> None:  # noqa: ANN001
        await super().startup(sockets)
        self.ready.set()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class Served:
    port: int
    app: Starlette
    server: _Uvicorn
    serving: asyncio.Task[None]


async def serve(make_app: Callable[[int], Starlette]) -> Served:
    """Serves the app on a loopback port bound first, so the app can be told its own URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app = make_app(port)
    server = _Uvicorn(uvicorn.Config(app, log_level="warning", access_log=False))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    ready = asyncio.create_task(server.ready.wait())
    await asyncio.wait({serving, ready}, return_when=asyncio.FIRST_COMPLETED)
    assert server.ready.is_set(), "the sandbox did not start"
    return Served(port, app, server, serving)


async def stop_all(served: list[Served]) -> None:
    """Stops the servers together (each takes a tick of uvicorn's loop to notice)."""
    for one in served:
        one.server.should_exit = True
    await asyncio.gather(*(one.serving for one in served))


@dataclass
class GhlSandbox:
    url: str
    state: Sandbox


@pytest.fixture
async def ghl_sandbox() -> AsyncIterator[GhlSandbox]:
    served = await serve(lambda _: create_app(GhlSandboxSettings(rate_limit_enabled=False)))
    yield GhlSandbox(f"http://127.0.0.1:{served.port}", served.app.state.sandbox)
    await stop_all([served])


@dataclass
class Harness:
    """A practice with a GHL config, the app registered at the sandbox, and connection servers."""

    settings: Settings
    sandbox: GhlSandbox
    registry: registry_pb2_grpc.RegistryServiceStub
    http: httpx.AsyncClient
    audit: audit_pb2_grpc.AuditServiceStub | None = None
    config_id: str = ""
    location_id: str = ""
    stub: connection_pb2_grpc.ConnectionServiceStub | None = None
    server: ConnectionServer | None = None
    _started: list[tuple[ConnectionServer, object]] = field(default_factory=list)

    async def start_connection(
        self, margin_seconds: int = 300, clock: Callable[[], datetime] | None = None, **options: float
    ) -> tuple[ConnectionServer, connection_pb2_grpc.ConnectionServiceStub]:
        """``clock``: what the service takes for now (the real time when not given)."""
        settings = self.settings.model_copy(update={"token_refresh_margin_seconds": margin_seconds})
        server = await start(
            settings,
            options=ConnectionSettings(**{"refresh_interval_seconds": 3600, **options}),
            **({"clock": clock} if clock else {}),
        )
        channel = open_channel(server.address)
        self._started.append((server, channel))
        return server, connection_pb2_grpc.ConnectionServiceStub(channel)

    async def authorize(self, stub: connection_pb2_grpc.ConnectionServiceStub, config_id: str = "") -> tuple[str, str]:
        """Starts the flow and follows the authorize URL as a browser would; returns (state, code)."""
        started = await call(
            stub.StartAuthorization,
            pb.StartAuthorizationRequest(config_id=config_id or self.config_id, redirect_uri=REDIRECT_URI),
        )
        reply = await self.http.get(started.authorization_url)
        assert reply.status_code == 302, reply.text
        location = urlsplit(reply.headers["location"])
        assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT_URI
        query = parse_qs(location.query)
        assert query["state"] == [started.state]
        return started.state, query["code"][0]

    async def connect(self, stub=None, config_id: str = "") -> pb.Connection:  # noqa: ANN001
        stub = stub or self.stub
        state, code = await self.authorize(stub, config_id)
        done = await call(stub.CompleteAuthorization, pb.CompleteAuthorizationRequest(state=state, code=code))
        return done.connection

    async def api_status(self, access_token: str) -> int:
        """What the vendor API answers to this token."""
        reply = await self.http.get(
            f"{self.sandbox.url}/contacts/",
            params={"locationId": self.location_id},
            headers={"Authorization": f"Bearer {access_token}", "Version": API_VERSION},
        )
        return reply.status_code

    async def refresh_at_vendor(self, refresh_token: str) -> httpx.Response:
        return await self.http.post(
            f"{self.sandbox.url}/oauth/token",
            data={
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "grant_type": "refresh_token",
                "refresh_token": refresh_token,
                "user_type": "Location",
            },
        )

    def token_requests(self) -> int:
        return self.sandbox.state.stats.counts["POST /oauth/token"]


@pytest.fixture
async def harness(settings: Settings, ghl_sandbox: GhlSandbox) -> AsyncIterator[Harness]:
    registry = await start_registry(settings.model_copy(update={"vendor_base_urls": {"ghl": ghl_sandbox.url}}))
    audit = await start_audit(settings)  # credential changes are recorded there
    registry_channel = open_channel(registry.address)
    audit_channel = open_channel(audit.address)
    http = httpx.AsyncClient(timeout=10)
    h = Harness(
        settings=settings.model_copy(update={"registry_address": registry.address, "audit_address": audit.address}),
        sandbox=ghl_sandbox,
        registry=registry_pb2_grpc.RegistryServiceStub(registry_channel),
        http=http,
        audit=audit_pb2_grpc.AuditServiceStub(audit_channel),
    )
    try:
        app = await http.post(
            f"{ghl_sandbox.url}/_sandbox/apps",
            json={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "redirect_uris": [REDIRECT_URI]},
        )
        assert app.status_code == 201, app.text
        h.location_id = app.json()["locationId"]
        await call(h.registry.CreatePractice, rpb.CreatePracticeRequest(practice_id="p1", name="Harbor Clinic"))
        config = await call(
            h.registry.CreateIntegrationConfig,
            rpb.CreateIntegrationConfigRequest(config=rpb.IntegrationConfig(practice_id="p1", integration_type="ghl")),
        )
        h.config_id = config.config.config_id
        h.server, h.stub = await h.start_connection()
        await call(
            h.stub.SetOAuthClient,
            pb.SetOAuthClientRequest(integration_type="ghl", client_id=CLIENT_ID, client_secret=CLIENT_SECRET),
        )
        yield h
    finally:
        for server, channel in reversed(h._started):
            await channel.close()
            await server.stop()
        await http.aclose()
        await registry_channel.close()
        await registry.stop()
        await audit_channel.close()
        await audit.stop()


@dataclass
class StoredTokens:
    access: str | None
    refresh: str | None


class RawDatabase:
    """The connection service's database as an operator (or a thief) would see it."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._engine = create_engine("connection", settings)
        sessions = create_session_factory(self._engine)
        self._cipher = EnvelopeCipher(LocalKeyring.in_data_dir(settings.data_dir), sessions, models.data_keys)

    async def rows(self) -> list[tuple]:
        async with self._engine.connect() as conn:
            return [tuple(row) for t in models.metadata.sorted_tables for row in (await conn.execute(select(t))).all()]

    async def connection_row(self, config_id: str):  # noqa: ANN201
        async with self._engine.connect() as conn:
            c = models.connections.c
            return (await conn.execute(select(models.connections).where(c.config_id == config_id))).one()

    async def tokens(self, config_id: str) -> StoredTokens:
        """Decrypts what is stored, with the keyring, as only the service itself should."""
        row = await self.connection_row(config_id)

        async def plain(blob: bytes | None, purpose: str) -> str | None:
            return (await self._cipher.decrypt(row.practice_id, blob, purpose)).decode() if blob else None

        return StoredTokens(
            await plain(row.encrypted_access_token, domain.access_purpose(config_id)),
            await plain(row.encrypted_refresh_token, domain.refresh_purpose(config_id)),
        )

    async def credential(self, config_id: str) -> object:
        row = await self.connection_row(config_id)
        if row.encrypted_credential is None:
            return None
        return await self._cipher.decrypt_json(
            row.practice_id, row.encrypted_credential, domain.credential_purpose(config_id)
        )

    async def oauth_rows(self, client_id: str) -> dict[str, int]:
        async with self._engine.connect() as conn:
            return await oauth_row_counts(conn, client_id)

    def file_bytes(self) -> bytes:
        """SQLite only: the database file and its write-ahead log, byte for byte."""
        base = self._settings.data_dir / "connection.db"
        return b"".join(p.read_bytes() for p in (base, base.with_name("connection.db-wal")) if p.exists())

    async def close(self) -> None:
        await self._engine.dispose()


async def oauth_row_counts(db: AsyncConnection | AsyncSession, client_id: str) -> dict[str, int]:
    """How many rows of each kind (ticket, code, access, refresh) the grants of Concord's OAuth
    client have, and how many grants (``details``); kinds with none left out."""
    grants, details = models.issued_oauth_grants, models.issued_oauth_grant_details
    counted = await db.execute(
        select(grants.c.kind, func.count()).where(grants.c.client_id == client_id).group_by(grants.c.kind)
    )
    found = dict(counted.all())
    found["details"] = (await db.execute(select(func.count()).where(details.c.client_id == client_id))).scalar_one()
    return {kind: n for kind, n in found.items() if n}


@pytest.fixture
async def raw_db(harness: Harness) -> AsyncIterator[RawDatabase]:
    db = RawDatabase(harness.settings)
    yield db
    await db.close()


# --- credential flows: Salesforce, Zenoti and a FHIR EMR ------------------------------------------

SF_CONSUMER_KEY = "3MVG9concord.Test.ConnectedApp"
SF_CONSUMER_SECRET = "sf-consumer-secret-0123456789abcdef"
SF_USERNAME = "sync@harbor-clinic.sandbox"
SF_PASSWORD = "Harbor-Passw0rd-9f3a1c"
SF_SECURITY_TOKEN = "HarborSecurityToken7d2e"
SF_SESSION_TIMEOUT = 7200.0
FHIR_CLIENT_ID = "concord-backend-service"
FHIR_SCOPES = ["system/Patient.rs"]


class ShiftedClock:
    """Real time plus an offset a test moves (assertions Concord signs carry real timestamps)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@dataclass(frozen=True)
class KeyPair:
    private_pem: str
    public_pem: str
    public_jwk: dict[str, Any]


def _key_pair(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, kid: str) -> KeyPair:
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public_pem = (
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    ).decode()
    jwk_type = ECKey if isinstance(key, ec.EllipticCurvePrivateKey) else RSAKey
    return KeyPair(private_pem, public_pem, jwk_type.import_key(public_pem).as_dict(private=False, kid=kid))


@pytest.fixture(scope="session")
def keys() -> dict[str, KeyPair]:
    """Key pairs made once per run (RSA generation is the slow part)."""
    return {
        "salesforce": _key_pair(rsa.generate_private_key(65537, 2048), "sf-1"),
        "fhir_rsa": _key_pair(rsa.generate_private_key(65537, 2048), "concord-rs384"),
        "fhir_ec": _key_pair(ec.generate_private_key(ec.SECP384R1()), "concord-es384"),
        "stranger": _key_pair(rsa.generate_private_key(65537, 2048), "stranger"),
    }


def _definition(document: dict[str, Any]) -> rpb.IntegrationDefinition:
    return json_format.ParseDict(document, rpb.IntegrationDefinition())


# The vendors' production endpoints; the registry moves them to the sandboxes (vendor_base_urls).
DEFINITIONS = {
    "salesforce": {
        "integration_type": "salesforce",
        "name": "Salesforce Health Cloud",
        "category": "crm",
        "capabilities": ["ENTITY_TYPE_PATIENT"],
        "auth_kind": "AUTH_KIND_OAUTH2_JWT_BEARER",
        "supported_auth_kinds": [
            "AUTH_KIND_OAUTH2_JWT_BEARER",
            "AUTH_KIND_OAUTH2_PASSWORD",
            "AUTH_KIND_OAUTH2_AUTHORIZATION_CODE",
        ],
        "pkce_supported": True,
        "scopes": ["api", "refresh_token"],
        "endpoints": {
            "api_base_url": "https://login.salesforce.com",
            "authorize_url": "https://login.salesforce.com/services/oauth2/authorize",
            "token_url": "https://login.salesforce.com/services/oauth2/token",
            "revocation_url": "https://login.salesforce.com/services/oauth2/revoke",
        },
    },
    "zenoti": {
        "integration_type": "zenoti",
        "name": "Zenoti",
        "category": "billing",
        "capabilities": ["ENTITY_TYPE_PATIENT"],
        "auth_kind": "AUTH_KIND_API_KEY",
        "supported_auth_kinds": ["AUTH_KIND_API_KEY"],
        "endpoints": {"api_base_url": "https://api.zenoti.com"},
    },
    "fhir": {
        "integration_type": "fhir",
        "name": "FHIR R4 EMR",
        "category": "emr",
        "capabilities": ["ENTITY_TYPE_PATIENT"],
        "auth_kind": "AUTH_KIND_SMART_BACKEND_SERVICES",
        "supported_auth_kinds": ["AUTH_KIND_SMART_BACKEND_SERVICES"],
        "scopes": FHIR_SCOPES,
        "endpoints": {
            "api_base_url": "https://ehr.example.org/fhir/default",
            "token_url": "https://ehr.example.org/auth/token",
        },
    },
}


@dataclass
class Vendors:
    """The three sandboxes, a registry pointing at them, practices p1 and p2 with a config per vendor,
    the OAuth clients registered on both sides, and a connection server."""

    settings: Settings
    http: httpx.AsyncClient
    registry: registry_pb2_grpc.RegistryServiceStub
    clock: ShiftedClock
    keys: dict[str, KeyPair]
    salesforce_url: str = ""  # where the token endpoint lives (the login host)
    salesforce_instance_url: str = ""  # the org's My Domain host, named in token responses
    salesforce_org_id: str = ""
    zenoti_url: str = ""
    zenoti_api_key: str = ""
    zenoti_center_id: str = ""
    fhir_url: str = ""
    apps: dict[str, Starlette] = field(default_factory=dict)
    configs: dict[tuple[str, str], str] = field(default_factory=dict)  # (practice, vendor) -> config id
    stub: connection_pb2_grpc.ConnectionServiceStub | None = None
    _started: list[tuple[ConnectionServer, object]] = field(default_factory=list)

    def config(self, vendor: str, practice: str = "p1") -> str:
        return self.configs[(practice, vendor)]

    def sandbox(self, vendor: str) -> Any:
        return self.apps[vendor].state.sandbox

    def token_requests(self, vendor: str) -> int:
        path = {"salesforce": "POST /services/oauth2/token", "fhir": "POST /auth/token"}[vendor]
        return self.sandbox(vendor).stats.counts[path]

    async def start_connection(
        self, margin_seconds: int = 300, **options: float
    ) -> tuple[ConnectionServer, connection_pb2_grpc.ConnectionServiceStub]:
        settings = self.settings.model_copy(update={"token_refresh_margin_seconds": margin_seconds})
        server = await start(settings, options=ConnectionSettings(**{"refresh_interval_seconds": 3600, **options}))
        channel = open_channel(server.address)
        self._started.append((server, channel))
        return server, connection_pb2_grpc.ConnectionServiceStub(channel)

    async def salesforce_status(self, token: pb.GetAccessTokenResponse) -> httpx.Response:
        return await self.http.get(
            f"{token.api_base_url}/services/data/v62.0/limits",
            headers={"Authorization": f"{token.token_type} {token.access_token}"},
        )

    async def zenoti_status(self, token: pb.GetAccessTokenResponse) -> int:
        reply = await self.http.get(
            f"{token.api_base_url}/v1/centers/{self.zenoti_center_id}",
            headers={"Authorization": f"{token.token_type} {token.access_token}"},
        )
        return reply.status_code

    async def fhir_status(self, token: pb.GetAccessTokenResponse) -> int:
        reply = await self.http.get(
            f"{token.api_base_url}/Patient",
            params={"_count": 1},
            headers={"Authorization": f"{token.token_type} {token.access_token}"},
        )
        return reply.status_code

    async def _stop_connections(self) -> None:
        for server, channel in reversed(self._started):
            await channel.close()
            await server.stop()

    async def fault(self, vendor: str, **actions: object) -> None:
        base = {"salesforce": self.salesforce_url, "zenoti": self.zenoti_url, "fhir": self.fhir_url}[vendor]
        reply = await self.http.post(f"{base}/_sandbox/faults", json=actions)
        assert reply.status_code < 300, reply.text


@pytest.fixture
async def vendors(settings: Settings, keys: dict[str, KeyPair]) -> AsyncIterator[Vendors]:
    clock = ShiftedClock()
    async with contextlib.AsyncExitStack() as stack:
        http = await stack.enter_async_context(httpx.AsyncClient(timeout=10))
        served: list[Served] = []
        stack.push_async_callback(stop_all, served)
        # Token requests go to the login host (127.0.0.1); token responses name the org's instance
        # (localhost), so a test can tell the instance_url apart from the definition's api_base_url.
        sf = await serve(
            lambda port: create_salesforce(
                SalesforceSandboxSettings(
                    base_url=f"http://localhost:{port}",
                    login_url=f"http://127.0.0.1:{port}",
                    clock=clock,
                    session_timeout=SF_SESSION_TIMEOUT,
                    rate_limit_enabled=False,
                )
            )
        )
        served.append(sf)
        zenoti = await serve(
            lambda port: create_zenoti(
                ZenotiSandboxSettings(
                    base_url=f"http://127.0.0.1:{port}", rate_limit_enabled=False, orgs=[OrgConfig(seed=False)]
                )
            )
        )
        served.append(zenoti)
        fhir = await serve(lambda _: create_fhir(FhirSandboxSettings(seed_data=False, rate_limit_enabled=False)))
        served.append(fhir)
        base_urls = {vendor: f"http://127.0.0.1:{one.port}" for vendor, one in zip(DEFINITIONS, served, strict=True)}
        registry = await start_registry(settings.model_copy(update={"vendor_base_urls": base_urls}))
        stack.push_async_callback(registry.stop)
        registry_channel = open_channel(registry.address)
        stack.push_async_callback(registry_channel.close)
        v = Vendors(
            settings=settings.model_copy(update={"registry_address": registry.address}),
            http=http,
            registry=registry_pb2_grpc.RegistryServiceStub(registry_channel),
            clock=clock,
            keys=keys,
            salesforce_url=base_urls["salesforce"],
            salesforce_instance_url=f"http://localhost:{sf.port}",
            zenoti_url=base_urls["zenoti"],
            fhir_url=base_urls["fhir"],
            apps={"salesforce": sf.app, "zenoti": zenoti.app, "fhir": fhir.app},
        )

        for document in DEFINITIONS.values():
            await call(
                v.registry.UpsertIntegrationDefinition,
                rpb.UpsertIntegrationDefinitionRequest(definition=_definition(document)),
            )
        for practice, name in (("p1", "Harbor Clinic"), ("p2", "Cedar Spa")):
            await call(v.registry.CreatePractice, rpb.CreatePracticeRequest(practice_id=practice, name=name))
            for vendor in DEFINITIONS:
                config = await call(
                    v.registry.CreateIntegrationConfig,
                    rpb.CreateIntegrationConfigRequest(
                        config=rpb.IntegrationConfig(
                            practice_id=practice,
                            integration_type=vendor,
                            enabled_entities=[common_pb2.ENTITY_TYPE_PATIENT],
                        )
                    ),
                )
                v.configs[(practice, vendor)] = config.config.config_id

        # The vendors' admin consoles: a Salesforce connected app (web-server flow and a certificate
        # for JWT bearer) and an integration user, a SMART client with a JWKS, Zenoti's API key.
        v.salesforce_org_id = v.sandbox("salesforce").default_org_id
        reply = await http.post(
            f"{v.salesforce_url}/_sandbox/connected-apps",
            json={
                "consumer_key": SF_CONSUMER_KEY,
                "consumer_secret": SF_CONSUMER_SECRET,
                "name": "Concord",
                "redirect_uris": [REDIRECT_URI],
                "jwt_public_key_pem": keys["salesforce"].public_pem,
                "scopes": "api refresh_token",
            },
        )
        assert reply.status_code == 201, reply.text
        reply = await http.post(
            f"{v.salesforce_url}/_sandbox/users",
            json={"username": SF_USERNAME, "password": SF_PASSWORD, "security_token": SF_SECURITY_TOKEN},
        )
        assert reply.status_code == 201, reply.text
        reply = await http.post(
            f"{v.fhir_url}/_sandbox/clients",
            json={
                "client_id": FHIR_CLIENT_ID,
                "jwks": {"keys": [keys["fhir_rsa"].public_jwk, keys["fhir_ec"].public_jwk]},
                "scopes": "system/Patient.rs system/Appointment.rs",
            },
        )
        assert reply.status_code == 201, reply.text
        org = (await http.get(f"{v.zenoti_url}/_sandbox/orgs")).json()[0]
        v.zenoti_api_key, v.zenoti_center_id = org["api_key"], org["centers"][0]["id"]

        _, v.stub = await v.start_connection()
        stack.push_async_callback(v._stop_connections)
        await call(
            v.stub.SetOAuthClient,
            pb.SetOAuthClientRequest(
                integration_type="salesforce", client_id=SF_CONSUMER_KEY, client_secret=SF_CONSUMER_SECRET
            ),
        )
        await call(v.stub.SetOAuthClient, pb.SetOAuthClientRequest(integration_type="fhir", client_id=FHIR_CLIENT_ID))
        yield v


@pytest.fixture
async def vendors_db(vendors: Vendors) -> AsyncIterator[RawDatabase]:
    db = RawDatabase(vendors.settings)
    yield db
    await db.close()
