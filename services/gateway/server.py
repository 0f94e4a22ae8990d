"""Runs the gateway with uvicorn, in its own process or inside the supervisor."""

from __future__ import annotations

import gc
import socket
from dataclasses import dataclass

from joserfc.jwk import KeySet
from opentelemetry import context as otel_context
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from starlette.types import ASGIApp, Receive, Scope, Send

from libs import service_auth, tls
from libs.asgi import RunningAsgi, bind_socket, serve_on
from libs.grpc_client import open_channel
from libs.protos.concord.audit.v1 import audit_pb2_grpc
from libs.protos.concord.connection.v1 import connection_pb2_grpc
from libs.protos.concord.mapping.v1 import mapping_pb2_grpc
from libs.protos.concord.registry.v1 import registry_pb2_grpc
from libs.protos.concord.sync.v1 import sync_pb2_grpc
from libs.settings import Settings
from services.gateway.admission import Admission
from services.gateway.app import create_app
from services.gateway.auth import DevIssuer
from services.gateway.deps import Backends
from services.gateway.limits import BodyLimit
from services.gateway.settings import GatewaySettings

NAME = "gateway"
# The cyclic garbage collector's youngest generation is collected after this many new container
# objects (CPython's default: 700). A read allocates hundreds: at 200 reads/s the default ran a
# collection about every 3 ms.
GC_YOUNG_THRESHOLD = 5_000


class FreshTraceContext:
    """Starts every request from an empty trace context.

    uvicorn serves the next request of a keep-alive connection from a task created inside the
    previous request's task, which would make the previous request's span its parent: two syncs
    started one after the other would share one trace."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        token = otel_context.attach(otel_context.Context())
        try:
            await self.app(scope, receive, send)
        finally:
            otel_context.detach(token)


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


async def start(
    settings: Settings,
    port: int | None = None,
    sock: socket.socket | None = None,
    gateway: GatewaySettings | None = None,
) -> RunningGateway:
    """Serves the gateway on ``sock`` (bound earlier, so its URL was known and held) or binds
    ``port`` (settings.gateway_port when None). ``gateway``: its own settings (else from the
    environment)."""
    gateway = gateway or GatewaySettings()
    issuer = DevIssuer.in_data_dir(settings)
    service_auth.install(settings)
    tls.install(settings)
    channels = [
        open_channel(settings.service_address(name)) for name in ("registry", "connection", "sync", "audit", "mapping")
    ]
    backends = Backends(
        registry=registry_pb2_grpc.RegistryServiceStub(channels[0]),
        connection=connection_pb2_grpc.ConnectionServiceStub(channels[1]),
        sync=sync_pb2_grpc.SyncServiceStub(channels[2]),
        audit=audit_pb2_grpc.AuditServiceStub(channels[3]),
        mapping=mapping_pb2_grpc.MappingServiceStub(channels[4]),
    )
    app = create_app(settings, backends, KeySet([issuer.key]))
    FastAPIInstrumentor.instrument_app(app, exclude_spans=["receive", "send"])
    if sock is None:
        sock = bind_socket(settings.gateway_host, settings.gateway_port if port is None else port)
    # Outermost, admission control: a refused request costs nothing further.
    served = FreshTraceContext(BodyLimit(app, settings.gateway_max_body_bytes))
    asgi = await serve_on(sock, Admission(served, gateway.max_in_flight, gateway.retry_after_seconds))
    settle_heap()
    return RunningGateway(asgi, issuer, channels)


def settle_heap() -> None:
    """Takes what start-up made (modules, classes, protobuf descriptors, FHIR models and, in the
    embedded default, which starts the gateway last, every service's objects) out of the garbage
    collector's sight, and collects its youngest generation less often. Process-wide: the
    gateway's own process, or the whole stack's.

    Every full collection walked that start-up heap, holding the event loop each time: on the
    read benchmark (bench/gateway_reads.py) the collector took 13-14 % of the loop and its full
    collections stopped everything for up to 230 ms, several times in 10 s; with this, 2-5 % and
    no pause over 15 ms. Frozen objects are still freed by reference counting; only cycles among
    them are no longer found, and start-up makes few that die (collected first, here)."""
    gc.collect()
    gc.freeze()
    young, middle, old = gc.get_threshold()
    gc.set_threshold(max(young, GC_YOUNG_THRESHOLD), middle, old)
