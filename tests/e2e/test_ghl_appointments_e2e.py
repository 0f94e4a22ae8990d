"""Appointments through the real stack (gateway, every service over gRPC, Temporal, the adapter
worker, the GoHighLevel sandbox over HTTP): hub appointments are booked in GHL for the right
contact; an appointment whose patient GHL does not have yet waits (PATIENT_NOT_LINKED) until the
patient is pushed; bookings and cancellations made in GHL come back to the hub."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from libs import fhir_patient
from services.demo import connect_ghl, run_sync, synthetic_patients_bundle
from services.supervisor import start_stack

PRACTICE_ID = "appointments-e2e"
NEW_YORK = ZoneInfo("America/New_York")  # the sandbox locations' zone: calendars open 9-17 there
NOTES = "Zyxwvut wants to discuss her biopsy"  # PHI canary


@pytest.fixture
async def stack(settings, temporal_binary):  # noqa: ANN001
    running = await start_stack(settings, ephemeral_ports=True)
    yield running
    await running.stop()


def _ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def _weekday_at(hour: int) -> datetime:
    """A slot start of the sandbox calendars' open hours, a few days ahead."""
    day = datetime.now(NEW_YORK).date() + timedelta(days=3)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return datetime(day.year, day.month, day.day, hour, tzinfo=NEW_YORK)


def _appointment(patient_id: str, start: datetime, service: str, minutes: int = 45) -> dict:
    return {
        "resourceType": "Appointment",
        "status": "booked",
        "start": start.isoformat(),
        "end": (start + timedelta(minutes=minutes)).isoformat(),
        "serviceType": [{"text": service}],
        "description": NOTES,
        "participant": [{"actor": {"reference": f"Patient/{patient_id}"}, "status": "accepted"}],
    }


def _same_instant(a: str, b: str) -> bool:
    return datetime.fromisoformat(a.replace("Z", "+00:00")) == datetime.fromisoformat(b.replace("Z", "+00:00"))


