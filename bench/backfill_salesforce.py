"""Issue 7, the backfill: N patients of a FHIR R4 EMR pulled into the hub and pushed to Salesforce,
every vendor rate limit off (a figure of Concord, not of a quota).

    python -m bench --only backfill_salesforce
    CONCORD_BENCH_PATIENTS=1000 python -m bench --only backfill_salesforce     # a quick run

Figures:

1. records/s end to end: N / (pull seconds + push seconds), the pull from no cursor (fhir -> hub),
   the push hub -> Salesforce; the pull and push rates apart (printed only).
2. Salesforce API calls per pushed record, counted by the sandbox (``/_sandbox/stats``: every
   ``/services/data/vXX.X/…`` request, what Salesforce counts against the daily allowance).
3. The same push by a practice's simple-salesforce script (bench/sf_script.py: one
   ``Contact.create`` per patient), against the same sandbox in the same run, on a subset of the
   hub's patients; the figure is Concord's push rate ÷ the script's, measured twice: with the
   sandbox holding every Salesforce API call CONCORD_BENCH_SF_LATENCY_MS (100; its latency_ms fault,
   for both pushes: a real org's round trip), on a practice of its own of
   CONCORD_BENCH_LATENCY_RECORDS patients (1,000; the script pushes
   CONCORD_BENCH_LATENCY_SCRIPT_RECORDS of them, 100), and at loopback (printed only).
4. Memory: the process's peak RSS (every service and sandbox runs in this process on the embedded
   default) sampled every 0.25 s during the timed backfill, and the Temporal dev server's (its own
   process). Not per service: tracemalloc, even with no snapshot taken, slows the Temporal workflow
   thread (decoding a page's payloads) past the SDK's 2 s deadlock detector and the sync fails
   (tried: 15 frames, 300 patients); a per-service figure needs each service in its own process
   (bench/service_memory.py).

Seeding the EMR is setup, not timed: the FHIR sandbox has no batch or bulk import, so the patients
are written through its state (``Sandbox.write``, what its PUT handler stores) into a tenant of
their own, which then holds exactly the N patients.
"""

from __future__ import annotations

import asyncio
import copy
import os
import time
from pathlib import Path
from typing import Any

import httpx

from bench import sf_script
from bench.common import Figure, at_least, at_most, bench_stack, database_name, peak_rss_mb, practice
from services.demo import run_sync, synthetic_patients_bundle

NAME = "backfill_salesforce"
PATIENTS = int(os.environ.get("CONCORD_BENCH_PATIENTS", "10000"))
# The script pushes a subset: at one call per record against a real org (~100 ms a call) all of
# them would take minutes; the local sandbox answers in about a millisecond.
SCRIPT_RECORDS = int(os.environ.get("CONCORD_BENCH_SCRIPT_RECORDS", "1000"))

VENDORS = ("fhir", "salesforce")

# The comparison again with every Salesforce API call of both pushes held this long by the
# sandbox (its latency_ms fault): a call to a real org takes 100 ms or more, one to the loopback
# sandbox 1-2 ms, and the comparison is one of call patterns (one call per record vs collections).
LATENCY_MS = int(os.environ.get("CONCORD_BENCH_SF_LATENCY_MS", "100"))
LATENCY_RECORDS = int(os.environ.get("CONCORD_BENCH_LATENCY_RECORDS", "1000"))
LATENCY_SCRIPT_RECORDS = int(os.environ.get("CONCORD_BENCH_LATENCY_SCRIPT_RECORDS", "100"))

E2E_TARGET = 1_000  # records/s
CALLS_TARGET = 0.01  # Salesforce API calls per record
RATIO_TARGET = 20  # Concord's push ÷ the script's


def _say(text: str) -> None:
    print(f"  {NAME}: {text}", flush=True)


def generated_patients(count: int) -> list[dict[str, Any]]:
    """N distinct patients made from the synthetic set. Distinct for the hub's identity matching
    (libs/blind_index.py: email, phone, family + birth date, given + family, family + postal code):
    beyond the first copy of the set each has its own family name, phone and identifiers, so none
    is held as a possible duplicate of another."""
    base = [e["resource"] for e in synthetic_patients_bundle()["entry"]]
    patients = []
    for index in range(count):
        patient = copy.deepcopy(base[index % len(base)])
        patient.pop("meta", None)
        patient.pop("text", None)
        patient["id"] = f"bench-{index:06d}"
        patient["telecom"] = [
            {"system": "phone", "value": f"555-{index // 10000:03d}-{index % 10000:04d}", "use": "home"}
        ]
        for identifier in patient.get("identifier", []):
            identifier["value"] = f"{identifier.get('value', '')}-{index}"
        if index >= len(base):
            for name in patient.get("name", []):
                name["family"] = f"{name.get('family', 'Doe')}{index}"
        patients.append(patient)
    return patients


