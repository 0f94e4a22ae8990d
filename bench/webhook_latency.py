"""Webhook received -> change visible (issue 7: "webhook received -> change visible at another
vendor, 50 events/s for 60 s", p50 ≤ 250 ms, p99 ≤ 1 s).

What Concord does today with a vendor's change: a GoHighLevel ContactUpdate webhook reaches the
gateway (POST /webhooks/ghl), the sync service verifies it, stores it in the inbox of each
real-time GHL config and signals InboxWorkflow, which reads the contacts back (get_records) and
reconciles them into the hub through the pull's path (services/sync/workflows.py InboxWorkflow,
services/sync/service.py accept_webhook / reconcile_pull_page). Nothing then pushes the changed
hub record on to the practice's other vendors: a second config (here Salesforce, also real time)
gets it only at its next push, a user's or its schedule's (every 15 minutes for a real-time
config: the safety net). So the cross-vendor leg is not measurable as real time; this measures
the leg that exists, and shows the missing one:

* setup: a practice with GHL (OAuth) and Salesforce (username-password) connected, BAAs recorded,
  ``CONCORD_BENCH_WEBHOOK_PATIENTS`` patients (default 300) imported and pushed to both; both
  configs set to real time; limits off (bench_stack, unpaced);
* load: ``CONCORD_BENCH_WEBHOOK_RATE`` edits/s (default 50) for ``CONCORD_BENCH_WEBHOOK_SECONDS``
  (default 60), open loop, each a GHL UI edit (PATCH /_sandbox/contacts/{id}, a new city) of the
  patients round-robin (repeated edits, one patient every patients / rate seconds), which makes
  the sandbox sign and deliver a ContactUpdate webhook to the gateway at once;
* latency of an edit: from just before the edit (so GHL's delivery is included) to the hub having
  it. The hub's moment is the change's committed history row (GET /patients/{id}/history,
  ``changed_at`` of the first vendor-side change at or after the edit), read after the run so
  that no polling loads the single-process stack meanwhile; a sample (every 25th edit) is also
  polled live through GET /patients/{id} until the city shows, as the API-visible cross-check;
  every patient's final city is checked against its last edit;
* the other vendor: Salesforce's Person Accounts are read from its sandbox each second during the
  run and for a grace period after; edits visible there are counted (none are expected). Then a
  user's push to Salesforce is timed, which is the only way the change gets there short of the
  15-minute schedule.
"""

from __future__ import annotations

import asyncio
import os
import time
from datetime import datetime

import httpx

from bench.common import Figure, at_most, bench_stack, peak_rss_mb, practice
from bench.push_ghl import generated_patients
from services.demo import connect_ghl, run_sync

NAME = "webhook_latency"
PRACTICE = "bench-webhooks"
SAMPLE_EVERY = 25
GRACE_SECONDS = 10.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def _ok(response: httpx.Response) -> dict:
    response.raise_for_status()
    return response.json()


