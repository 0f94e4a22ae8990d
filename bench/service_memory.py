"""Issue 7, memory: the peak resident memory of each service during the backfill, each service in
its own OS process as docker-compose runs them (printed only, no target).

    python -m bench --only service_memory
    CONCORD_BENCH_MEMORY_PATIENTS=500 python -m bench --only service_memory     # a quick run

The topology: ``python -m services.<name>`` for registry, audit, mapping, connection, sync and the
gateway, ``python -m services.adapters --vendor fhir|salesforce``, the Temporal dev server
(services/supervisor.py ``start_temporal_dev_server``) and the FHIR EMR and Salesforce sandboxes,
each started as the supervisor starts it (services/dev_vendors.py ``LAUNCHERS``) but in a process of
its own. They find each other as in docker-compose.yml: CONCORD_* addresses on loopback ports picked
free, one data dir (SQLite files, ``keys/`` with the service-token key, the keyring and the
development issuer), the database URL when PostgreSQL is measured, dev TLS off, vendor rate limits
and pacing off.

The backfill is bench/backfill_salesforce.py's (``pull_then_push``: the pull from no cursor fhir ->
hub, then the push hub -> Salesforce) on CONCORD_BENCH_MEMORY_PATIENTS generated patients. Seeding
the EMR is setup: with the sandbox in its own process its state is out of reach, so the patients go
in through its HTTP API (``POST /_sandbox/tenants`` for an unseeded tenant, ``POST /_sandbox/tokens``
for a token, then ``PUT /fhir/<tenant>/Patient/<id>`` each, which stores what ``Sandbox.write`` does).

Every 0.25 s during the timed backfill this process reads each child's ``/proc/<pid>/status``
VmRSS; a figure is the highest of those (MB), its note the VmRSS before the backfill and the
process's VmHWM (lifetime peak: start-up and the seeding included). The sum over the processes of
one sample is its own figure. Every child is terminated (then killed) at the end, failed or not;
Linux sends each SIGTERM if this process dies first (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

from bench.backfill_salesforce import (
    VENDORS,
    backfill_problems,
    connect_vendors,
    generated_patients,
    process_status_mb,
    pull_then_push,
)
from bench.common import Figure, database_name, register_practice
from libs import service_auth
from libs.grpc_client import call, open_channel
from libs.protos.concord.connection.v1 import connection_pb2, connection_pb2_grpc
from libs.settings import SERVICES, Settings, get_settings
from libs.temporal import connect as temporal_connect
from services.adapters import task_queue
from services.gateway.auth import DevIssuer
from services.supervisor import die_with_parent, free_port, start_temporal_dev_server

NAME = "service_memory"
PATIENTS = int(os.environ.get("CONCORD_BENCH_MEMORY_PATIENTS", "2000"))
INTERVAL = 0.25  # seconds between two samples
PRACTICE_ID = "bench-memory"
START_TIMEOUT = 180.0  # seconds for one process to be ready (imports on a busy 2-core machine)
STOP_TIMEOUT = 15.0  # seconds a group of processes has to exit on SIGTERM before SIGKILL
ROOT = Path(__file__).resolve().parent.parent

# A sandbox in a process of its own, started by the supervisor's launcher; what Concord needs of it
# (its URL, the client registered with it, the connect body) goes to a file once it serves.
_SANDBOX_CHILD = """
import asyncio, json, os, sys
from libs.settings import get_settings
from services.dev_vendors import LAUNCHERS

async def main(vendor, redirect, out):
    dev = await LAUNCHERS[vendor](get_settings(), 0, redirect, False)
    about = {"url": dev.sandbox.url, "client_id": dev.client_id, "client_secret": dev.client_secret,
             "connect": dev.connect, "settings": dev.settings}
    with open(out + ".tmp", "w") as handle:
        json.dump(about, handle)
    os.replace(out + ".tmp", out)
    await dev.sandbox.task  # uvicorn ends it on SIGTERM

