"""``make demo``: Concord's main job, end to end, on the embedded default.

Starts the Temporal dev server, every service and the GoHighLevel sandbox; creates a practice;
connects GoHighLevel through the OAuth flow; imports the synthetic patients into the hub; pushes
them to GoHighLevel; edits one contact in GoHighLevel; pulls the change back; verifies the audit
chain; prints a summary. Exits 0 only if every step did what it should.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from opentelemetry import context as otel_context
from opentelemetry import trace
from rich.console import Console
from rich.table import Table

from libs.settings import get_settings
from libs.telemetry import setup_telemetry
from services.dev_vendors import zapier_app
from services.supervisor import Stack, start_stack

SYNTHEA_DIR = Path(__file__).resolve().parent.parent / "data" / "fhir" / "synthea"
PRACTICE_ID = "demo-practice"
# The demo practices' Business Associate Agreements with their vendors take effect on this day.
BAA_DATE = "2024-01-01"
_tracer = trace.get_tracer("concord.demo")
EDITED_CITY = "Providence"
REALTIME_CITY = "Woonsocket"
FRONT_DESK_CITY = "Pawtucket"
# Pub/Sub API's error code for a replay id Salesforce will not resume from (older than 72 h).
REPLAY_ID_CORRUPTED = "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted"


class DemoError(RuntimeError):
    pass


@dataclass
class DemoResult:
    practice_id: str
    patients_imported: int
    push_run: dict[str, Any]
    pull_run: dict[str, Any]
    edited_contact_id: str
    edited_patient_id: str
    audit: dict[str, Any]
    vendor_api_calls: int
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)


def synthetic_patients_bundle(limit: int | None = None) -> dict[str, Any]:
    """One collection Bundle with the Patient of every Synthea file."""
    entries = []
    for path in sorted(SYNTHEA_DIR.glob("*.json"))[:limit]:
        bundle = json.loads(path.read_text())
        entries += [{"resource": e["resource"]} for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"]
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


def _check(response: httpx.Response, expected: int, step: str) -> dict[str, Any]:
    if response.status_code != expected:
        raise DemoError(f"{step}: HTTP {response.status_code} {response.text[:300]}")
    return response.json()


async def record_baas(http: httpx.AsyncClient, headers: dict[str, str], slugs: tuple[str, ...]) -> None:
    """What a practice does before connecting a vendor that handles PHI: records the date its
    Business Associate Agreement with it takes effect (without one no PHI field reaches the vendor)."""
    for slug in slugs:
        _check(
            await http.put(f"/integrations/{slug}/baa", json={"effective_date": BAA_DATE}, headers=headers),
            200,
            f"{slug} BAA",
        )


async def connect_ghl(http: httpx.AsyncClient, headers: dict[str, str]) -> str:
    """The OAuth dance a practice admin does in the browser, done with httpx."""
    started = _check(await http.get("/integrations/hl/authorize", headers=headers), 200, "authorize")
    consent = await http.get(started["authorization_url"], follow_redirects=False)
    if consent.status_code not in (302, 303) or "location" not in consent.headers:
        raise DemoError(f"the vendor's consent page answered HTTP {consent.status_code}")
    _check(await http.get(consent.headers["location"]), 200, "OAuth callback")
    return started["config_id"]


async def run_sync(
    http: httpx.AsyncClient, headers: dict[str, str], direction: str, vendor: str = "hl", entity: str = "patients"
) -> dict[str, Any]:
    # Each sync a user starts is the root of its own trace, whatever this process traced before.
    with _tracer.start_as_current_span(f"user starts {direction} sync", context=otel_context.Context()):
        run = _check(
            await http.post(f"/integrations/{vendor}/{entity}/sync", json={"direction": direction}, headers=headers),
            202,
            "sync",
        )
    return _check(await http.get(f"/sync-runs/{run['run_id']}", params={"wait": "true"}, headers=headers), 200, "wait")


async def run_demo(stack: Stack, patients_limit: int | None = None) -> DemoResult:
    began = time.perf_counter()
    timings: dict[str, float] = {}
    sandbox = stack.sandboxes["ghl"].url
    token = stack.gateway.issuer.mint("demo-admin", PRACTICE_ID, "admin")  # type: ignore[union-attr]
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=600) as http:
        await http.post(f"{sandbox}/_sandbox/stats/reset")
        _check(await http.post("/practice", json={"name": "Demo Family Practice"}, headers=headers), 201, "practice")
        await record_baas(http, headers, ("hl",))
        await connect_ghl(http, headers)
        status = _check(await http.get("/integrations/hl/status", headers=headers), 200, "status")
        if not status["connected"]:
            raise DemoError("GoHighLevel is not connected after the OAuth flow")

        mark = time.perf_counter()
        bundle = synthetic_patients_bundle(patients_limit)
        imported = _check(await http.post("/patients/import", json=bundle, headers=headers), 201, "import")
        timings["import"] = time.perf_counter() - mark

        mark = time.perf_counter()
        push = await run_sync(http, headers, "push")
        timings["push"] = time.perf_counter() - mark
        if push["status"] != "succeeded" or push["records_succeeded"] != imported["count"]:
            raise DemoError(f"push ended {push['status']} with {push['records_succeeded']}/{imported['count']} records")

        location = status["account_id"]
        contacts = _check(await http.get(f"{sandbox}/_sandbox/contacts", params={"locationId": location}), 200, "list")
        contacts = contacts.get("contacts", contacts) if isinstance(contacts, dict) else contacts
        if len(contacts) != imported["count"]:
            raise DemoError(f"GoHighLevel holds {len(contacts)} contacts, expected {imported['count']}")
        edited = sorted(contacts, key=lambda c: c["id"])[0]
        _check(await http.patch(f"{sandbox}/_sandbox/contacts/{edited['id']}", json={"city": EDITED_CITY}), 200, "edit")

        mark = time.perf_counter()
        pull = await run_sync(http, headers, "pull")
        timings["pull"] = time.perf_counter() - mark
        if pull["status"] != "succeeded" or pull["records_updated"] != 1 or pull["records_created"] != 0:
            raise DemoError(
                f"pull ended {pull['status']}: {pull['records_updated']} updated, {pull['records_created']} created"
            )
        patient_id = await _find_patient_in_city(http, headers, EDITED_CITY)

        audit = _check(await http.get("/audit/verify", headers=headers), 200, "audit verify")
        if not audit["intact"]:
            raise DemoError(f"the audit chain is broken at {audit['first_broken_sequence']}")
        stats = _check(await http.get(f"{sandbox}/_sandbox/stats"), 200, "stats")
        calls = sum(v for k, v in stats.items() if not k.split(" ", 1)[-1].startswith(("/_sandbox", "/oauth")))
    return DemoResult(
        practice_id=PRACTICE_ID,
        patients_imported=imported["count"],
        push_run=push,
        pull_run=pull,
        edited_contact_id=edited["id"],
        edited_patient_id=patient_id,
        audit=audit,
        vendor_api_calls=calls,
        seconds=time.perf_counter() - began,
        timings=timings,
    )


@dataclass
class VendorsResult:
    pulled_from_emr: dict[str, Any]
    pushed: dict[str, dict[str, Any]]
    vendor_calls: dict[str, int]
    seconds: float
    appointments_pulled: dict[str, Any] = field(default_factory=dict)
    appointments_pushed: dict[str, Any] = field(default_factory=dict)
    realtime: dict[str, Any] = field(default_factory=dict)
    front_desk: dict[str, Any] = field(default_factory=dict)


async def run_vendors_demo(stack: Stack, practice_id: str = "demo-emr-practice") -> VendorsResult:
    """The practice's EMR is the source: patients pulled from the FHIR R4 EMR into the hub, then
    pushed to Salesforce Health Cloud and Zenoti, each connected without a browser."""
    began = time.perf_counter()
    token = stack.gateway.issuer.mint("demo-admin", practice_id, "admin")  # type: ignore[union-attr]
    headers = {"Authorization": f"Bearer {token}"}
    targets = [v for v in ("salesforce", "zenoti") if v in stack.vendors]
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=3600) as http:
        _check(await http.post("/practice", json={"name": "Demo Med Spa"}, headers=headers), 201, "practice")
        await record_baas(http, headers, ("fhir", *targets))
        for vendor in ("fhir", *targets):
            body = stack.vendors[vendor].connect
            _check(
                await http.post(f"/integrations/{vendor}/connect", json=body, headers=headers), 200, f"{vendor} connect"
            )
            await http.post(f"{stack.sandboxes[vendor].url}/_sandbox/stats/reset")
        pulled = await run_sync(http, headers, "pull", vendor="fhir")
        if pulled["status"] != "succeeded" or not pulled["records_created"]:
            raise DemoError(f"the EMR pull ended {pulled['status']} with {pulled['records_created']} patients")
        pushed, calls = {}, {}
        for vendor in targets:
            run = await run_sync(http, headers, "push", vendor=vendor)
            if run["status"] != "succeeded" or run["records_created"] != pulled["records_created"]:
                raise DemoError(f"{vendor} push ended {run['status']}: {run['records_created']} created")
            pushed[vendor] = run
            stats = _check(await http.get(f"{stack.sandboxes[vendor].url}/_sandbox/stats"), 200, "stats")
            calls[vendor] = sum(
                n for key, n in stats.items() if not key.split(" ", 1)[-1].startswith(("/_sandbox", "/services/oauth2"))
            )
        front_desk = await zenoti_front_desk(stack, http, headers) if "zenoti" in targets else {}
        # The EMR's appointments (past visits and bookings) follow their patients to Salesforce.
        visits = await run_sync(http, headers, "pull", vendor="fhir", entity="appointments")
        if visits["status"] != "succeeded" or not visits["records_created"]:
            raise DemoError(f"the EMR appointment pull ended {visits['status']}")
        booked = {}
        if "salesforce" in targets:
            booked = await run_sync(http, headers, "push", vendor="salesforce", entity="appointments")
            if booked["status"] != "succeeded" or booked["records_created"] != visits["records_created"]:
                raise DemoError(f"the Salesforce appointment push ended {booked['status']}")
        realtime = await salesforce_realtime(stack, http, headers) if "salesforce" in targets else {}
    return VendorsResult(pulled, pushed, calls, time.perf_counter() - began, visits, booked, realtime, front_desk)


async def zenoti_front_desk(stack: Stack, http: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, Any]:
    """A receptionist corrects one guest's city in Zenoti; the next pull brings that change, and
    only it, into the hub (the other guests are as Concord wrote them)."""
    zenoti = stack.vendors["zenoti"]
    base = stack.sandboxes["zenoti"].url
    api_key = {"Authorization": f"apikey {zenoti.connect['api_key']}"}
    center = {"center_id": zenoti.connect["account_id"], "size": 100}
    # The newest guest: Salesforce's receptionist (salesforce_realtime) edits the oldest account,
    # and an edit of one patient on both sides is a conflict, which is not this step's story.
    guest = _check(await http.get(f"{base}/v1/guests", params=center, headers=api_key), 200, "guests")["guests"][-1]
    edit = {"address_info": {"city": FRONT_DESK_CITY}}
    _check(await http.patch(f"{base}/_sandbox/guests/{guest['id']}", json=edit), 200, "front desk edit")
    pulled = await run_sync(http, headers, "pull", vendor="zenoti")
    if pulled["status"] != "succeeded" or pulled["records_created"] or pulled["records_updated"] != 1:
        raise DemoError(
            f"the Zenoti pull ended {pulled['status']}: {pulled['records_created']} created,"
            f" {pulled['records_updated']} updated (expected the one edited guest)"
        )
    return {"pulled": pulled, "patient_id": await _find_patient_in_city(http, headers, FRONT_DESK_CITY)}


async def salesforce_realtime(stack: Stack, http: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, Any]:
    """Change Data Capture: a receptionist edits a Person Account in Salesforce and the change is
    in the hub a moment later, with no sync started by anyone."""
    sandbox = stack.sandboxes["salesforce"].url
    enabled = _check(await http.post("/integrations/salesforce/realtime", headers=headers), 201, "realtime")
    await subscribe_cdc(http, sandbox, enabled)
    accounts = _check(await http.get(f"{sandbox}/_sandbox/records/Account"), 200, "accounts")
    accounts = accounts.get("records", accounts) if isinstance(accounts, dict) else accounts
    account = sorted(accounts, key=lambda a: a["Id"])[0]
    began = time.perf_counter()
    edit = {"PersonMailingCity": REALTIME_CITY}
    _check(await http.patch(f"{sandbox}/_sandbox/records/Account/{account['Id']}", json=edit), 200, "UI edit")
    try:
        patient_id = await _wait_for_city(http, headers, REALTIME_CITY, deadline=time.monotonic() + 60)
    except DemoError as error:
        deliveries = _check(await http.get(f"{sandbox}/_sandbox/cdc/deliveries"), 200, "CDC deliveries")
        runs = _check(await http.get("/integrations/salesforce/patients/status", headers=headers), 200, "runs")
        recent = [(r["direction"], r["status"], r["records_processed"], r["records_updated"]) for r in runs["runs"][:3]]
        raise DemoError(f"{error}; CDC deliveries {[d['attempts'] for d in deliveries][-5:]}, runs {recent}") from None
    seconds = time.perf_counter() - began
    # A scheduler moves one visit in Salesforce: the ServiceAppointment change reaches the hub too.
    visits = _check(await http.get(f"{sandbox}/_sandbox/records/ServiceAppointment"), 200, "appointments")
    visits = visits.get("records", visits) if isinstance(visits, dict) else visits
    visit = sorted((v for v in visits if v.get("Concord_Appointment_Id__c")), key=lambda v: v["Id"])[0]
    moved = {"SchedStartTime": "2031-05-05T15:00:00.000+0000", "SchedEndTime": "2031-05-05T15:30:00.000+0000"}
    began = time.perf_counter()
    _check(await http.patch(f"{sandbox}/_sandbox/records/ServiceAppointment/{visit['Id']}", json=moved), 200, "move")
    hub_id, deadline = visit["Concord_Appointment_Id__c"], time.monotonic() + 60
    while not _check(await http.get(f"/appointments/{hub_id}", headers=headers), 200, "appt")["start"].startswith(
        "2031-05-05T15:00:00"
    ):
        if time.monotonic() > deadline:
            raise DemoError("the Salesforce appointment move did not reach the hub within the deadline")
        await asyncio.sleep(0.2)
    return {
        "patient_id": patient_id,
        "seconds": seconds,
        "appointment_id": hub_id,
        "appointment_seconds": time.perf_counter() - began,
    }


async def subscribe_cdc(http: httpx.AsyncClient, sandbox: str, enabled: dict[str, Any]) -> dict[str, Any]:
    """What a CDC relay does each time it (re)connects, the sandbox standing in for Pub/Sub's
    Subscribe: asks Concord where to resume and subscribes from there, so the events published
    while it was away arrive first. If Salesforce no longer holds that replay id (72 h), it tells
    Concord (which pulls in full) and subscribes at LATEST. ``enabled`` is the answer of
    POST /integrations/salesforce/realtime. Returns the sandbox's subscription."""
    key = enabled["headers"]
    position = _check(await http.get(enabled["replay_url"], headers=key), 200, "CDC position")
    target = {"url": enabled["url"], "channel": enabled["channel"], "headers": key}
    start = {k: position[k] for k in ("replay_preset", "replay_id") if k in position}
    answer = await http.post(f"{sandbox}/_sandbox/cdc/subscriptions", json={**target, **start})
    if answer.status_code == 400 and answer.json().get("errorCode") == REPLAY_ID_CORRUPTED:
        while True:  # 503 + Retry-After while a pull of the config is running
            resynced = await http.post(enabled["resync_url"], json={"error_code": REPLAY_ID_CORRUPTED}, headers=key)
            if resynced.status_code != 503:
                break
            await asyncio.sleep(float(resynced.headers.get("Retry-After", "1")))
        _check(resynced, 202, "CDC resync")
        answer = await http.post(f"{sandbox}/_sandbox/cdc/subscriptions", json={**target, "replay_preset": "LATEST"})
    return _check(answer, 201, "CDC subscribe")