def _stamp(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _city(patient: dict) -> str | None:
    return (patient.get("address") or [{}])[0].get("city")


async def _import(http: httpx.AsyncClient, admin: dict, count: int) -> list[str]:
    ids: list[str] = []
    patients = generated_patients(count)
    for at in range(0, count, 100):
        bundle = {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [{"resource": p} for p in patients[at : at + 100]],
        }
        ids.extend(_ok(await http.post("/patients/import", json=bundle, headers=admin))["patient_ids"])
    return ids


async def _contacts_by_patient(http: httpx.AsyncClient, admin: dict, sandbox: str, ids: list[str]) -> dict[str, str]:
    """Each hub patient's GHL contact, by its unique phone (bench.push_ghl.generated_patients)."""
    location = _ok(await http.get("/integrations/hl/status", headers=admin))["account_id"]
    contacts = _ok(await http.get(f"{sandbox}/_sandbox/contacts", params={"locationId": location}))["contacts"]
    by_phone = {c.get("phone"): c["id"] for c in contacts}
    found = {}
    for patient_id in ids:
        patient = _ok(await http.get(f"/patients/{patient_id}", headers=admin))
        phone = next(t["value"] for t in patient["telecom"] if t["system"] == "phone")
        found[patient_id] = by_phone[phone]
    return found


async def _salesforce_cities(http: httpx.AsyncClient, sandbox: str) -> dict[str, str | None]:
    """Hub patient id -> the city its Person Account holds at Salesforce."""
    accounts = _ok(await http.get(f"{sandbox}/_sandbox/records/Account"))
    accounts = accounts.get("records", accounts) if isinstance(accounts, dict) else accounts
    return {a["Concord_Patient_Id__c"]: a.get("PersonMailingCity") for a in accounts if a.get("Concord_Patient_Id__c")}


async def run(database_url: str) -> list[Figure]:
    seconds = float(os.environ.get("CONCORD_BENCH_WEBHOOK_SECONDS", "60"))
    rate = float(os.environ.get("CONCORD_BENCH_WEBHOOK_RATE", "50"))
    count = int(os.environ.get("CONCORD_BENCH_WEBHOOK_PATIENTS", "300"))
    total = int(rate * seconds)
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    async with bench_stack(database_url) as stack:
        ghl_url, sf_url = stack.sandboxes["ghl"].url, stack.sandboxes["salesforce"].url
        ghl = stack.sandbox_apps["ghl"].state.sandbox  # type: ignore[attr-defined]
        async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=600, limits=limits) as http:
            # --- setup: both vendors connected and holding every patient; both real time.
            admin = await practice(stack, http, PRACTICE, ("hl", "salesforce"))
            await connect_ghl(http, admin)
            sf = stack.vendors["salesforce"].connect
            _ok(await http.post("/integrations/salesforce/connect", json=sf, headers=admin))
            ids = await _import(http, admin, count)
            for vendor in ("hl", "salesforce"):
                pushed = await run_sync(http, admin, "push", vendor=vendor)
                if pushed["status"] != "succeeded" or pushed["records_created"] != len(ids):
                    raise RuntimeError(f"{vendor} push ended {pushed['status']}, {pushed['records_created']} created")
            await ghl.webhooks.drain()  # the push's own ContactCreate echoes, ignored while manual
            contacts = await _contacts_by_patient(http, admin, ghl_url, ids)
            sf_before = await _salesforce_cities(http, sf_url)
            for vendor in ("hl", "salesforce"):
                body = {"sync_frequency": "real_time"}
                _ok(await http.post(f"/integrations/{vendor}/patients/sync-settings", json=body, headers=admin))
            delivered_before = len(ghl.webhooks.deliveries)

            # --- load: open-loop GHL UI edits; a sample polled live through the API.
            edits: list[tuple[str, str, float]] = []  # (patient id, city, wall time just before the edit)
            edit_errors: dict[str, int] = {}
            polled: list[float] = []
            unseen_polls = 0
            read_errors: dict[str, int] = {}
            sf_seen: dict[str, float] = {}  # city -> first wall time Salesforce held it
            stop_watch = asyncio.Event()

            async def watch_salesforce() -> None:
                while not stop_watch.is_set():
                    try:
                        cities = await _salesforce_cities(http, sf_url)
                    except httpx.HTTPError:
                        cities = {}
                    for city in cities.values():
                        if city and city.startswith("Hookton ") and city not in sf_seen:
                            sf_seen[city] = time.time()
                    try:
                        await asyncio.wait_for(stop_watch.wait(), 1.0)
                    except TimeoutError:
                        pass

            async def poll(patient_id: str, city: str, began: float) -> None:
                nonlocal unseen_polls
                deadline = began + 30
                while time.time() < deadline:
                    answer = await http.get(f"/patients/{patient_id}", headers=admin)
                    if answer.status_code != 200:
                        read_errors[f"HTTP {answer.status_code}"] = read_errors.get(f"HTTP {answer.status_code}", 0) + 1
                    elif _city(answer.json()) == city:
                        polled.append(time.time() - began)
                        return
                    await asyncio.sleep(0.025)
                unseen_polls += 1

            async def edit(index: int) -> None:
                patient_id = ids[index % len(ids)]
                city = f"Hookton {index}"
                began = time.time()
                try:
                    answer = await http.patch(
                        f"{ghl_url}/_sandbox/contacts/{contacts[patient_id]}", json={"city": city}
                    )
                except httpx.HTTPError as error:
                    edit_errors[type(error).__name__] = edit_errors.get(type(error).__name__, 0) + 1
                    return
                if answer.status_code != 200:
                    edit_errors[f"HTTP {answer.status_code}"] = edit_errors.get(f"HTTP {answer.status_code}", 0) + 1
                    return
                edits.append((patient_id, city, began))
                if index % SAMPLE_EVERY == 0:
                    await poll(patient_id, city, began)

            watcher = asyncio.create_task(watch_salesforce())
            loop = asyncio.get_running_loop()
            start = loop.time() + 0.05
            tasks, lateness = [], 0.0
            for index in range(total):
                due = start + index / rate
                if (delay := due - loop.time()) > 0:
                    await asyncio.sleep(delay)
                lateness = max(lateness, loop.time() - due)
                tasks.append(asyncio.create_task(edit(index)))
            await asyncio.gather(*tasks)
            load_seconds = loop.time() - start
            await ghl.webhooks.drain()
            deliveries = ghl.webhooks.deliveries[delivered_before:]
            delivered = sum(1 for d in deliveries if d.delivered)

            # --- settle: every patient's last edit in the hub (or the deadline).
            last: dict[str, str] = {}
            for patient_id, city, _ in sorted(edits, key=lambda e: e[2]):
                last[patient_id] = city
            settle_deadline = time.time() + 60
            pending = dict(last)
            while pending and time.time() < settle_deadline:
                for patient_id in list(pending)[:50]:
                    answer = await http.get(f"/patients/{patient_id}", headers=admin)
                    if answer.status_code == 200 and _city(answer.json()) == pending[patient_id]:
                        del pending[patient_id]
                if pending:
                    await asyncio.sleep(0.5)
            await asyncio.sleep(GRACE_SECONDS)  # the other vendor's chance to get anything
            stop_watch.set()
            await watcher

            # --- the hub's commit time of each edit, from the history written with it.
            changes: dict[str, list[float]] = {}
            for patient_id in last:
                history = _ok(
                    await http.get(f"/patients/{patient_id}/history", params={"page_size": 500}, headers=admin)
                )
                changes[patient_id] = sorted(
                    _stamp(c["changed_at"]) for c in history["changes"] if c["side"] != "hub" and c["changed_at"]
                )
            latencies: list[float] = []
            for patient_id, _, began in edits:
                after = [t for t in changes.get(patient_id, []) if t >= began]
                if after:
                    latencies.append(after[0] - began)

            # --- the other vendor: what a user's push brings it.
            sf_mid = await _salesforce_cities(http, sf_url)
            began = time.perf_counter()
            pushed = await run_sync(http, admin, "push", vendor="salesforce")
            push_seconds = time.perf_counter() - began
            sf_after = await _salesforce_cities(http, sf_url)
            runs = _ok(await http.get("/integrations/hl/patients/status", headers=admin))["runs"]

    inbox_runs = [r for r in runs if r["direction"] == "pull"]
    agree_after = sum(1 for p, city in last.items() if sf_after.get(p) == city)
    changed_mid = sum(1 for p in last if sf_mid.get(p) != sf_before.get(p))
    ms = [v * 1000 for v in latencies]
    shape = (
        f"{rate:g} GHL edits/s for {seconds:g} s over {len(ids)} patients (each re-edited every"
        f" {len(ids) / rate:.0f} s), limits off; from just before the GHL edit to the hub's committed change"
    )
    return [
        at_most("webhook -> hub p50", percentile(ms, 0.5), "ms", 250, note=shape),
        at_most(
            "webhook -> hub p99",
            percentile(ms, 0.99),
            "ms",
            1000,
            note=f"max {max(ms, default=float('nan')):.0f} ms; driver lateness max {lateness * 1000:.0f} ms",
        ),
        Figure(
            "webhook -> hub via GET /patients/{id}",
            round(percentile([v * 1000 for v in polled], 0.5), 1),
            "ms p50",
            note=(
                f"sample of every {SAMPLE_EVERY}th edit polled live at 25 ms: {len(polled)} seen,"
                f" p99 {percentile([v * 1000 for v in polled], 0.99):.0f} ms, {unseen_polls} unseen in 30 s; read errors {read_errors or 'none'}"
            ),
        ),
        Figure(
            "webhook events delivered",
            delivered,
            "events",
            note=(
                f"{len(edits):,} of {total:,} edits made in {load_seconds:.1f} s (errors {edit_errors or 'none'});"
                f" {len(deliveries):,} deliveries, {delivered:,} answered 2xx; {len(inbox_runs)} inbox runs"
            ),
        ),
        Figure(
            "webhook events visible in the hub",
            len(latencies),
            "events",
            note=(
                f"{len(latencies):,} of {len(edits):,} edits found as hub changes;"
                f" final city right for {len(last) - len(pending)} of {len(last)} patients"
            ),
        ),
        Figure(
            "webhook -> other vendor (Salesforce, real time)",
            "not real time",
            "",
            target="p50 ≤ 250 ms, p99 ≤ 1 s",
            met=False,
            note=(
                f"no fan-out: {len(sf_seen)} edits reached Salesforce during the run + {GRACE_SECONDS:g} s,"
                f" {changed_mid} accounts changed before a push; a user's push then took {push_seconds:.1f} s"
                f" ({pushed['records_updated']} updated, {agree_after} of {len(last)} agree); peak RSS {peak_rss_mb()} MB"
            ),
        ),
    ]
