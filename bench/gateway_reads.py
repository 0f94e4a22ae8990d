"""Gateway patient reads at 200 requests/s (issue 7: p99 ≤ 50 ms).

The whole stack runs in this process (the embedded default: every service, the gateway, one
event loop; bench.common.bench_stack) and so does the client: ``CLIENT_POOLS`` httpx.AsyncClients
taking the requests in turn, their connection pools together sized for the concurrency.
``CONCORD_BENCH_READ_PATIENTS`` patients (default 500) are imported, then GET /patients/{id} (a provider's token, ids round-robin) is issued on an
open-loop schedule: request i is due at start + i / rate, whatever the earlier ones are doing, and
its latency is counted from that due time, so queueing (in the client, the loop, the gateway and
the services behind it) counts. ``CONCORD_BENCH_READ_RATE`` (default 200) for
``CONCORD_BENCH_READ_SECONDS`` (default 30).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import Counter
from collections.abc import Awaitable, Callable

import httpx

from bench.common import Figure, at_most, bench_stack, peak_rss_mb, practice
from bench.push_ghl import generated_patients

NAME = "gateway_reads"
PRACTICE = "bench-reads"
# 100 times the target: an answer later than this counts as an error, and an overloaded run ends.
TIMEOUT = 5.0
CAPACITY_IN_FLIGHT = 16
MAX_IN_FLIGHT = 256  # the client's connections
# httpcore's pool walks every one of its connections (a socket check each) whenever a request
# starts or an answer ends: one pool of 256 connections, sharing the stack's event loop, spent more
# of it than the gateway once requests queued (45 % of the loop in _assign_requests_to_connections),
# and the bench measured its own client's collapse. Pools of 16 keep that walk short.
CLIENT_POOLS = 16


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def open_loop(
    send: Callable[[int], Awaitable[str]], rate: float, seconds: float
) -> tuple[list[float], Counter[str], float, float]:
    """Starts send(i) at start + i / rate for ``seconds`` (send answers "ok" or what went wrong);
    returns (latencies from the due time of those "ok", the others counted by what went wrong,
    seconds until the last answer, the driver's worst lateness in starting a request)."""
    count = int(rate * seconds)
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    worst_start = 0.0
    loop = asyncio.get_running_loop()

    async def one(index: int, due: float) -> None:
        try:
            outcome = await send(index)
        except httpx.HTTPError as error:
            outcome = type(error).__name__
        if outcome == "ok":
            latencies.append(loop.time() - due)
        else:
            errors[outcome] += 1

    start = loop.time() + 0.05
    tasks = []
    for index in range(count):
        due = start + index / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        worst_start = max(worst_start, loop.time() - due)
        if sum(1 for t in tasks[-MAX_IN_FLIGHT:] if not t.done()) >= MAX_IN_FLIGHT:
            # Saturated: the backlog is capped, else an overloaded run (and the stack's shutdown,
            # which waits for every request it took) would last as long as the backlog.
            errors[f"not sent ({MAX_IN_FLIGHT} in flight)"] += 1
            continue
        tasks.append(asyncio.create_task(one(index, due)))
    # An overloaded stack answers abandoned requests long after their callers gave up (and this
    # loop is the stack's): what is not answered soon after the schedule ends is counted, not awaited.
    _, pending = await asyncio.wait(tasks, timeout=2 * TIMEOUT)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    if pending:
        errors["unanswered at the end"] += len(pending)
    return latencies, errors, loop.time() - start, worst_start


async def run(database_url: str) -> list[Figure]:
    seconds = float(os.environ.get("CONCORD_BENCH_READ_SECONDS", "30"))
    rate = float(os.environ.get("CONCORD_BENCH_READ_RATE", "200"))
    count = int(os.environ.get("CONCORD_BENCH_READ_PATIENTS", "500"))
    per_pool = MAX_IN_FLIGHT // CLIENT_POOLS
    limits = httpx.Limits(max_connections=per_pool, max_keepalive_connections=per_pool)
    async with bench_stack(database_url) as stack:
        async with contextlib.AsyncExitStack() as clients:
            pools = [
                await clients.enter_async_context(
                    httpx.AsyncClient(base_url=stack.gateway_url, timeout=TIMEOUT, limits=limits)
                )
                for _ in range(CLIENT_POOLS)
            ]
            http = pools[0]
            admin = await practice(stack, http, PRACTICE, ())
            ids: list[str] = []
            patients = generated_patients(count)
            for at in range(0, count, 100):
                bundle = {"resourceType": "Bundle", "type": "collection"}
                bundle["entry"] = [{"resource": p} for p in patients[at : at + 100]]
                response = await http.post("/patients/import", json=bundle, headers=admin)
                response.raise_for_status()
                ids.extend(response.json()["patient_ids"])
            token = stack.gateway.issuer.mint("bench-provider", PRACTICE, "provider")  # type: ignore[union-attr]
            reader = {"Authorization": f"Bearer {token}"}

            async def read(index: int) -> str:
                pool = pools[index % CLIENT_POOLS]
                response = await pool.get(f"/patients/{ids[index % len(ids)]}", headers=reader)
                return "ok" if response.status_code == 200 else f"HTTP {response.status_code}"

            for index in range(100):  # warm-up: connections (every pool's), caches
                if (outcome := await read(index)) != "ok":
                    raise RuntimeError(f"warm-up read: {outcome}")

            # Context, not the figure: what a closed loop of a few callers gets through.
            capacity_began, answered, closed = time.perf_counter(), 0, []

            async def caller(offset: int) -> None:
                nonlocal answered
                index = offset
                while time.perf_counter() - capacity_began < 5:
                    began = time.perf_counter()
                    if await read(index) == "ok":
                        closed.append(time.perf_counter() - began)
                        answered += 1
                    index += CAPACITY_IN_FLIGHT

            await asyncio.gather(*(caller(i) for i in range(CAPACITY_IN_FLIGHT)))
            capacity = answered / (time.perf_counter() - capacity_began)
            latencies, errors, elapsed, lateness = await open_loop(read, rate, seconds)
    done = len(latencies)
    # A request that failed or timed out counts as the timeout (a lower bound), so errors cannot
    # flatter the percentiles.
    ms = [v * 1000 for v in latencies] + [TIMEOUT * 1000] * sum(errors.values())
    note = (
        f"open loop, {rate:g}/s for {seconds:g} s over {len(ids)} patients; client in the stack's process"
        f" (embedded default, one event loop); driver lateness max {lateness * 1000:.0f} ms"
    )
    return [
        Figure("gateway read p50", round(percentile(ms, 0.5), 1), "ms", note=note),
        at_most(
            "gateway read p99",
            percentile(ms, 0.99),
            "ms",
            50,
            note=f"max {max(ms, default=0):.0f} ms; errors counted as {TIMEOUT:g} s",
        ),
        Figure(
            "gateway reads achieved",
            round(done / elapsed, 1),
            "requests/s",
            note=f"{done:,} of {int(rate * seconds):,} answered 200 in {elapsed:.1f} s (until the last answer)",
        ),
        Figure(
            "gateway read capacity (closed loop)",
            round(capacity, 1),
            "requests/s",
            note=f"{CAPACITY_IN_FLIGHT} callers for 5 s, p99 {percentile(closed, 0.99) * 1000:.0f} ms; no target",
        ),
        Figure(
            "gateway read errors",
            sum(errors.values()),
            "requests",
            note=f"{dict(errors) or 'none'}; client timeout {TIMEOUT:g} s; peak RSS {peak_rss_mb()} MB",
        ),
    ]