async def _wait_for_city(http: httpx.AsyncClient, headers: dict[str, str], city: str, deadline: float) -> str:
    """Polls the hub (the event's pull runs on its own) until one patient lives in ``city``."""
    while True:
        try:
            return await _find_patient_in_city(http, headers, city)
        except DemoError:
            if time.monotonic() > deadline:
                raise DemoError("the Salesforce edit did not reach the hub within the deadline") from None
        await asyncio.sleep(0.2)


@dataclass
class ZapierResult:
    zaps: dict[str, int]
    actions: dict[str, int]
    pushed: dict[str, Any]
    deliveries: int
    delivered_records: int
    unsubscribed: bool
    seconds: float
    appointments_delivered: int = 0


async def run_zapier_demo(stack: Stack, practice_id: str = "demo-zapier-practice", seeded: int = 10) -> ZapierResult:
    """Zapier, the practice's everything-else: Concord issues Zapier an API key; Zaps subscribe
    REST hooks; Zapier actions create patients and book an appointment in the hub; the hub's own
    patients reach the patient.created Zap (signed, in batches); a Zap turned off unsubscribes."""
    began = time.perf_counter()
    zapier = stack.sandboxes["zapier"].url
    token = stack.gateway.issuer.mint("demo-admin", practice_id, "admin")  # type: ignore[union-attr]
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=600) as http:
        _check(await http.post("/practice", json={"name": "Demo Wellness Clinic"}, headers=headers), 201, "practice")
        await record_baas(http, headers, ("zapier",))
        key = _check(await http.post("/integrations/zapier/keys", json={"label": "demo"}, headers=headers), 201, "key")
        app_id = f"concord-{practice_id}"
        _check(
            await http.post(f"{zapier}/_sandbox/apps", json=zapier_app(app_id, stack.gateway_url, key["api_key"])),
            201,
            "zapier app",
        )
        _check(await http.post(f"{zapier}/_sandbox/apps/{app_id}/connect", json={}), 200, "zapier connect")
        zaps = {}
        for trigger in ("patient_created", "appointment_booked"):
            zap = _check(
                await http.post(f"{zapier}/_sandbox/zaps", json={"app_id": app_id, "trigger": trigger}), 201, "zap"
            )
            if zap["state"] != "on":
                raise DemoError(f"the {trigger} Zap did not turn on: {zap.get('error')}")
            zaps[trigger] = zap["id"]
        # Zapier actions: patients from another app, then one booking for the first of them.
        seed = _check(
            await http.post(
                f"{zapier}/_sandbox/seed",
                json={"zap_id": zaps["patient_created"], "action": "create_or_update_patient", "count": seeded},
            ),
            201,
            "zapier actions",
        )
        if seed["succeeded"] != seeded:
            raise DemoError(f"{seeded - seed['succeeded']} Zapier patient actions failed")
        first = synthetic_patients_bundle(1)["entry"][0]["resource"]
        booking = {
            "external_id": "zap-booking-1",
            "patient_external_id": first["id"],
            "start": "2027-01-11T15:00:00Z",
            "end": "2027-01-11T15:30:00Z",
            "service_name": "Follow-up visit",
        }
        booked = _check(
            await http.post(f"{zapier}/_sandbox/zaps/{zaps['patient_created']}/actions/book_appointment", json=booking),
            200,
            "zapier booking",
        )
        if not booked.get("ok"):
            raise DemoError(f"the Zapier booking failed: {booked.get('error') or booked.get('status')}")
        # Patients the practice keeps in the hub go out to the patient.created Zap.
        bundle = synthetic_patients_bundle(seeded + 20)
        bundle["entry"] = bundle["entry"][seeded:]
        imported = _check(await http.post("/patients/import", json=bundle, headers=headers), 201, "import")
        pushed = await run_sync(http, headers, "push", vendor="zapier")
        if pushed["status"] != "succeeded" or pushed["records_created"] != imported["count"]:
            raise DemoError(f"the Zapier push ended {pushed['status']}: {pushed['records_created']} delivered")
        again = await run_sync(http, headers, "push", vendor="zapier")
        if again["records_processed"] != 0:
            raise DemoError(f"a second push to Zapier sent {again['records_processed']} records again")
        # Two appointments the practice books in the hub reach the appointment.booked Zap.
        for n, patient_id in enumerate(imported["patient_ids"][:2]):
            visit = {
                "resourceType": "Appointment",
                "status": "booked",
                "start": f"2027-01-1{2 + n}T16:00:00Z",
                "end": f"2027-01-1{2 + n}T16:30:00Z",
                "serviceType": [{"text": "Follow-up visit"}],
                "participant": [{"actor": {"reference": f"Patient/{patient_id}"}, "status": "accepted"}],
            }
            _check(await http.post("/appointments", json=visit, headers=headers), 201, "appointment")
        visits = await run_sync(http, headers, "push", vendor="zapier", entity="appointments")
        booked_zap = zaps["appointment_booked"]
        booked_out = _check(await http.get(f"{zapier}/_sandbox/zaps/{booked_zap}/deliveries"), 200, "deliveries")
        booked_records = sum(len(d["body"]) if isinstance(d.get("body"), list) else 1 for d in booked_out)
        if visits["records_created"] != 2 or booked_records != 2:
            raise DemoError(f"the appointment.booked Zap received {booked_records} appointments, expected 2")
        zap_id = zaps["patient_created"]
        deliveries = _check(await http.get(f"{zapier}/_sandbox/zaps/{zap_id}/deliveries"), 200, "deliveries")
        delivered = sum(len(d["body"]) if isinstance(d.get("body"), list) else 1 for d in deliveries)
        if delivered != imported["count"]:
            raise DemoError(f"the Zap received {delivered} patients, expected {imported['count']}")
        _check(await http.post(f"{zapier}/_sandbox/zaps/{zap_id}/off"), 200, "zap off")
        hooks = _check(await http.get("/zapier/hooks", headers=headers), 200, "hooks")
        unsubscribed = all(h["event"] != "patient.created" for h in hooks["subscriptions"])
    return ZapierResult(
        zaps=zaps,
        actions={"patients": seed["succeeded"], "appointments": 1},
        pushed=pushed,
        appointments_delivered=booked_records,
        deliveries=len(deliveries),
        delivered_records=delivered,
        unsubscribed=unsubscribed,
        seconds=time.perf_counter() - began,
    )