async def test_appointments_go_to_ghl_for_the_right_contact_and_come_back(stack, caplog) -> None:  # noqa: ANN001
    caplog.set_level(logging.DEBUG)
    sandbox = stack.sandboxes["ghl"].url
    headers = {"Authorization": f"Bearer {stack.gateway.issuer.mint('appt-admin', PRACTICE_ID, 'admin')}"}
    ghl_state = stack.sandbox_apps["ghl"].state.sandbox
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=300) as http:

        async def sync_appointments(direction: str) -> dict:
            run = _ok(
                await http.post("/integrations/hl/appointments/sync", json={"direction": direction}, headers=headers),
                202,
            )
            return _ok(await http.get(f"/sync-runs/{run['run_id']}", params={"wait": "true"}, headers=headers))

        async def contact_of(patient_id: str) -> str:
            """The GHL contact the patient push made, found by name as a GHL user would."""
            view = fhir_patient.project(_ok(await http.get(f"/patients/{patient_id}", headers=headers)))
            listed = _ok(await http.get(f"{sandbox}/_sandbox/contacts", params={"locationId": location}))["contacts"]
            return next(
                c["id"]
                for c in listed
                if (c.get("firstName"), c.get("lastName")) == (view["given_name"], view["family_name"])
            )

        async def ghl_events() -> dict[str, dict]:
            listed = _ok(await http.get(f"{sandbox}/_sandbox/appointments", params={"locationId": location}))
            return {e["id"]: e for e in listed["appointments"]}

        async def vendor_calls(route: str) -> int:
            return _ok(await http.get(f"{sandbox}/_sandbox/stats")).get(route, 0)

        _ok(await http.post("/practice", json={"name": "Appointments Clinic"}, headers=headers), 201)
        await connect_ghl(http, headers)
        location = _ok(await http.get("/integrations/hl/status", headers=headers))["account_id"]
        calendars = {c["name"]: c["id"] for c in ghl_state.locations[location].calendars.values()}

        entries = synthetic_patients_bundle(3)["entry"]
        imported = _ok(
            await http.post(
                "/patients/import", json={**synthetic_patients_bundle(0), "entry": entries[:2]}, headers=headers
            ),
            201,
        )
        alice, bob = imported["patient_ids"]
        assert (await run_sync(http, headers, "push"))["records_created"] == 2
        carol = _ok(await http.post("/patients", json=entries[2]["resource"], headers=headers), 201)[
            "id"
        ]  # not in GHL yet

        # The hub books two appointments; only the one whose patient GHL has can go.
        morning, later = _weekday_at(10), _weekday_at(11)
        first = _ok(
            await http.post("/appointments", json=_appointment(alice, morning, "Annual physical"), headers=headers), 201
        )
        waiting = _ok(
            await http.post("/appointments", json=_appointment(carol, later, "Annual physical"), headers=headers), 201
        )
        pushed = await sync_appointments("push")
        assert (pushed["status"], pushed["records_created"], pushed["records_failed"]) == ("partial", 1, 1)
        assert pushed["errors"] == [{"record": waiting["id"], "field": "patient", "reason": "PATIENT_NOT_LINKED"}]
        events = await ghl_events()
        assert len(events) == 1
        event = next(iter(events.values()))
        assert event["contactId"] == await contact_of(alice)
        assert event["calendarId"] == calendars["Annual physical"]
        assert _same_instant(event["startTime"], morning.isoformat()) and event["appointmentStatus"] == "confirmed"

        # Once the patient is pushed, the waiting appointment goes; the booked one is not written again.
        assert (await run_sync(http, headers, "push"))["records_created"] == 1
        creates, updates = (
            await vendor_calls("POST /calendars/events/appointments"),
            await vendor_calls("PUT /calendars/events/appointments/{eventId}"),
        )
        pushed = await sync_appointments("push")
        assert (pushed["status"], pushed["records_created"], pushed["records_failed"]) == ("succeeded", 1, 0)
        assert await vendor_calls("POST /calendars/events/appointments") == creates + 1
        assert await vendor_calls("PUT /calendars/events/appointments/{eventId}") == updates
        events = await ghl_events()
        assert len(events) == 2
        assert {e["contactId"] for e in events.values()} == {await contact_of(alice), await contact_of(carol)}

        # In GHL, staff cancel the first appointment and book one for the second patient.
        app = next(iter(ghl_state.apps))
        token = _ok(await http.post(f"{sandbox}/_sandbox/tokens", json={"client_id": app}), 201)["access_token"]
        ghl = {"Authorization": f"Bearer {token}", "Version": "2021-04-15"}
        cancelled_id = next(i for i, e in events.items() if e["contactId"] == event["contactId"])
        _ok(
            await http.put(
                f"{sandbox}/calendars/events/appointments/{cancelled_id}",
                json={"appointmentStatus": "cancelled"},
                headers=ghl,
            )
        )
        booking = {
            "calendarId": calendars["Hydrating facial"],
            "locationId": location,
            "contactId": await contact_of(bob),
            "startTime": _weekday_at(14).isoformat(),
        }
        booked = _ok(await http.post(f"{sandbox}/calendars/events/appointments", json=booking, headers=ghl))

        pulled = await sync_appointments("pull")
        assert (pulled["status"], pulled["records_updated"], pulled["records_created"]) == ("succeeded", 1, 1)
        assert _ok(await http.get(f"/appointments/{first['id']}", headers=headers))["status"] == "cancelled"
        hub = _ok(await http.get("/appointments", headers=headers))["appointments"]
        new = [a for a in hub if a["id"] not in (first["id"], waiting["id"])]
        assert len(new) == 1 and new[0]["status"] == "booked"
        assert new[0]["participant"][0]["actor"] == {"reference": f"Patient/{bob}"}
        assert new[0]["serviceType"][0]["text"] == "Hydrating facial"
        assert _same_instant(new[0]["start"], booked["startTime"])

        # Nothing changed since: the next pull reads the calendars and returns nothing.
        again = await sync_appointments("pull")
        assert (again["status"], again["records_processed"]) == ("succeeded", 0)

    assert NOTES not in caplog.text and "Zyxwvut" not in caplog.text


async def test_the_demo_books_both_ways_with_ghl_calendars(stack) -> None:  # noqa: ANN001
    from services.appointments_demo import BOOKED_AT_GHL, SERVICE, run_ghl_appointments_demo
    from services.demo import run_demo

    await run_demo(stack, patients_limit=5)
    result = await run_ghl_appointments_demo(stack)
    assert (result.pushed["records_created"], result.pushed["vendor_requests"] >= 1) == (1, True)
    assert result.pulled["records_created"] == 1
    assert result.hub_appointment_from_ghl["serviceType"][0]["text"] == BOOKED_AT_GHL
    ghl = stack.sandbox_apps["ghl"].state.sandbox
    events = [e for loc in ghl.locations.values() for e in loc.appointments.values()]
    names = {c["id"]: c["name"] for loc in ghl.locations.values() for c in loc.calendars.values()}
    assert sorted(names[e["calendarId"]] for e in events) == sorted([SERVICE, BOOKED_AT_GHL])
