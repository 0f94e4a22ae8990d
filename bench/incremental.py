"""Incremental sync when nothing changed: after a first push, pull and two-way sync of N patients
to GoHighLevel and to Zenoti (limits off), the same runs again must write nothing at the vendor.

    python -m bench --only incremental
    CONCORD_BENCH_INCREMENTAL=50 python -m bench --only incremental

Each vendor has a practice of its own (a pull from one vendor would otherwise be a real change for
the other). The first round (push, pull, bidirectional) is followed by a wait until the sandbox
has seen no request for a while (GHL's webhooks of the first push drain through the inbox); then
the sandbox's stats are reset before every run of the second round, and its writes are the
requests by method (POST, PUT, PATCH, DELETE) to the vendor API, less those that read (GHL's
``POST /contacts/search``), OAuth and ``/_sandbox``.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass

import httpx

from bench.common import Figure, at_most, bench_stack, practice
from bench.paced import _import
from services.demo import connect_ghl, run_sync
from services.supervisor import Stack

NAME = "incremental"
PATIENTS = int(os.environ.get("CONCORD_BENCH_INCREMENTAL", "200"))
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
DIRECTIONS = ("push", "pull", "bidirectional")
QUIET_SECONDS = 3.0
SETTLE_TIMEOUT = 120.0


@dataclass(frozen=True)
class Vendor:
    sandbox: str
    slug: str
    label: str
    not_api: tuple[str, ...]  # path prefixes that are not the vendor API (auth, the sandbox's own)
    read_posts: frozenset[str] = frozenset()  # "POST /path" that only read


VENDORS = (
    Vendor("ghl", "hl", "GHL", ("/_sandbox", "/oauth"), frozenset({"POST /contacts/search"})),
    Vendor("zenoti", "zenoti", "Zenoti", ("/_sandbox", "/v1/tokens")),
)


def _split(stats: dict[str, int], vendor: Vendor) -> tuple[dict[str, int], dict[str, int]]:
    """(writes, reads) by "METHOD /route" among the vendor API requests."""
    writes, reads = {}, {}
    for key, count in stats.items():
        method, _, path = key.partition(" ")
        if path.startswith(vendor.not_api):
            continue
        bucket = writes if method in WRITE_METHODS and key not in vendor.read_posts else reads
        bucket[key] = count
    return writes, reads


async def _stats(http: httpx.AsyncClient, base: str) -> dict[str, int]:
    return (await http.get(f"{base}/_sandbox/stats")).json()


async def _settle(http: httpx.AsyncClient, base: str) -> float:
    """Waits until the sandbox has had no request for QUIET_SECONDS (webhook drains, follow-ups)."""
    began = time.perf_counter()
    last, quiet_since = None, time.perf_counter()
    while time.perf_counter() - began < SETTLE_TIMEOUT:
        now = {k: v for k, v in (await _stats(http, base)).items() if not k.split(" ", 1)[-1].startswith("/_sandbox")}
        if now != last:
            last, quiet_since = now, time.perf_counter()
        elif time.perf_counter() - quiet_since >= QUIET_SECONDS:
            break
        await asyncio.sleep(0.5)
    return time.perf_counter() - began


async def _connect(stack: Stack, http: httpx.AsyncClient, headers: dict[str, str], vendor: Vendor) -> None:
    if vendor.sandbox == "ghl":
        await connect_ghl(http, headers)
        return
    body = stack.vendors[vendor.sandbox].connect
    (await http.post(f"/integrations/{vendor.slug}/connect", json=body, headers=headers)).raise_for_status()


def _counts(run: dict) -> str:
    return (
        f"{run['status']}: {run['records_processed']} processed, {run['records_created']} created,"
        f" {run['records_updated']} updated, {run['records_failed']} failed"
    )


def _fmt(requests: dict[str, int]) -> str:
    return ", ".join(f"{k} ×{v}" for k, v in sorted(requests.items())) or "none"


async def _vendor(stack: Stack, http: httpx.AsyncClient, vendor: Vendor) -> list[Figure]:
    base = stack.sandboxes[vendor.sandbox].url
    headers = await practice(stack, http, f"bench-incremental-{vendor.sandbox}", (vendor.slug,))
    await _connect(stack, http, headers, vendor)
    await _import(http, headers, PATIENTS)
    first = {d: await run_sync(http, headers, d, vendor=vendor.slug) for d in DIRECTIONS}
    settled = await _settle(http, base)
    second: dict[str, dict] = {}
    writes: dict[str, dict[str, int]] = {}
    reads: dict[str, dict[str, int]] = {}
    for direction in DIRECTIONS:
        await http.post(f"{base}/_sandbox/stats/reset")
        second[direction] = await run_sync(http, headers, direction, vendor=vendor.slug)
        writes[direction], reads[direction] = _split(await _stats(http, base), vendor)
    # Anything the second round set off after its runs ended (none expected).
    await _settle(http, base)
    late_writes, _ = _split(await _stats(http, base), vendor)
    late = {k: v - writes["bidirectional"].get(k, 0) for k, v in late_writes.items()}
    late = {k: v for k, v in late.items() if v}

    label = f"{vendor.label} no-change"
    total = sum(sum(w.values()) for w in writes.values()) + sum(late.values())
    first_note = "; ".join(f"1st {d} {_counts(r)}" for d, r in first.items())
    figures = [
        at_most(
            f"{label}: vendor writes (push + pull + bidirectional)",
            total,
            "requests",
            0,
            note=f"{PATIENTS} patients; {first_note}; settled {settled:.0f} s",
        )
    ]
    for direction in DIRECTIONS:
        figures.append(
            at_most(
                f"{label} {direction}: vendor writes",
                sum(writes[direction].values()),
                "requests",
                0,
                note=f"{_counts(second[direction])}; writes {_fmt(writes[direction])}",
            )
        )
    figures.append(
        Figure(
            f"{label} pull: vendor reads",
            sum(reads["pull"].values()),
            "requests",
            note=f"{_fmt(reads['pull'])}; bidirectional read {sum(reads['bidirectional'].values())}",
        )
    )
    if late:
        figures.append(Figure(f"{label}: writes after the runs", sum(late.values()), "requests", note=_fmt(late)))
    return figures


async def run(database_url: str) -> list[Figure]:
    figures: list[Figure] = []
    async with bench_stack(database_url) as stack:
        async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=3600) as http:
            for vendor in VENDORS:
                figures += await _vendor(stack, http, vendor)
    return figures
