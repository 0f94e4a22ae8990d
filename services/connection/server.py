"""Builds the connection service: database, cipher, registry channel, use cases, gRPC server and
the background refresher."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import httpx

from libs.crypto import EnvelopeCipher, LocalKeyring
from libs.grpc_client import open_channel
from libs.grpc_server import ServiceBinding
from libs.protos.concord.connection.v1 import connection_pb2, connection_pb2_grpc
from libs.service import RunningService, open_database, serve_grpc
from libs.settings import Settings
from services.connection import models
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
) -> ConnectionServer:
    options = options or ConnectionSettings()
    db = await open_database(NAME, settings, Path(__file__).parent / "migrations")
    cipher = EnvelopeCipher(LocalKeyring.in_data_dir(settings.data_dir), db.sessions, models.data_keys)
    channel = open_channel(settings.registry_address)
    registry = RegistryClient(channel, options.definition_cache_seconds)
    repository = ConnectionRepository(db.sessions)
    service = ConnectionService(
        repository,
        cipher,
        registry,
        VendorOAuth(options.vendor_timeout_seconds, vendor_transport),
        refresh_margin_seconds=settings.token_refresh_margin_seconds,
        pending_ttl_seconds=options.pending_authorization_ttl_seconds,
    )
    refresher = TokenRefresher(service, options.refresh_interval_seconds)
    binding = ServiceBinding(
        connection_pb2.DESCRIPTOR.services_by_name["ConnectionService"].full_name,
        connection_pb2_grpc.add_ConnectionServiceServicer_to_server,
        ConnectionServicer(
            service, InboundAccess(db.sessions, cipher, registry, repository), OAuthServer(db.sessions, registry)
        ),
    )
    running = await serve_grpc(NAME, address, [binding], [db.engine.dispose, channel.close, refresher.stop])
    refresher.start()
    return ConnectionServer(
        name=running.name, server=running.server, port=running.port, closers=running.closers, refresher=refresher
    )