def seed_fhir(stack: Any, tenant_name: str, patients: list[dict[str, Any]]) -> None:
    """Writes the patients into a new, unseeded tenant of the FHIR sandbox (setup, not timed)."""
    sandbox = stack.vendors["fhir"].app.state.sandbox
    tenant = sandbox.add_tenant(tenant_name, seeded=False)
    for patient in patients:
        sandbox.write(tenant, "Patient", patient["id"], patient, "PUT")


async def connect(stack: Any, http: httpx.AsyncClient, practice_id: str, tenant: str) -> dict[str, str]:
    headers = await practice(stack, http, practice_id, VENDORS)
    await connect_vendors(http, headers, {vendor: stack.vendors[vendor].connect for vendor in VENDORS}, tenant)
    return headers


async def connect_vendors(
    http: httpx.AsyncClient, headers: dict[str, str], bodies: dict[str, dict[str, Any]], tenant: str
) -> None:
    """Connects the practice to the FHIR EMR (its ``tenant``) and Salesforce: ``bodies`` are the
    vendors' connect bodies (services/dev_vendors.py DevVendor.connect)."""
    for vendor in VENDORS:
        body = dict(bodies[vendor])
        if vendor == "fhir":
            body["account_id"] = tenant
        answer = await http.post(f"/integrations/{vendor}/connect", json=body, headers=headers)
        answer.raise_for_status()


def salesforce_api_calls(stats: dict[str, int]) -> int:
    """What Salesforce counts against the daily allowance: every /services/data/vXX.X/… request."""
    return sum(n for key, n in stats.items() if key.split(" ", 1)[-1].startswith("/services/data/{version}"))


class RssSampler:
    """This process's resident memory every ``interval`` s (the embedded default runs every service in it)."""

    def __init__(self, interval: float = 0.25) -> None:
        self.interval = interval
        self.peak_mb = 0.0
        self.start_mb = 0.0
        self._task: asyncio.Task | None = None

    @staticmethod
    def current_mb() -> float:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20

    async def _loop(self) -> None:
        while True:
            self.peak_mb = max(self.peak_mb, self.current_mb())
            await asyncio.sleep(self.interval)

    def __enter__(self) -> RssSampler:
        self.start_mb = self.peak_mb = self.current_mb()
        self._task = asyncio.get_running_loop().create_task(self._loop())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        self.peak_mb = max(self.peak_mb, self.current_mb())


def process_peak_mb(pid: int) -> float | None:
    """Another process's peak resident memory (VmHWM), None when it is not readable."""
    return process_status_mb(pid, "VmHWM")