def print_catalog_summary(result: Any, console: Console) -> None:
    table = Table(title="The service catalog: Zenoti -> hub (HealthcareService) -> FHIR R4 EMR", show_header=True)
    table.add_column("step")
    table.add_column("result", justify="right")
    table.add_row(
        "catalog items pulled from Zenoti (API calls)",
        f"{result.pulled['records_created']} ({result.pulled['vendor_requests']})",
    )
    table.add_row("pushed to the FHIR EMR as HealthcareService", str(result.pushed["records_created"]))
    priced = sum(1 for s in result.services if any("service-price" in e.get("url", "") for e in s.get("extension", [])))
    table.add_row("hub catalog items with a price", f"{priced} of {len(result.services)}")
    table.add_row("catalog pull trace id", result.pulled["trace_id"])
    console.print(table)


def print_zapier_summary(result: ZapierResult, console: Console) -> None:
    table = Table(title="Zapier: REST hooks, actions and deliveries", show_header=True)
    table.add_column("step")
    table.add_column("result", justify="right")
    table.add_row("Zaps turned on (REST hooks subscribed)", str(len(result.zaps)))
    table.add_row("patients created by Zapier actions", str(result.actions["patients"]))
    table.add_row("appointments booked by a Zapier action", str(result.actions["appointments"]))
    table.add_row("hub patients delivered to the patient.created Zap", str(result.delivered_records))
    table.add_row("signed catch-hook deliveries (batches)", str(result.deliveries))
    table.add_row("hub appointments delivered to the appointment.booked Zap", str(result.appointments_delivered))
    table.add_row("Zap turned off -> unsubscribed", "yes" if result.unsubscribed else "no")
    table.add_row("seconds", f"{result.seconds:.1f}")
    table.add_row("push sync trace id", result.pushed["trace_id"])
    console.print(table)


