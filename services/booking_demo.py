"""Booking at Zenoti from the hub: a practice's patients pushed to Zenoti as guests, its catalog
pulled, provider availability read for a patient and a service, a hub appointment booked into one of
those slots through Zenoti's booking flow (booking -> reserve -> confirm), a second push that writes
nothing, and a front-desk reschedule at Zenoti (no webhook) brought back to the hub by polling."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from rich.console import Console
from rich.table import Table

from services.demo import DemoError, _check, record_baas, run_sync
from services.supervisor import Stack

SERVICE_ID_SYSTEM = "https://zenoti.com/service-id"
# The dev Zenoti organisation's first center (services/dev_vendors.py connects to it) is in Boston.
CENTER_TIME_ZONE = "America/New_York"
PATIENTS = [  # fictional people, made for this demo
    {"given": "Odalys", "family": "Fenwright", "email": "odalys.fenwright@example.com", "phone": "+16175550141"},
    {"given": "Tamsin", "family": "Quillby", "email": "tamsin.quillby@example.com", "phone": "+16175550142"},
]


@dataclass
class BookingResult:
    day: str
    service: str
    free_slots: int
    booked_local: str
    booked_calls: int
    repeat_writes: int
    rescheduled_local: str
    hub_start_after: str
    seconds: float
    appointment_id: str
    vendor_appointment_id: str
    to_emr: int = 0


def _patient(person: dict[str, str]) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "name": [{"given": [person["given"]], "family": person["family"]}],
        "telecom": [{"system": "email", "value": person["email"]}, {"system": "phone", "value": person["phone"]}],
        "gender": "female",
        "birthDate": "1988-04-12",
    }


async def run_booking_demo(stack: Stack, practice_id: str = "demo-booking-practice") -> BookingResult:
    began = time.perf_counter()
    token = stack.gateway.issuer.mint("demo-admin", practice_id, "admin")  # type: ignore[union-attr]
    headers = {"Authorization": f"Bearer {token}"}
    zone = ZoneInfo(CENTER_TIME_ZONE)
    zenoti = stack.vendors["zenoti"]
    org = zenoti.app.state.sandbox.org_by_key(zenoti.connect["api_key"])  # the simulator's memory, to show it
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=600) as http:
        _check(await http.post("/practice", json={"name": "Demo Booking Spa"}, headers=headers), 201, "practice")
        await record_baas(http, headers, ("zenoti", "fhir"))  # it books at Zenoti, then tells the EMR
        _check(await http.post("/integrations/zenoti/connect", json=zenoti.connect, headers=headers), 200, "connect")
        _check(
            await http.put(
                "/integrations/zenoti/booking", json={"center_time_zone": CENTER_TIME_ZONE}, headers=headers
            ),
            200,
            "booking settings",
        )
        patients = [
            _check(await http.post("/patients", json=_patient(p), headers=headers), 201, "patient")["id"]
            for p in PATIENTS
        ]
        guests = await run_sync(http, headers, "push", vendor="zenoti", entity="patients")
        services = await run_sync(http, headers, "pull", vendor="zenoti", entity="services")
        if guests["records_failed"] or services["records_failed"] or guests["status"] != "succeeded":
            raise DemoError(f"Zenoti set-up ended {guests['status']} / {services['status']}")
        catalog = _check(await http.get("/services", params={"page_size": 500}, headers=headers), 200, "services")
        service = next(s for s in catalog["services"] if s["name"] == "Hydrating facial")
        zenoti_service = next(i["value"] for i in service["identifier"] if i["system"] == SERVICE_ID_SYSTEM)

        day = datetime.now(zone).date() + timedelta(days=1)
        free = _check(
            await http.get(
                "/integrations/zenoti/availability",
                params={"patient_id": patients[0], "service_id": service["id"], "date": day.isoformat()},
                headers=headers,
            ),
            200,
            "availability",
        )["slots"]
        if not free:
            raise DemoError(f"Zenoti shows no free slot on {day}")
        slot = free[len(free) // 3]
        start = datetime.fromisoformat(slot["start"].replace("Z", "+00:00"))
        minutes = next(s.duration for s in org.services.values() if s.id == zenoti_service)
        appointment = {
            "resourceType": "Appointment",
            "status": "booked",
            "start": slot["start"],
            "end": (start + timedelta(minutes=minutes)).isoformat(),
            "serviceType": [
                {"coding": [{"system": SERVICE_ID_SYSTEM, "code": zenoti_service}], "text": service["name"]}
            ],
            "participant": [{"actor": {"reference": f"Patient/{patients[0]}"}, "status": "accepted"}],
        }
        hub = _check(await http.post("/appointments", json=appointment, headers=headers), 201, "appointment")
        pushed = await run_sync(http, headers, "push", vendor="zenoti", entity="appointments")
        if pushed["records_created"] != 1 or pushed["records_failed"]:
            raise DemoError(f"the Zenoti booking ended {pushed['status']}: {pushed['records_created']} booked")
        again = await run_sync(http, headers, "push", vendor="zenoti", entity="appointments")
        booked = [a for a in org.appointments.values() if a.start == start and a.service_id == zenoti_service]
        if len(booked) != 1:
            raise DemoError(f"Zenoti holds {len(booked)} appointments for the booking, not 1")

        # The front desk drags it two hours later in Zenoti's Appointment Book: no webhook says so.
        later = (datetime.fromisoformat(slot["local_start"]) + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S")
        drag = f"{zenoti.sandbox.url}/_sandbox/appointments/{booked[0].id}"
        _check(await http.patch(drag, json={"start_time": later}), 200, "drag")
        polled = await run_sync(http, headers, "pull", vendor="zenoti", entity="appointments")
        if polled["records_updated"] != 1:
            raise DemoError(f"the Zenoti appointment poll updated {polled['records_updated']}, not 1")
        after = _check(await http.get(f"/appointments/{hub['id']}", headers=headers), 200, "appointment")
        # The practice's EMR gets the booking as Zenoti holds it now (its patient first).
        fhir = stack.vendors["fhir"]
        _check(await http.post("/integrations/fhir/connect", json=fhir.connect, headers=headers), 200, "fhir connect")
        await run_sync(http, headers, "push", vendor="fhir", entity="patients")
        to_emr = await run_sync(http, headers, "push", vendor="fhir", entity="appointments")
        if to_emr["records_created"] != 1 or to_emr["records_failed"]:
            raise DemoError(f"the EMR appointment push ended {to_emr['status']}: {to_emr['records_created']} created")
    return BookingResult(
        day=date.isoformat(day),
        service=service["name"],
        free_slots=len(free),
        booked_local=slot["local_start"],
        booked_calls=pushed["vendor_requests"],
        repeat_writes=again["records_created"] + again["records_updated"],
        rescheduled_local=later,
        hub_start_after=after["start"],
        seconds=time.perf_counter() - began,
        appointment_id=hub["id"],
        to_emr=to_emr["records_created"],
        vendor_appointment_id=booked[0].id,
    )


def print_booking_summary(result: BookingResult, console: Console) -> None:
    table = Table(title="Booking at Zenoti from the hub (booking -> reserve -> confirm)", show_header=True)
    table.add_column("step")
    table.add_column("result", justify="right")
    table.add_row(f"free slots for {result.service} on {result.day} (availability)", str(result.free_slots))
    table.add_row(
        "hub appointment booked at Zenoti, center time (API calls)", f"{result.booked_local} ({result.booked_calls})"
    )
    table.add_row("pushed again: Zenoti writes", str(result.repeat_writes))
    table.add_row("front desk drags it in Zenoti (no webhook) to", result.rescheduled_local)
    table.add_row("hub appointment start after one appointment poll (UTC)", result.hub_start_after)
    table.add_row("the rescheduled booking pushed on to the FHIR EMR", str(result.to_emr))
    table.add_row("seconds", f"{result.seconds:.1f}")
    console.print(table)