def process_status_mb(pid: int, key: str) -> float | None:
    """A memory line of /proc/<pid>/status (VmRSS: resident now, VmHWM: peak resident) in MB,
    None when it is not readable (the process is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


async def backfill(stack: Any, http: httpx.AsyncClient, practice_id: str, count: int) -> dict[str, Any]:
    """Seeds the EMR (untimed), then times the pull from no cursor and the push to Salesforce;"""
    tenant = practice_id
    seed_fhir(stack, tenant, generated_patients(count))
    headers = await connect(stack, http, practice_id, tenant)
    return await pull_then_push(http, headers, stack.sandboxes["salesforce"].url, practice_id)


async def pull_then_push(http: httpx.AsyncClient, headers: dict[str, str], sf_url: str, label: str) -> dict[str, Any]:
    """The timed part of ``backfill``: the practice's pull from no cursor (fhir -> hub), then its
    push to Salesforce (the sandbox at ``sf_url``, whose call counter is reset first)."""
    await http.post(f"{sf_url}/_sandbox/stats/reset")
    began = time.perf_counter()
    pulled = await run_sync(http, headers, "pull", vendor="fhir")
    pull_seconds = time.perf_counter() - began
    _say(f"{label}: pulled {pulled['records_created']:,} in {pull_seconds:.1f} s")
    began = time.perf_counter()
    pushed = await run_sync(http, headers, "push", vendor="salesforce")
    push_seconds = time.perf_counter() - began
    _say(f"{label}: pushed {pushed['records_created']:,} in {push_seconds:.1f} s")
    stats = (await http.get(f"{sf_url}/_sandbox/stats")).json()
    return {
        "headers": headers,
        "pulled": pulled,
        "pushed": pushed,
        "pull_seconds": pull_seconds,
        "push_seconds": push_seconds,
        "sf_calls": salesforce_api_calls(stats),
        "sf_stats": stats,
    }


async def hub_patients(http: httpx.AsyncClient, headers: dict[str, str], limit: int) -> list[dict[str, Any]]:
    patients: list[dict[str, Any]] = []
    token = ""
    while len(patients) < limit:
        answer = await http.get("/patients", params={"page_size": 500, "page_token": token}, headers=headers)
        answer.raise_for_status()
        page = answer.json()
        patients += page["patients"]
        token = page["next_page_token"]
        if not token:
            break
    return patients[:limit]


async def script_push(stack: Any, http: httpx.AsyncClient, patients: list[dict[str, Any]]) -> dict[str, Any]:
    """The practice's script, in a thread (simple-salesforce is synchronous) so the stack keeps serving."""
    sf_url = stack.sandboxes["salesforce"].url
    creds = stack.vendors["salesforce"].connect
    sf = await asyncio.to_thread(sf_script.login, sf_url, creds["username"], creds["password"], creds["security_token"])
    await http.post(f"{sf_url}/_sandbox/stats/reset")
    began = time.perf_counter()
    created = await asyncio.to_thread(sf_script.sync_patients, sf, patients)
    seconds = time.perf_counter() - began
    _say(f"script: created {created:,} contacts in {seconds:.1f} s")
    stats = (await http.get(f"{sf_url}/_sandbox/stats")).json()
    return {"created": created, "seconds": seconds, "sf_calls": salesforce_api_calls(stats)}


async def at_latency(stack: Any, http: httpx.AsyncClient) -> dict[str, Any]:
    """Concord's push and the script's with the Salesforce sandbox holding every API call
    LATENCY_MS: a practice of its own is pulled from the EMR (untimed), then pushed (timed), then
    the script pushes some of its hub patients (timed); the fault is cleared after, failed or not."""
    count, practice_id = min(LATENCY_RECORDS, PATIENTS), "bench-latency"
    seed_fhir(stack, practice_id, generated_patients(count))
    headers = await connect(stack, http, practice_id, practice_id)
    pulled = await run_sync(http, headers, "pull", vendor="fhir")
    sf_url = stack.sandboxes["salesforce"].url
    (await http.post(f"{sf_url}/_sandbox/faults", json={"latency_ms": LATENCY_MS})).raise_for_status()
    try:
        await http.post(f"{sf_url}/_sandbox/stats/reset")
        began = time.perf_counter()
        pushed = await run_sync(http, headers, "push", vendor="salesforce")
        seconds = time.perf_counter() - began
        stats = (await http.get(f"{sf_url}/_sandbox/stats")).json()
        _say(f"at {LATENCY_MS} ms a call: pushed {pushed['records_created']:,} in {seconds:.1f} s")
        script = await script_push(stack, http, await hub_patients(http, headers, min(LATENCY_SCRIPT_RECORDS, count)))
    finally:
        await http.delete(f"{sf_url}/_sandbox/faults")
    written = pushed["records_created"] + pushed.get("records_updated", 0)
    problems = [] if pulled["records_created"] == count else [f"pull created {pulled['records_created']}"]
    if pushed["status"] != "succeeded" or written != count:
        problems.append(f"push {pushed['status']}, {written} written")
    return {
        "count": count,
        "push_rate": written / seconds if seconds else 0.0,
        "sf_calls": salesforce_api_calls(stats),
        "script": script,
        "problems": "; ".join(problems),
    }


def backfill_problems(run: dict[str, Any], count: int) -> str:
    """What went wrong in a ``backfill`` of ``count`` patients ("" when the pull and push are clean)."""
    pulled, pushed = run["pulled"], run["pushed"]
    problems = []
    if pulled["status"] != "succeeded" or pulled["records_created"] != count:
        problems.append(f"pull {pulled['status']}, {pulled['records_created']} created")
    if pushed["status"] != "succeeded" or pushed["records_created"] != count:
        problems.append(f"push {pushed['status']}, {pushed['records_created']} created")
    return "; ".join(problems)