async def _find_patient_in_city(http: httpx.AsyncClient, headers: dict[str, str], city: str) -> str:
    found, token = [], ""
    while True:
        page = _check(
            await http.get("/patients", params={"page_size": 500, "page_token": token}, headers=headers), 200, "list"
        )
        found += [p["id"] for p in page["patients"] if any(a.get("city") == city for a in p.get("address", []))]
        token = page["next_page_token"]
        if not token:
            break
    if len(found) != 1:
        raise DemoError(f"expected exactly one hub patient with the edited city, found {len(found)}")
    return found[0]


def print_vendors_summary(result: VendorsResult, console: Console) -> None:
    table = Table(title="The EMR as the source: FHIR R4 EMR -> hub -> Salesforce and Zenoti", show_header=True)
    table.add_column("step")
    table.add_column("result", justify="right")
    table.add_row("patients pulled from the FHIR EMR", str(result.pulled_from_emr["records_created"]))
    for vendor, run in result.pushed.items():
        table.add_row(f"pushed to {vendor} (created)", f"{run['records_succeeded']} ({run['records_created']})")
        table.add_row(f"{vendor} API calls", str(result.vendor_calls[vendor]))
    if result.front_desk:
        run = result.front_desk["pulled"]
        table.add_row(
            "Zenoti front-desk edit pulled into the hub (guests read, updated)",
            f"{run['records_processed']}, {run['records_updated']}",
        )
    table.add_row("appointments pulled from the FHIR EMR", str(result.appointments_pulled["records_created"]))
    if result.appointments_pushed:
        run = result.appointments_pushed
        table.add_row(
            "appointments pushed to salesforce (API calls)", f"{run['records_created']} ({run['vendor_requests']})"
        )
    if result.realtime:
        table.add_row("Salesforce UI edit -> hub by Change Data Capture (seconds)", f"{result.realtime['seconds']:.2f}")
        table.add_row(
            "ServiceAppointment moved in Salesforce -> hub by CDC (seconds)",
            f"{result.realtime['appointment_seconds']:.2f}",
        )
    table.add_row("seconds (Zenoti paced at its 60 calls a minute)", f"{result.seconds:.1f}")
    console.print(table)


