"""Builds the connection service: database, cipher, registry and audit channels, use cases, gRPC
server and the background loop (token refresh, purges)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx

from libs.crypto import EnvelopeCipher, rewrap_in_background
from libs.grpc_client import open_channel
from libs.grpc_server import ServiceBinding
from libs.key_providers import key_provider_from
from libs.protos.concord.audit.v1 import audit_pb2_grpc
from libs.protos.concord.connection.v1 import connection_pb2, connection_pb2_grpc
from libs.service import RunningService, open_database, serve_grpc
from libs.settings import Settings
from services.connection import models
from services.connection.audit import CredentialAudit
from services.connection.inbound import InboundAccess
from services.connection.oauth import VendorOAuth
from services.connection.oauth_server import OAuthServer
from services.connection.refresher import TokenRefresher
from services.connection.registry_client import RegistryClient
from services.connection.repository import ConnectionRepository
from services.connection.service import ConnectionService
from services.connection.servicer import ConnectionServicer
from services.connection.settings import ConnectionSettings

NAME = "connection"


@dataclass
class ConnectionServer(RunningService):
    refresher: TokenRefresher | None = None


async def start(
    settings: Settings,
    address: str = "127.0.0.1:0",
    options: ConnectionSettings | None = None,
    vendor_transport: httpx.AsyncBaseTransport | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> ConnectionServer:
    """``clock`` is what the service takes for now (tests move it to expire tokens and secrets)."""
    options = options or ConnectionSettings()
    db = await open_database(NAME, settings, Path(__file__).parent / "migrations")
    # Data keys wrapped by the configured key provider (the local keyring, or AWS KMS).
    cipher = EnvelopeCipher(key_provider_from(settings), db.sessions, models.data_keys)
    channel = open_channel(settings.registry_address)
    registry = RegistryClient(channel, options.definition_cache_seconds)
    audit_channel = open_channel(settings.audit_address)
    audit = CredentialAudit(audit_pb2_grpc.AuditServiceStub(audit_channel))
    repository = ConnectionRepository(db.sessions)
    service = ConnectionService(
        repository,
        cipher,
        registry,
        VendorOAuth(options.vendor_timeout_seconds, vendor_transport),
        refresh_margin_seconds=settings.token_refresh_margin_seconds,
        pending_ttl_seconds=options.pending_authorization_ttl_seconds,
        clock=clock,
    )
    oauth_server = OAuthServer(db.sessions, registry, now=clock, audit=audit)
    refresher = TokenRefresher(service, options.refresh_interval_seconds, purges=[oauth_server.purge])
    binding = ServiceBinding(
        connection_pb2.DESCRIPTOR.services_by_name["ConnectionService"].full_name,
        connection_pb2_grpc.add_ConnectionServiceServicer_to_server,
        ConnectionServicer(
            service, InboundAccess(db.sessions, cipher, registry, repository, audit), oauth_server, audit=audit
        ),
    )
    closers = [
        db.engine.dispose,
        channel.close,
        audit_channel.close,
        refresher.stop,
        rewrap_in_background(cipher, NAME),
    ]
    running = await serve_grpc(NAME, address, [binding], closers)
    refresher.start()
    return ConnectionServer(
        name=running.name, server=running.server, port=running.port, closers=running.closers, refresher=refresher
    )