async def run(database_url: str) -> list[Figure]:
    count, where = PATIENTS, database_name(database_url)
    async with bench_stack(database_url) as stack, httpx.AsyncClient(base_url=stack.gateway_url, timeout=3600) as http:
        with RssSampler() as rss:
            main = await backfill(stack, http, "bench-backfill", count)
        temporal_peak = process_peak_mb(stack.temporal.pid) if stack.temporal is not None else None
        script_patients = await hub_patients(http, main["headers"], min(SCRIPT_RECORDS, count))
        script = await script_push(stack, http, script_patients)
        slow = await at_latency(stack, http)

    pull_s, push_s = main["pull_seconds"], main["push_seconds"]
    pushed = main["pushed"]["records_created"] + main["pushed"].get("records_updated", 0)
    problems = backfill_problems(main, count)
    flag = f"; NOT CLEAN: {problems}" if problems else ""
    push_rate = pushed / push_s if push_s else 0.0
    script_rate = script["created"] / script["seconds"] if script["seconds"] else 0.0
    slow_rate = slow["script"]["created"] / slow["script"]["seconds"] if slow["script"]["seconds"] else 0.0
    figures = [
        at_least(
            f"backfill {count:,} patients: FHIR EMR sandbox -> hub -> Salesforce sandbox, rate limits off",
            count / (pull_s + push_s),
            "records/s",
            E2E_TARGET,
            note=f"pull {pull_s:.1f} s + push {push_s:.1f} s{flag}",
        ),
        Figure(
            f"  pull fhir -> hub ({count:,}, from no cursor)",
            round(main["pulled"]["records_created"] / pull_s, 1),
            "records/s",
            note=f"{pull_s:.1f} s, {main['pulled']['records_created']:,} created",
        ),
        Figure(
            f"  push hub -> salesforce ({count:,})",
            round(push_rate, 1),
            "records/s",
            note=f"{push_s:.1f} s, {pushed:,} written",
        ),
        at_most(
            "Salesforce API calls per pushed record",
            main["sf_calls"] / max(1, pushed),
            "calls/record",
            CALLS_TARGET,
            note=f"{main['sf_calls']} calls for {pushed:,} records (sandbox /_sandbox/stats, /services/data/vXX.X/…)",
        ),
        at_least(
            "the same push by a simple-salesforce one-call-per-record script against the same sandbox, same run "
            f"(every Salesforce call held {LATENCY_MS} ms, both pushes)",
            slow["push_rate"] / slow_rate if slow_rate else 0.0,
            "× faster",
            RATIO_TARGET,
            note=(
                f"Concord {slow['push_rate']:,.1f} records/s ({slow['count']:,} patients, {slow['sf_calls']} calls) vs "
                f"script {slow_rate:,.2f} records/s ({slow['script']['created']:,} patients, "
                f"{slow['script']['sf_calls']:,} calls); the sandbox's latency_ms fault stands for a real org's "
                f"round trip" + (f"; NOT CLEAN: {slow['problems']}" if slow["problems"] else "")
            ),
        ),
        Figure(
            "  the same comparison at loopback (the sandbox answers a call in ~1-2 ms)",
            round(push_rate / script_rate, 3) if script_rate else 0.0,
            "× faster",
            note=(
                f"Concord {push_rate:,.0f} records/s vs script {script_rate:,.1f} records/s "
                f"({script['created']:,} of the hub's patients, sf.Contact.create each, {script['sf_calls']:,} calls, "
                f"{script['seconds']:.1f} s)"
            ),
        ),
        Figure(
            "peak memory during the backfill: the process (every service and sandbox in it)",
            round(rss.peak_mb, 1),
            "MB",
            note=(
                f"RSS sampled every 0.25 s during the timed {count:,}-patient backfill (was {rss.start_mb:.0f} MB "
                f"before it); process lifetime peak {peak_rss_mb()} MB (ru_maxrss, the script's push included)"
            ),
        ),
    ]
    if temporal_peak is not None:
        figures.append(
            Figure(
                "  peak memory: Temporal dev server (its own process)",
                round(temporal_peak, 1),
                "MB",
                note="VmHWM after the timed backfill",
            )
        )
    figures.append(
        Figure(
            "  peak memory per service",
            "not measured",
            "",
            note=(
                "every service runs in this one process; tracemalloc (even without snapshots) slows the "
                "workflow thread past Temporal's 2 s deadlock detector and the sync fails: per-service figures "
                "need each service in its own process (bench/service_memory.py)"
            ),
        )
    )
    for figure in figures:
        figure.database = where
    return figures
