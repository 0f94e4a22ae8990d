"""Paced backfill to GoHighLevel (100 requests / 10 s per location) and Zenoti (60 / min per
organisation) with the sandboxes enforcing those limits and the adapters pacing under them.

    python -m bench --only paced
    CONCORD_BENCH_PACED_GHL=200 CONCORD_BENCH_PACED_ZENOTI=40 python -m bench --only paced

The share of the allowed rate used is the vendor requests the sandbox served (its rate limiter's
own count: every API request, reads such as Zenoti's duplicate search included, OAuth and
``/_sandbox`` not) over what the limit allows in the same time. The time is measured on the
sandbox side, from the first to the last request it counted, and the share is the mean over every
window-long interval inside that span (one window of the limit long): a paced sender spends a
window's allowance in a burst at its start, so "requests ÷ (last − first)" counts the last burst
without the window it opens and reads high (printed too, as the naive share). The adapters pace at
95 % of the announced limit (a 5 % margin), so about 0.95 is the design's ceiling.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.common import Figure, at_least, at_most, bench_stack, practice
from bench.push_ghl import generated_patients
from services.demo import connect_ghl, run_sync
from services.supervisor import Stack

NAME = "paced"
GHL_PATIENTS = int(os.environ.get("CONCORD_BENCH_PACED_GHL", "600"))
ZENOTI_GUESTS = int(os.environ.get("CONCORD_BENCH_PACED_ZENOTI", "150"))
IMPORT_BATCH = 500
TARGET_SHARE = 0.90


@dataclass
class LimiterProbe:
    """Watches a sandbox's rate limiter (the object that decides 200 or 429 for every API request):
    when each request came and whether the limit let it through. Observation only: the limiter's
    answer is passed on unchanged."""

    times: list[float] = field(default_factory=list)
    refused_at: list[float] = field(default_factory=list)
    armed: bool = False

    def wrap(self, hit: Callable[..., tuple[bool, dict[str, str]]]) -> Callable[..., tuple[bool, dict[str, str]]]:
        def counted(*args: Any, **kwargs: Any) -> tuple[bool, dict[str, str]]:
            allowed, headers = hit(*args, **kwargs)
            if self.armed:
                if allowed:
                    self.times.append(time.monotonic())
                else:
                    self.refused_at.append(time.monotonic())
            return allowed, headers

        return counted

    def start(self) -> None:
        self.times.clear()
        self.refused_at.clear()
        self.armed = True


def _probe(stack: Stack, vendor: str) -> LimiterProbe:
    sandbox = stack.sandbox_apps[vendor].state.sandbox  # type: ignore[attr-defined]
    probe = LimiterProbe()
    sandbox.limiter.hit = probe.wrap(sandbox.limiter.hit)
    return probe


def steady_share(times: list[float], limit: int, window: float) -> float | None:
    """The mean, over every window-long interval [s, s + window) inside [first, last], of the
    requests in it ÷ ``limit``; None when the run spans less than a window."""
    if len(times) < 2:
        return None
    first, last = times[0], times[-1]
    span = last - first - window
    if span <= 0:
        return None
    # A request at t is inside [s, s + window) for s in (t - window, t]; integrate over s in [first, last - window].
    covered = sum(max(0.0, min(last - window, t) - max(first, t - window)) for t in times)
    return covered / span / limit


async def _import(http: httpx.AsyncClient, headers: dict[str, str], count: int) -> None:
    patients = generated_patients(count)
    for start in range(0, count, IMPORT_BATCH):
        chunk = patients[start : start + IMPORT_BATCH]
        bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": p} for p in chunk]}
        (await http.post("/patients/import", json=bundle, headers=headers)).raise_for_status()


def _api_requests(stats: dict[str, int], excluded: tuple[str, ...]) -> int:
    return sum(n for key, n in stats.items() if not key.split(" ", 1)[-1].startswith(excluded))


async def _measure(
    stack: Stack,
    http: httpx.AsyncClient,
    headers: dict[str, str],
    vendor: str,
    slug: str,
    limit: int,
    window: float,
    excluded: tuple[str, ...],
    label: str,
    records: int,
) -> list[Figure]:
    base = stack.sandboxes[vendor].url
    probe = _probe(stack, vendor)
    await http.post(f"{base}/_sandbox/stats/reset")
    probe.start()
    began = time.perf_counter()
    run = await run_sync(http, headers, "push", vendor=slug)
    seconds = time.perf_counter() - began
    probe.armed = False
    stats = (await http.get(f"{base}/_sandbox/stats")).json()
    served = len(probe.times)
    allowed_rate = limit / window
    elapsed = probe.times[-1] - probe.times[0] if served > 1 else seconds
    naive = served / (allowed_rate * elapsed) if elapsed > 0 else 0.0
    steady = steady_share(probe.times, limit, window)
    # Shorter than a window: the share of that one window's allowance.
    share = steady if steady is not None else served / limit
    note = (
        f"{records} records, {run['records_succeeded']} pushed in {seconds:.0f} s; {served} requests served"
        f" ({served / max(1, run['records_succeeded']):.2f}/record) over {elapsed:.0f} s;"
        f" sandbox stats {_api_requests(stats, excluded)} API requests"
    )
    if steady is None:
        note += "; shorter than a window: share of one window's allowance"
    return [
        Figure(f"{label}: requests/s achieved", round(share * allowed_rate, 3), "requests/s", note=note),
        Figure(f"{label}: allowed requests/s", round(allowed_rate, 3), "requests/s", note=f"{limit} / {window:g} s"),
        at_least(f"{label}: share of allowed rate used", share, "", TARGET_SHARE, note="adapters pace at 0.95"),
        Figure(
            f"{label}: naive share (served ÷ limit × (last − first))",
            round(naive, 3),
            "",
            note="counts the last burst without its window",
        ),
        at_most(f"{label}: records failed", run["records_failed"], "records", 0, note=f"run {run['status']}"),
        Figure(
            f"{label}: 429s received",
            len(probe.refused_at),
            "responses",
            note=", ".join(f"{t - probe.times[0]:.1f} s" for t in probe.refused_at[:10]) if served else "",
        ),
    ]


async def run(database_url: str) -> list[Figure]:
    figures: list[Figure] = []
    async with bench_stack(database_url, paced=True) as stack:
        ghl = stack.sandbox_apps["ghl"].state.sandbox.settings  # type: ignore[attr-defined]
        zenoti = stack.sandbox_apps["zenoti"].state.sandbox.settings  # type: ignore[attr-defined]
        async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=3600) as http:
            headers = await practice(stack, http, "bench-paced-ghl", ("hl",))
            await connect_ghl(http, headers)
            await _import(http, headers, GHL_PATIENTS)
            figures += await _measure(
                stack,
                http,
                headers,
                "ghl",
                "hl",
                ghl.burst_limit,
                ghl.burst_window_ms / 1000,
                ("/_sandbox", "/oauth"),
                "GHL paced push",
                GHL_PATIENTS,
            )

            headers = await practice(stack, http, "bench-paced-zenoti", ("zenoti",))
            body = stack.vendors["zenoti"].connect
            (await http.post("/integrations/zenoti/connect", json=body, headers=headers)).raise_for_status()
            await _import(http, headers, ZENOTI_GUESTS)
            figures += await _measure(
                stack,
                http,
                headers,
                "zenoti",
                "zenoti",
                zenoti.rate_limit,
                zenoti.rate_window,
                ("/_sandbox", "/v1/tokens"),
                "Zenoti paced push",
                ZENOTI_GUESTS,
            )
    return figures
