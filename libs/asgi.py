"""Serves an ASGI app with uvicorn inside the running event loop (gateway, sandboxes, tests)."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass

import uvicorn


@dataclass
class RunningAsgi:
    server: uvicorn.Server
    task: asyncio.Task
    port: int
    host: str

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def stop(self) -> None:
        self.server.should_exit = True
        await self.task


async def serve_asgi(app, host: str = "127.0.0.1", port: int = 0) -> RunningAsgi:  # noqa: ANN001
    """Binds first (port 0 picks a free one), then serves; returns once uvicorn has started."""
    return await serve_asgi_at(lambda _url: app, host, port)


def bind_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A bound listening socket (port 0 picks a free one), to know a server's URL before serving:
    holding it from the start, nothing else can take the port meanwhile."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit it: without it every keep-alive answer waits ~40 ms (Nagle).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    return sock


async def serve_asgi_at(make_app, host: str = "127.0.0.1", port: int = 0) -> RunningAsgi:  # noqa: ANN001
    """Like serve_asgi, for apps that must know their own URL: ``make_app(url)`` builds the app
    once the port is bound."""
    sock = bind_socket(host, port)
    return await serve_on(sock, make_app(f"http://{host}:{sock.getsockname()[1]}"))


async def serve_on(sock: socket.socket, app) -> RunningAsgi:  # noqa: ANN001
    """Serves ``app`` on a socket bound by bind_socket; returns once uvicorn has started."""
    host = sock.getsockname()[0]
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    # uvicorn offers a flag, not an event, for "started".
    while not server.started:
        if task.done():
            await task
            raise RuntimeError("server exited during start-up")
        await asyncio.sleep(0.005)
    return RunningAsgi(server, task, sock.getsockname()[1], host)
