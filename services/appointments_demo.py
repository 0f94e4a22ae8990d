"""Appointments both ways with GoHighLevel, in the practice the GHL part of the demo set up (its
patients are GHL contacts): the hub books one, the push puts it on the service's GHL calendar; GHL
staff book another for a second patient in GHL, and the pull brings it into the hub."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from rich.console import Console
from rich.table import Table

from libs import fhir_patient
from services.demo import PRACTICE_ID, DemoError, _check, run_sync
from services.supervisor import Stack

NEW_YORK = ZoneInfo("America/New_York")
SERVICE = "Annual physical"  # a GHL calendar of the sandbox location (one calendar per bookable service)
BOOKED_AT_GHL = "Hydrating facial"


@dataclass
class GhlAppointmentsResult:
    pushed: dict[str, Any]
    pulled: dict[str, Any]
    calendar: str
    hub_appointment_from_ghl: dict[str, Any]
    seconds: float


def _weekday_at(hour: int, days: int) -> datetime:
    day = datetime.now(NEW_YORK).date() + timedelta(days=days)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return datetime(day.year, day.month, day.day, hour, tzinfo=NEW_YORK)


async def run_ghl_appointments_demo(stack: Stack, practice_id: str = PRACTICE_ID) -> GhlAppointmentsResult:
    began = time.perf_counter()
    sandbox = stack.sandboxes["ghl"].url
    ghl = stack.sandbox_apps["ghl"].state.sandbox  # type: ignore[attr-defined]  # the simulator, to show it
    token = stack.gateway.issuer.mint("demo-admin", practice_id, "admin")  # type: ignore[union-attr]
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=600) as http:
        location = _check(await http.get("/integrations/hl/status", headers=headers), 200, "status")["account_id"]
        calendars = {c["name"]: c["id"] for c in ghl.locations[location].calendars.values()}
        patients = _check(await http.get("/patients", params={"page_size": 2}, headers=headers), 200, "patients")
        first, second = [p["id"] for p in patients["patients"][:2]]
        start = _weekday_at(10, 3)
        appointment = {
            "resourceType": "Appointment",
            "status": "booked",
            "start": start.isoformat(),
            "end": (start + timedelta(minutes=45)).isoformat(),
            "serviceType": [{"text": SERVICE}],
            "participant": [{"actor": {"reference": f"Patient/{first}"}, "status": "accepted"}],
        }
        _check(await http.post("/appointments", json=appointment, headers=headers), 201, "appointment")
        pushed = await run_sync(http, headers, "push", vendor="hl", entity="appointments")
        if pushed["records_created"] != 1 or pushed["records_failed"]:
            raise DemoError(f"the GHL appointment push ended {pushed['status']}: {pushed['records_created']} created")

        # GHL staff book the second patient's facial in GHL (its API, as their tools would).
        view = fhir_patient.project(_check(await http.get(f"/patients/{second}", headers=headers), 200, "patient"))
        contacts = _check(await http.get(f"{sandbox}/_sandbox/contacts", params={"locationId": location}), 200, "list")
        name = (view["given_name"], view["family_name"])
        contact = next(c["id"] for c in contacts["contacts"] if (c.get("firstName"), c.get("lastName")) == name)
        app = next(iter(ghl.apps))
        access = _check(await http.post(f"{sandbox}/_sandbox/tokens", json={"client_id": app}), 201, "token")
        staff = {"Authorization": f"Bearer {access['access_token']}", "Version": "2021-04-15"}
        booking = {
            "calendarId": calendars[BOOKED_AT_GHL],
            "locationId": location,
            "contactId": contact,
            "startTime": _weekday_at(14, 4).isoformat(),
        }
        _check(await http.post(f"{sandbox}/calendars/events/appointments", json=booking, headers=staff), 200, "book")
        pulled = await run_sync(http, headers, "pull", vendor="hl", entity="appointments")
        if pulled["records_created"] != 1 or pulled["records_failed"]:
            raise DemoError(f"the GHL appointment pull ended {pulled['status']}: {pulled['records_created']} created")
        listed = _check(await http.get("/appointments", params={"page_size": 50}, headers=headers), 200, "list")
        from_ghl = next(
            a for a in listed["appointments"] if a["participant"][0]["actor"].get("reference") == f"Patient/{second}"
        )
    return GhlAppointmentsResult(pushed, pulled, SERVICE, from_ghl, time.perf_counter() - began)


def print_ghl_appointments_summary(result: GhlAppointmentsResult, console: Console) -> None:
    table = Table(title="Appointments with GoHighLevel calendars, both ways", show_header=True)
    table.add_column("step")
    table.add_column("result", justify="right")
    table.add_row(f"hub appointment pushed to the '{result.calendar}' calendar (API calls)",
                  f"{result.pushed['records_created']} ({result.pushed['vendor_requests']})")  # fmt: skip
    table.add_row("booked by GHL staff, pulled into the hub", str(result.pulled["records_created"]))
    table.add_row("its hub service / start",
                  f"{result.hub_appointment_from_ghl['serviceType'][0]['text']} / {result.hub_appointment_from_ghl['start']}")  # fmt: skip
    table.add_row("seconds", f"{result.seconds:.1f}")
    console.print(table)
