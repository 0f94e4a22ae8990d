"""Runs the gateway with uvicorn, in its own process or inside the supervisor."""

from __future__ import annotations

from dataclasses import dataclass

from joserfc.jwk import KeySet
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

from libs.asgi import RunningAsgi, serve_asgi
from libs.grpc_client import open_channel
from libs.protos.concord.audit.v1 import audit_pb2_grpc
from libs.protos.concord.connection.v1 import connection_pb2_grpc
from libs.protos.concord.registry.v1 import registry_pb2_grpc
from libs.protos.concord.sync.v1 import sync_pb2_grpc
from libs.settings import Settings
from services.gateway.app import Backends, create_app
from services.gateway.auth import DevIssuer

NAME = "gateway"


@dataclass
class RunningGateway:
    asgi: RunningAsgi
    issuer: DevIssuer
    channels: list

    @property
    def url(self) -> str:
        return self.asgi.url

    @property
    def port(self) -> int:
        return self.asgi.port

    async def stop(self) -> None:
        await self.asgi.stop()
        for channel in self.channels:
            await channel.close()


async def start(settings: Settings, port: int | None = None) -> RunningGateway:
    issuer = DevIssuer.in_data_dir(settings)
    channels = [open_channel(settings.service_address(name)) for name in ("registry", "connection", "sync", "audit")]
    backends = Backends(
        registry=registry_pb2_grpc.RegistryServiceStub(channels[0]),
        connection=connection_pb2_grpc.ConnectionServiceStub(channels[1]),
        sync=sync_pb2_grpc.SyncServiceStub(channels[2]),
        audit=audit_pb2_grpc.AuditServiceStub(channels[3]),
    )
    app = create_app(settings, backends, KeySet([issuer.key]))
    FastAPIInstrumentor.instrument_app(app)
    asgi = await serve_asgi(app, settings.gateway_host, settings.gateway_port if port is None else port)
    return RunningGateway(asgi, issuer, channels)