def print_summary(result: DemoResult, console: Console) -> None:
    table = Table(title="Concord demo: GoHighLevel, end to end", show_header=True)
    table.add_column("step")
    table.add_column("result", justify="right")
    table.add_row("patients imported into the hub", str(result.patients_imported))
    table.add_row(
        "pushed to GoHighLevel (created)",
        f"{result.push_run['records_succeeded']} ({result.push_run['records_created']})",
    )
    table.add_row(
        "pulled back after one edit (updated / unchanged)",
        f"{result.pull_run['records_updated']} / {result.pull_run['records_processed'] - result.pull_run['records_updated']}",
    )
    table.add_row("GoHighLevel API calls (sandbox count)", str(result.vendor_api_calls))
    table.add_row("audit chain", f"intact, {result.audit['events_checked']} events")
    for name, seconds in result.timings.items():
        table.add_row(f"{name} seconds", f"{seconds:.2f}")
    table.add_row("total seconds", f"{result.seconds:.2f}")
    table.add_row("push sync trace id", result.push_run["trace_id"])
    table.add_row("pull sync trace id", result.pull_run["trace_id"])
    console.print(table)


async def run_all(stack: Stack, console: Console) -> None:
    """Every part of the demo, one after the other, each printing its summary (DemoError on a
    failed step)."""
    # The other parts build on this module's helpers: imported here, not at its top.
    from services.appointments_demo import print_ghl_appointments_summary, run_ghl_appointments_demo
    from services.booking_demo import print_booking_summary, run_booking_demo
    from services.catalog_demo import run_catalog_demo
    from services.conflicts_demo import print_conflicts_summary, run_conflicts_demo

    parts = [
        ("GoHighLevel", run_demo, print_summary),
        ("a conflict in the review queue", run_conflicts_demo, print_conflicts_summary),
        ("appointments with GoHighLevel calendars", run_ghl_appointments_demo, print_ghl_appointments_summary),
        (
            "FHIR EMR -> Salesforce and Zenoti (Zenoti is paced: about 2 minutes)",
            run_vendors_demo,
            print_vendors_summary,
        ),
        ("the Zenoti service catalog -> hub -> FHIR EMR", run_catalog_demo, print_catalog_summary),
        ("booking at Zenoti from the hub (paced)", run_booking_demo, print_booking_summary),
        ("Zapier", run_zapier_demo, print_zapier_summary),
    ]
    for label, run, show in parts:
        with console.status(f"running the demo: {label}"):
            result = await run(stack)
        show(result, console)


async def _main() -> int:
    console = Console()
    settings = get_settings()
    data_dir = settings.data_dir / "demo"
    shutil.rmtree(data_dir, ignore_errors=True)
    # The summary is the demo's output; set CONCORD_LOG_LEVEL=INFO to see the services talk.
    log_level = os.environ.get("CONCORD_LOG_LEVEL", "WARNING")
    settings = settings.model_copy(update={"data_dir": data_dir, "log_level": log_level})
    setup_telemetry("concord-demo", settings)
    with console.status("starting Temporal, the services and the GoHighLevel sandbox"):
        stack = await start_stack(settings, ephemeral_ports=True)
    try:
        await run_all(stack, console)
    except DemoError as error:
        console.print(f"[red]demo failed:[/red] {error}")
        return 1
    finally:
        await stack.stop()
    return 0


if __name__ == "__main__":
    # Through the importable module, so a DemoError raised by the other demo modules (which import
    # services.demo) is the class _main catches, not a twin defined in __main__.
    from services.demo import _main as main

    sys.exit(asyncio.run(main()))