asyncio.run(main(*sys.argv[1:]))
"""

T = TypeVar("T")


def _say(text: str) -> None:
    print(f"  {NAME}: {text}", flush=True)


@dataclass
class Child:
    """One OS process of the topology."""

    label: str  # as the figure names it
    process: subprocess.Popen
    log: Path

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return ""
        return "\n".join(f"    | {line}" for line in text)

    def check(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.label} exited ({self.process.returncode}); {self.log}:\n{self.tail()}")


@dataclass
class Topology:
    data_dir: Path
    settings: Settings
    env: dict[str, str]
    # Started in this order, stopped in the reverse; each group stops together.
    groups: list[list[Child]] = field(default_factory=list)
    sandboxes: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def children(self) -> list[Child]:
        return [child for group in self.groups for child in group]

    def spawn(self, label: str, args: list[str], group: list[Child], env: dict[str, str] | None = None) -> Child:
        log = self.data_dir / "logs" / f"{label.split(' (')[0].replace(' ', '-')}.log"
        log.parent.mkdir(exist_ok=True)
        with open(log, "ab") as handle:
            process = subprocess.Popen(  # noqa: S603 (our interpreter, our arguments)
                args,
                cwd=ROOT,
                env=env or self.env,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        child = Child(label, process, log)
        group.append(child)
        return child

    def stop(self) -> None:
        """Terminates every child, the last started first; a group still running after
        STOP_TIMEOUT is killed."""
        for group in reversed(self.groups):
            running = [child.process for child in group if child.process.poll() is None]
            for process in running:
                process.terminate()
            deadline = time.monotonic() + STOP_TIMEOUT
            for process in running:
                try:
                    process.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def _env(settings: Settings, names: list[str]) -> dict[str, str]:
    """The CONCORD_* variables that give a standalone service these settings (docker-compose's way)."""
    env = dict(os.environ)
    for name in names:
        value = getattr(settings, name)
        if isinstance(value, dict):
            text = json.dumps(value)
        elif isinstance(value, bool):
            text = "true" if value else "false"
        else:
            text = str(value)
        env[f"CONCORD_{name.upper()}"] = text
    return env


async def _until(child: Child, ready: Callable[[], Awaitable[bool]], what: str) -> None:
    """Polls ``ready()`` until it is true, failing when the child exits or START_TIMEOUT passes."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        child.check()
        try:
            done = await ready()
        except Exception:  # noqa: BLE001 (not up yet: refused, reset, Temporal's RPCError...)
            done = False
        if done:
            return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{child.label} was not {what} after {START_TIMEOUT:.0f} s; {child.log}:\n{child.tail()}")


async def _all(waits: list[Awaitable[None]]) -> None:
    """Every wait done; on the first failure the others are cancelled (no orphan polling)."""
    tasks = [asyncio.ensure_future(wait) for wait in waits]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()


async def _listening(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    _, writer = await asyncio.open_connection(host, int(port))
    writer.close()
    await writer.wait_closed()
    return True


async def start_topology(database_url: str) -> Topology:
    """Everything the backfill needs, each in its own process; the caller stops it (``stop``)."""
    data_dir = Path(tempfile.mkdtemp(prefix="concord-bench-memory-"))
    gateway_port = free_port()
    overrides: dict[str, Any] = {
        "data_dir": data_dir,
        "log_level": "WARNING",
        "vendor_pacing": False,
        "tls_dev_certificates": False,
        "gateway_host": "127.0.0.1",
        "gateway_port": gateway_port,
        "public_base_url": f"http://127.0.0.1:{gateway_port}",
    }
    if database_url:
        overrides["database_url"] = database_url
        overrides["database_schema_prefix"] = f"bench_{uuid.uuid4().hex[:8]}_"
    settings = get_settings().model_copy(update=overrides)
    top = Topology(data_dir, settings, _env(settings, list(overrides)))
    try:
        await _start(top, list(overrides))
    except BaseException:
        _show_logs(top)
        top.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
        raise
    return top


async def _start(top: Topology, names: list[str]) -> None:
    # The sandboxes first: the services are told their URLs.
    group: list[Child] = []
    top.groups.append(group)
    waits = []
    for vendor in VENDORS:
        redirect = f"{top.settings.public_base_url}/integrations/{vendor}/callback"
        out = top.data_dir / f"sandbox-{vendor}.json"
        label = f"{'FHIR EMR' if vendor == 'fhir' else 'Salesforce'} sandbox (own process)"
        child = top.spawn(label, [sys.executable, "-c", _SANDBOX_CHILD, vendor, redirect, str(out)], group)

        async def written(out: Path = out) -> bool:
            return await asyncio.to_thread(out.exists)

        waits.append(_until(child, written, "serving"))
    await _all(waits)
    vendor_settings: dict[str, Any] = {}
    for vendor in VENDORS:
        top.sandboxes[vendor] = json.loads((top.data_dir / f"sandbox-{vendor}.json").read_text())
        vendor_settings |= top.sandboxes[vendor]["settings"]
    urls = {vendor: about["url"] for vendor, about in top.sandboxes.items()}
    settings = top.settings.model_copy(
        update={"vendor_base_urls": {**top.settings.vendor_base_urls, **urls}, **vendor_settings}
    )
    names += ["vendor_base_urls", *vendor_settings]

    # The Temporal dev server (its derived ports may be taken on a busy machine: another port then).
    for attempt in range(3):
        port = free_port()
        try:
            temporal = await start_temporal_dev_server(settings, port, None)
            break
        except RuntimeError:
            if attempt == 2:
                raise
    top.groups.append([Child("Temporal dev server (own process)", temporal, settings.data_dir / "temporal.log")])
    settings = settings.model_copy(update={"temporal_address": f"127.0.0.1:{port}"})
    names.append("temporal_address")

    # The five gRPC services, on ports picked now (their peers are told them), started together.
    addresses = {f"{name}_address": f"127.0.0.1:{free_port()}" for name in SERVICES}
    settings = settings.model_copy(update=addresses)
    names += list(addresses)
    top.settings, top.env = settings, _env(settings, names)
    group = []
    top.groups.append(group)
    waits = []
    for name in ("registry", "audit", "mapping", "connection", "sync"):
        child = top.spawn(f"{name} service (own process)", [sys.executable, "-m", f"services.{name}"], group)
        address = settings.service_address(name)
        waits.append(_until(child, lambda address=address: _listening(address), f"listening on {address}"))
    await _all(waits)

    # This process registers the vendors' OAuth clients with the connection service, as the
    # supervisor does: it holds the deployment's service key for that (<data_dir>/keys).
    service_auth.install(settings)
    async with open_channel(settings.connection_address) as channel:
        stub = connection_pb2_grpc.ConnectionServiceStub(channel)
        for vendor, about in top.sandboxes.items():
            request = connection_pb2.SetOAuthClientRequest(
                integration_type=vendor, client_id=about["client_id"], client_secret=about["client_secret"]
            )
            await call(stub.SetOAuthClient, request)

    # The adapter workers and the gateway.
    group = []
    top.groups.append(group)
    temporal_client = await temporal_connect(settings)
    waits = []
    for vendor in VENDORS:
        child = top.spawn(
            f"{vendor} adapter worker (own process)",
            [sys.executable, "-m", "services.adapters", "--vendor", vendor],
            group,
        )

        async def polling(vendor: str = vendor) -> bool:
            answer = await temporal_client.workflow_service.describe_task_queue(
                DescribeTaskQueueRequest(
                    namespace=settings.temporal_namespace,
                    task_queue=TaskQueue(name=task_queue(vendor)),
                    task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
                )
            )
            return len(answer.pollers) > 0

        waits.append(_until(child, polling, f"polling {task_queue(vendor)}"))
    gateway = top.spawn("gateway (own process)", [sys.executable, "-m", "services.gateway"], group)

    async def healthy() -> bool:
        async with httpx.AsyncClient(timeout=2) as http:
            return (await http.get(f"{settings.public_base_url}/healthz")).status_code == 200

    waits.append(_until(gateway, healthy, "healthy"))
    await _all(waits)


def _show_logs(top: Topology) -> None:
    for child in top.children:
        tail = child.tail()
        if tail:
            print(f"  {NAME}: {child.label}, {child.log.name} (last lines):\n{tail}", flush=True)


async def seed_fhir_over_http(sandbox: dict[str, Any], tenant: str, patients: list[dict[str, Any]]) -> None:
    """Writes the patients into a new, unseeded tenant of the FHIR sandbox through its HTTP API
    (setup, not timed): a tenant and a token from /_sandbox, then a PUT per patient."""
    async with httpx.AsyncClient(base_url=sandbox["url"], timeout=60) as http:
        answer = await http.post("/_sandbox/tenants", json={"id": tenant, "seed": False})
        answer.raise_for_status()
        answer = await http.post(
            "/_sandbox/tokens", json={"client_id": sandbox["client_id"], "scope": "system/Patient.cruds"}
        )
        answer.raise_for_status()
        headers = {"Authorization": f"Bearer {answer.json()['access_token']}", "Content-Type": "application/fhir+json"}
        pending = iter(patients)

        async def writer() -> None:
            for patient in pending:
                put = await http.put(f"/fhir/{tenant}/Patient/{patient['id']}", json=patient, headers=headers)
                put.raise_for_status()

        # A few requests in flight: the sandbox (one event loop) is busy while this process sends the next.
        await asyncio.gather(*(writer() for _ in range(4)))


class ProcessSampler:
    """Each child's VmRSS every INTERVAL s while entered: the highest per process and the highest
    sum of one sample."""

    def __init__(self, children: list[Child]) -> None:
        self.children = children
        self.before: dict[str, float] = {}
        self.peak: dict[str, float] = {}
        self.peak_total = 0.0
        self.samples = 0
        self._task: asyncio.Task | None = None

    def sample(self) -> None:
        total = 0.0
        for child in self.children:
            rss = process_status_mb(child.process.pid, "VmRSS")
            if rss is None:
                continue
            self.peak[child.label] = max(self.peak.get(child.label, 0.0), rss)
            total += rss
        self.peak_total = max(self.peak_total, total)
        self.samples += 1

    async def _loop(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(INTERVAL)

    def __enter__(self) -> ProcessSampler:
        for child in self.children:
            self.before[child.label] = process_status_mb(child.process.pid, "VmRSS") or 0.0
        self._task = asyncio.get_running_loop().create_task(self._loop())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        self.sample()


async def _watched(work: Awaitable[T], children: list[Child]) -> T:
    """``work``, failed as soon as one of the children exits (a dead adapter worker would leave the
    sync waiting for an hour)."""

    async def watch() -> None:
        while True:
            for child in children:
                child.check()
            await asyncio.sleep(0.5)

    task, watcher = asyncio.ensure_future(work), asyncio.ensure_future(watch())
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
        if watcher.done():
            watcher.result()  # raises: a child exited
        return task.result()
    finally:
        for pending in (task, watcher):
            pending.cancel()
        await asyncio.gather(task, watcher, return_exceptions=True)


async def drive(top: Topology, count: int) -> tuple[dict[str, Any], ProcessSampler]:
    """Seeds the EMR and connects the practice (untimed), then the sampled pull and push."""
    began = time.perf_counter()
    await seed_fhir_over_http(top.sandboxes["fhir"], PRACTICE_ID, generated_patients(count))
    _say(f"seeded {count:,} patients into the FHIR sandbox in {time.perf_counter() - began:.1f} s")
    token = DevIssuer.in_data_dir(top.settings).mint("bench", PRACTICE_ID, "admin")
    async with httpx.AsyncClient(base_url=top.settings.public_base_url, timeout=3600) as http:
        headers = await register_practice(http, token, VENDORS)
        bodies = {vendor: top.sandboxes[vendor]["connect"] for vendor in VENDORS}
        await connect_vendors(http, headers, bodies, PRACTICE_ID)
        with ProcessSampler(top.children) as sampler:
            result = await pull_then_push(http, headers, top.sandboxes["salesforce"]["url"], PRACTICE_ID)
    return result, sampler


def _figure_order(child: Child) -> int:
    """Services first, then the gateway, the adapter workers, the sandboxes and Temporal."""
    kinds = ("service (", "gateway", "adapter", "sandbox", "Temporal")
    return next(rank for rank, kind in enumerate(kinds) if kind in child.label)


async def run(database_url: str) -> list[Figure]:
    count, where = PATIENTS, database_name(database_url)
    began = time.perf_counter()
    top = await start_topology(database_url)
    try:
        _say(f"{len(top.children)} processes up in {time.perf_counter() - began:.1f} s")
        try:
            result, sampler = await _watched(drive(top, count), top.children)
        except BaseException:
            _show_logs(top)
            raise
        lifetime = {child.label: process_status_mb(child.process.pid, "VmHWM") for child in top.children}
    finally:
        top.stop()
        shutil.rmtree(top.data_dir, ignore_errors=True)

    problems = backfill_problems(result, count)
    flag = f"; NOT CLEAN: {problems}" if problems else ""
    during = (
        f"VmRSS every {INTERVAL} s ({sampler.samples} samples) during the timed {count:,}-patient backfill "
        f"(pull {result['pull_seconds']:.1f} s + push {result['push_seconds']:.1f} s)"
    )
    figures = []
    for child in sorted(top.children, key=_figure_order):
        hwm = lifetime[child.label]
        figures.append(
            Figure(
                f"peak memory: {child.label}",
                round(sampler.peak.get(child.label, 0.0), 1),
                "MB",
                note=(
                    f"{during}; {sampler.before[child.label]:.0f} MB before it; VmHWM "
                    f"{'n/a' if hwm is None else f'{hwm:.1f} MB'} (process lifetime peak, start-up and seeding "
                    f"included){flag}"
                ),
                database=where,
            )
        )
    figures.append(
        Figure(
            f"peak memory: all {len(top.children)} processes together",
            round(sampler.peak_total, 1),
            "MB",
            note=f"the highest sum of one sample's VmRSS over the processes above; {during}{flag}",
            database=where,
        )
    )
    return figures
