"""Webhook received -> change visible at another vendor (issue 7: 50 events/s for 60 s, p50 ≤
250 ms, p99 ≤ 1 s).

The path: a GoHighLevel ContactUpdate webhook reaches the gateway (POST /webhooks/ghl), the sync
service verifies it, stores it in the inbox of each real-time GHL config and signals
InboxWorkflow, which reads the contacts back (get_records) and reconciles them into the hub
through the pull's path; a batch that changed hub records is fanned out (SyncService.fan_out): a
push in the real-time lane to each other real-time config of the practice, here Salesforce's.

* setup: a practice with GHL (OAuth) and Salesforce (username-password) connected, BAAs recorded,
  ``CONCORD_BENCH_WEBHOOK_PATIENTS`` patients (default 300) imported and pushed to both; both
  configs set to real time; limits off (bench_stack, unpaced);
* load: ``CONCORD_BENCH_WEBHOOK_RATE`` edits/s (default 50) for ``CONCORD_BENCH_WEBHOOK_SECONDS``
  (default 60), open loop, each a GHL UI edit (PATCH /_sandbox/contacts/{id}, a new city) of the
  patients round-robin (one patient every patients / rate seconds), which makes the sandbox sign
  and deliver a ContactUpdate webhook to the gateway at once;
* at the other vendor: from just before the edit (GHL's delivery included) to the moment the
  Salesforce sandbox holds the city on the patient's Person Account. The sandbox runs in this
  process: its Account table is looked at every 20 ms (in memory, no HTTP, so watching does not
  load the stack) and the first time each city is seen is kept;
* in the hub (printed): to the change's committed history row (GET /patients/{id}/history,
  ``changed_at`` of the first vendor-side change at or after the edit), read after the run; a
  sample (every 25th edit) is also polled live through GET /patients/{id} as the API-visible
  cross-check; every patient's final city is checked in the hub and at Salesforce.
"""

from __future__ import annotations

import asyncio
import contextlib
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
WATCH_SECONDS = 0.02  # how often the Salesforce sandbox's accounts are looked at
SETTLE_SECONDS = 60.0


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
            stop_watch, all_seen = asyncio.Event(), asyncio.Event()
            wanted: set[str] = set()  # the patients' last cities, once the load is over
            accounts = stack.sandbox_apps["salesforce"].state.sandbox.org(None).table("Account")  # type: ignore[attr-defined]

            async def watch_salesforce() -> None:
                while not stop_watch.is_set():
                    now = time.time()
                    for account in list(accounts.values()):
                        city = account.get("PersonMailingCity")
                        if city and city.startswith("Hookton ") and city not in sf_seen:
                            sf_seen[city] = now
                    if wanted and wanted <= sf_seen.keys():
                        all_seen.set()
                    try:
                        await asyncio.wait_for(stop_watch.wait(), WATCH_SECONDS)
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
            settle_deadline = time.time() + SETTLE_SECONDS
            pending = dict(last)
            while pending and time.time() < settle_deadline:
                for patient_id in list(pending)[:50]:
                    answer = await http.get(f"/patients/{patient_id}", headers=admin)
                    if answer.status_code == 200 and _city(answer.json()) == pending[patient_id]:
                        del pending[patient_id]
                if pending:
                    await asyncio.sleep(0.5)
            # ... and at Salesforce (the watcher has seen every last city, or the deadline).
            wanted.update(last.values())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(all_seen.wait(), max(0.0, settle_deadline - time.time()))
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

            sf_after = await _salesforce_cities(http, sf_url)
            runs = _ok(await http.get("/integrations/hl/patients/status", headers=admin))["runs"]
            sf_runs = _ok(await http.get("/integrations/salesforce/patients/status", headers=admin))["runs"]

    inbox_runs = [r for r in runs if r["direction"] == "pull"]
    agree_after = sum(1 for p, city in last.items() if sf_after.get(p) == city)
    fan_outs = [r for r in sf_runs if r["direction"] == "push"]
    ms = [v * 1000 for v in latencies]
    at_sf = [(sf_seen[city] - began) * 1000 for _, city, began in edits if city in sf_seen]
    shape = (
        f"{rate:g} GHL edits/s for {seconds:g} s over {len(ids)} patients (each re-edited every"
        f" {len(ids) / rate:.0f} s), limits off; from just before the GHL edit to the Salesforce sandbox"
        f" holding the city (its accounts looked at every {WATCH_SECONDS * 1000:.0f} ms)"
    )
    return [
        at_most("webhook -> other vendor (Salesforce) p50", percentile(at_sf, 0.5), "ms", 250, note=shape),
        at_most(
            "webhook -> other vendor (Salesforce) p99",
            percentile(at_sf, 0.99),
            "ms",
            1000,
            note=(
                f"max {max(at_sf, default=float('nan')):.0f} ms; {len(at_sf):,} of {len(edits):,} edits seen at"
                f" Salesforce; final city right there for {agree_after} of {len(last)} patients;"
                f" {len(fan_outs)} real-time push runs; driver lateness max {lateness * 1000:.0f} ms"
            ),
        ),
        Figure(
            "  webhook -> hub p50 (committed history row)",
            round(percentile(ms, 0.5), 1),
            "ms",
            note=f"p99 {percentile(ms, 0.99):.0f} ms, max {max(ms, default=float('nan')):.0f} ms",
        ),
        Figure(
            "  webhook -> hub via GET /patients/{id}",
            round(percentile([v * 1000 for v in polled], 0.5), 1),
            "ms p50",
            note=(
                f"sample of every {SAMPLE_EVERY}th edit polled live at 25 ms: {len(polled)} seen,"
                f" p99 {percentile([v * 1000 for v in polled], 0.99):.0f} ms, {unseen_polls} unseen in 30 s;"
                f" read errors {read_errors or 'none'}"
            ),
        ),
        Figure(
            "  webhook events delivered",
            delivered,
            "events",
            note=(
                f"{len(edits):,} of {total:,} edits made in {load_seconds:.1f} s (errors {edit_errors or 'none'});"
                f" {len(deliveries):,} deliveries, {delivered:,} answered 2xx; {len(inbox_runs)} inbox runs"
            ),
        ),
        Figure(
            "  webhook events visible in the hub",
            len(latencies),
            "events",
            note=(
                f"{len(latencies):,} of {len(edits):,} edits found as hub changes;"
                f" final city right for {len(last) - len(pending)} of {len(last)} patients; peak RSS {peak_rss_mb()} MB"
            ),
        ),
    ]
