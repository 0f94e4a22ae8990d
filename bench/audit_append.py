"""Audit events appended with the hash chain (issue 7: ≥ 5,000 events/s on PostgreSQL).

Only the audit service runs (services/audit/server.py, a gRPC server in this process, a fresh data
dir and, on PostgreSQL, a schema prefix of its own). This process holds the service key (the
service installs it at start, libs/service_auth.py), so Record is called over gRPC through
libs.grpc_client as a Concord service (a system caller) calls it, in batches like the sync
service's (one RPC per page: ``CONCORD_BENCH_AUDIT_BATCH`` events, default 100). Two shapes:

* several practices: ``CONCORD_BENCH_AUDIT_CALLERS`` concurrent callers (default 8) spread over 4
  practices, so chains of different practices are appended side by side;
* one practice: the same callers on one chain, which serialises per practice (the service's lock
  per practice, and pg_advisory_xact_lock on PostgreSQL).

Each shape appends for ``CONCORD_BENCH_AUDIT_SECONDS`` (default 10) after a short warm-up; every
chain is verified afterwards (Verify RPC). The target applies on PostgreSQL; SQLite is printed
without one.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path

from bench.common import Figure, at_least, database_name
from libs.grpc_client import call, open_channel
from libs.protos.concord.audit.v1 import audit_pb2, audit_pb2_grpc
from libs.settings import get_settings
from services.audit import server as audit_server

NAME = "audit_append"
POSTGRES_ONLY = False
TARGET = 5_000
FIELDS = ["name", "birthDate", "telecom", "address"]


def _events(practice_id: str, count: int, run_id: str) -> list[audit_pb2.AuditEvent]:
    """What a push page audits: one patient.disclose per record, field names only."""
    events = []
    for _ in range(count):
        patient = str(uuid.uuid4())
        events.append(
            audit_pb2.AuditEvent(
                practice_id=practice_id,
                user_id="system:sync",
                action="patient.disclose",
                resource=f"Patient/{patient}",
                patient_id=patient,
                integration_type="hl",
                data_accessed=FIELDS,
                success=True,
                correlation_id=run_id,
            )
        )
    return events


async def _append(
    stub: audit_pb2_grpc.AuditServiceStub, practices: list[str], callers: int, batch: int, seconds: float
) -> tuple[int, float, list[float]]:
    """``callers`` loops, caller i on practices[i % len], each sending batches until the deadline.
    Returns (events stored, elapsed seconds, per-RPC latencies)."""
    stored = 0
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def caller(index: int) -> None:
        nonlocal stored
        practice_id = practices[index % len(practices)]
        run_id = str(uuid.uuid4())
        while time.perf_counter() < deadline:
            events = _events(practice_id, batch, run_id)
            began = time.perf_counter()
            answer = await call(stub.Record, audit_pb2.RecordRequest(events=events))
            latencies.append(time.perf_counter() - began)
            stored += len(answer.events)

    began = time.perf_counter()
    await asyncio.gather(*(caller(i) for i in range(callers)))
    return stored, time.perf_counter() - began, latencies


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


async def run(database_url: str) -> list[Figure]:
    seconds = float(os.environ.get("CONCORD_BENCH_AUDIT_SECONDS", "10"))
    batch = int(os.environ.get("CONCORD_BENCH_AUDIT_BATCH", "100"))
    callers = int(os.environ.get("CONCORD_BENCH_AUDIT_CALLERS", "8"))
    where = database_name(database_url)
    data_dir = Path(tempfile.mkdtemp(prefix="concord-bench-audit-"))
    overrides: dict = {"data_dir": data_dir, "log_level": "WARNING"}
    if database_url:
        overrides["database_url"] = database_url
        overrides["database_schema_prefix"] = f"bench_audit_{os.getpid()}_{uuid.uuid4().hex[:6]}_"
    settings = get_settings().model_copy(update=overrides)
    service = await audit_server.start(settings, "127.0.0.1:0")
    channel = open_channel(service.address)
    figures: list[Figure] = []
    try:
        stub = audit_pb2_grpc.AuditServiceStub(channel)
        await _append(stub, ["bench-warmup"], 2, batch, 1.0)  # connections, caches, JIT of the hash path
        shapes = {
            f"{callers} callers, 4 practices": [f"bench-audit-{i}" for i in range(4)],
            f"{callers} callers, 1 practice": ["bench-audit-single"],
        }
        for shape, practices in shapes.items():
            stored, elapsed, latencies = await _append(stub, practices, callers, batch, seconds)
            rate = stored / elapsed
            verified = [
                await call(stub.Verify, audit_pb2.VerifyRequest(practice_id=p), deadline=600) for p in practices
            ]
            intact = all(v.intact for v in verified)
            checked = sum(v.events_checked for v in verified)
            note = (
                f"{batch}/RPC; RPC p50 {_p(latencies, 0.5) * 1000:.0f} ms p99 {_p(latencies, 0.99) * 1000:.0f} ms;"
                f" chain {'intact' if intact else 'BROKEN'} ({checked:,} events verified)"
            )
            measure = f"audit append, {shape}"
            if database_url:
                figures.append(at_least(measure, rate, "events/s", TARGET, database=where, note=note))
            else:
                figures.append(Figure(measure, round(rate, 1), "events/s", database=where, note=note + "; no target"))
            if not intact:
                figures.append(Figure(f"{measure}: chain", "broken", "", database=where, note=str(verified)))
    finally:
        await channel.close()
        await service.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
    return figures
