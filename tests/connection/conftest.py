"""The connection service over real gRPC, against the registry and the GoHighLevel sandbox served
over real HTTP (uvicorn on 127.0.0.1:0), on each database backend."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import uvicorn
from sqlalchemy import select

from libs.crypto import EnvelopeCipher, LocalKeyring
from libs.db import create_engine, create_session_factory
from libs.grpc_client import call, open_channel
from libs.protos.concord.connection.v1 import connection_pb2 as pb
from libs.protos.concord.connection.v1 import connection_pb2_grpc
from libs.protos.concord.registry.v1 import registry_pb2 as rpb
from libs.protos.concord.registry.v1 import registry_pb2_grpc
from libs.settings import Settings
from sandbox.ghl.app import create_app
from sandbox.ghl.settings import GhlSandboxSettings
from sandbox.ghl.state import Sandbox
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
class GhlSandbox:
    url: str
    state: Sandbox


@pytest.fixture
async def ghl_sandbox() -> AsyncIterator[GhlSandbox]:
    app = create_app(GhlSandboxSettings(rate_limit_enabled=False))
    server = _Uvicorn(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", access_log=False))
    serving = asyncio.create_task(server.serve())
    ready = asyncio.create_task(server.ready.wait())
    await asyncio.wait({serving, ready}, return_when=asyncio.FIRST_COMPLETED)
    assert server.ready.is_set(), "the GHL sandbox did not start"
    port = server.servers[0].sockets[0].getsockname()[1]
    yield GhlSandbox(f"http://127.0.0.1:{port}", app.state.sandbox)
    server.should_exit = True
    await serving


@dataclass
class Harness:
    """A practice with a GHL config, the app registered at the sandbox, and connection servers."""

    settings: Settings
    sandbox: GhlSandbox
    registry: registry_pb2_grpc.RegistryServiceStub
    http: httpx.AsyncClient
    config_id: str = ""
    location_id: str = ""
    stub: connection_pb2_grpc.ConnectionServiceStub | None = None
    server: ConnectionServer | None = None
    _started: list[tuple[ConnectionServer, object]] = field(default_factory=list)

    async def start_connection(
        self, margin_seconds: int = 300, **options: float
    ) -> tuple[ConnectionServer, connection_pb2_grpc.ConnectionServiceStub]:
        settings = self.settings.model_copy(update={"token_refresh_margin_seconds": margin_seconds})
        server = await start(settings, options=ConnectionSettings(**{"refresh_interval_seconds": 3600, **options}))
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
    registry_channel = open_channel(registry.address)
    http = httpx.AsyncClient(timeout=10)
    h = Harness(
        settings=settings.model_copy(update={"registry_address": registry.address}),
        sandbox=ghl_sandbox,
        registry=registry_pb2_grpc.RegistryServiceStub(registry_channel),
        http=http,
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

    def file_bytes(self) -> bytes:
        """SQLite only: the database file and its write-ahead log, byte for byte."""
        base = self._settings.data_dir / "connection.db"
        return b"".join(p.read_bytes() for p in (base, base.with_name("connection.db-wal")) if p.exists())

    async def close(self) -> None:
        await self._engine.dispose()


@pytest.fixture
async def raw_db(harness: Harness) -> AsyncIterator[RawDatabase]:
    db = RawDatabase(harness.settings)
    yield db
    await db.close()
