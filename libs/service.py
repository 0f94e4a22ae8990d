"""How a service starts: telemetry, its database (migrated), its gRPC server; and how it stops.

Each service exposes ``async def start(settings, address=None) -> RunningService`` so the same
code serves ``python -m services.<name>``, the supervisor of the embedded default and the tests
(which bind 127.0.0.1:0).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from libs import service_auth, tls
from libs.db import create_engine, create_session_factory, migrate, schema_for
from libs.grpc_server import ServiceBinding, create_server
from libs.settings import Settings

log = logging.getLogger("concord.service")


@dataclass
class Database:
    engine: AsyncEngine
    sessions: async_sessionmaker


async def open_database(service: str, settings: Settings, migrations_dir: Path) -> Database:
    """A service's first step: its service key (to call its peers and be called), then its database."""
    service_auth.install(settings)
    tls.install(settings)
    engine = create_engine(service, settings)
    await migrate(engine, migrations_dir, schema_for(service, settings))
    return Database(engine, create_session_factory(engine))


@dataclass
class RunningService:
    name: str
    server: grpc.aio.Server
    port: int
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def stop(self) -> None:
        await self.server.stop(grace=2)
        for close in reversed(self.closers):
            await close()


async def serve_grpc(
    name: str, address: str, bindings: Sequence[ServiceBinding], closers: Sequence[Callable[[], Awaitable[None]]]
) -> RunningService:
    server, port, _health = await create_server(address, bindings)
    log.info("%s serving on port %d", name, port)
    return RunningService(name=name, server=server, port=port, closers=list(closers))


async def wait_for_shutdown() -> None:
    """Blocks until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def run_main(name: str, start: Callable[[Settings, str], Awaitable[RunningService]]) -> None:
    """The body of every service's ``__main__``."""
    from libs.settings import get_settings
    from libs.telemetry import setup_telemetry

    async def _main() -> None:
        settings = get_settings()
        setup_telemetry(name, settings)
        service = await start(settings, settings.service_address(name))
        try:
            await wait_for_shutdown()
        finally:
            await service.stop()

    asyncio.run(_main())
