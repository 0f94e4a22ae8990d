"""Each Salesforce config chooses its appointment object, through the gateway and the real stack
(every service over gRPC, Temporal, the adapter worker, the Salesforce sandbox over HTTP): two
practices in one org, one booking in Salesforce Scheduler (ServiceAppointment), one in the
Lightning calendar (Event). Hub appointments reach each as its own object, a front desk's edit and
booking there come back, neither practice reads the other's object, and the choice is fixed once
appointments synced."""

from __future__ import annotations

import time
from typing import Any

import httpx

from services.demo import run_sync, synthetic_patients_bundle
from tests.e2e.conftest import ok
from tests.gateway.conftest import assert_problem

EXTERNAL_ID = "Concord_Appointment_Id__c"
PRACTICES = {"ServiceAppointment": ("sf-scheduler-e2e", "service_appointment"), "Event": ("sf-calendar-e2e", "event")}
# Each object's fields for a booking its front desk makes or moves.
FIELDS = {
    "ServiceAppointment": {"patient": "ParentRecordId", "start": "SchedStartTime", "end": "SchedEndTime"},
    "Event": {"patient": "WhatId", "start": "StartDateTime", "end": "EndDateTime"},
}
MOVED = ("2026-09-14T15:00:00.000+0000", "2026-09-14T15:30:00.000+0000")
BOOKED = ("2026-09-21T13:00:00.000+0000", "2026-09-21T13:45:00.000+0000")


def _appointment(patient_id: str, day: int) -> dict[str, Any]:
    return {
        "resourceType": "Appointment",
        "status": "booked",
        "start": f"2026-08-{day:02d}T14:00:00Z",
        "end": f"2026-08-{day:02d}T14:45:00Z",
        "serviceType": [{"text": "Annual physical"}],
        "participant": [{"actor": {"reference": f"Patient/{patient_id}"}, "status": "accepted"}],
    }


async def _records(http: httpx.AsyncClient, sandbox: str, sobject: str) -> list[dict[str, Any]]:
    return ok(await http.get(f"{sandbox}/_sandbox/records/{sobject}"))


async def _hub_appointments(http: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, dict[str, Any]]:
    listed = ok(await http.get("/appointments", params={"page_size": 500}, headers=headers))["appointments"]
    return {a["id"]: a for a in listed}


async def _pull_until(http: httpx.AsyncClient, headers: dict[str, str], updated: int, created: int) -> None:
    """Salesforce reads a change once its SystemModstamp has settled (changes.py): pull until it lands."""
    seen, deadline = (0, 0), time.monotonic() + 30
    while seen != (updated, created) and time.monotonic() < deadline:
        pulled = await run_sync(http, headers, "pull", vendor="salesforce", entity="appointments")
        assert pulled["status"] == "succeeded", pulled
        seen = (seen[0] + pulled["records_updated"], seen[1] + pulled["records_created"])
    assert seen == (updated, created)


async def test_two_practices_sync_appointments_as_service_appointments_and_as_calendar_events(stack) -> None:  # noqa: ANN001
    sandbox = stack.sandboxes["salesforce"].url
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=600) as http:
        headers, hub_ids, accounts = {}, {}, {}
        for sobject, (practice_id, choice) in PRACTICES.items():
            token = stack.gateway.issuer.mint(f"{practice_id}-admin", practice_id, "admin")
            headers[sobject] = {"Authorization": f"Bearer {token}"}
            ok(await http.post("/practice", json={"name": practice_id}, headers=headers[sobject]), 201)
            # Chosen before connecting (the config is made then) and before any appointment sync.
            chosen = await http.put(
                "/integrations/salesforce/appointment-object",
                json={"appointment_object": choice},
                headers=headers[sobject],
            )
            assert ok(chosen)["appointment_object"] == choice
            connect = stack.vendors["salesforce"].connect
            ok(await http.post("/integrations/salesforce/connect", json=connect, headers=headers[sobject]))
            patients = ok(
                await http.post("/patients/import", json=synthetic_patients_bundle(2), headers=headers[sobject]), 201
            )["patient_ids"]
            assert (await run_sync(http, headers[sobject], "push", vendor="salesforce"))["records_created"] == 2
            for day, patient_id in enumerate(patients, start=3):
                ok(await http.post("/appointments", json=_appointment(patient_id, day), headers=headers[sobject]), 201)
            pushed = await run_sync(http, headers[sobject], "push", vendor="salesforce", entity="appointments")
            assert (pushed["status"], pushed["records_created"]) == ("succeeded", 2), pushed
            hub_ids[sobject] = set(await _hub_appointments(http, headers[sobject]))
            by_hub_id = {a["Concord_Patient_Id__c"]: a["Id"] for a in await _records(http, sandbox, "Account")}
            accounts[sobject] = [by_hub_id[p] for p in patients]

        # Each practice's appointments are its object at Salesforce, and only there.
        for sobject, other in (("ServiceAppointment", "Event"), ("Event", "ServiceAppointment")):
            written = {r[EXTERNAL_ID] for r in await _records(http, sandbox, sobject) if r.get(EXTERNAL_ID)}
            assert hub_ids[sobject] <= written
            assert not hub_ids[other] & written

        # A front desk moves one booking and books another patient in its own tool.
        for sobject, fields in FIELDS.items():
            mine = [r for r in await _records(http, sandbox, sobject) if r.get(EXTERNAL_ID) in hub_ids[sobject]]
            moved = sorted(mine, key=lambda r: r[EXTERNAL_ID])[0]
            edit = {fields["start"]: MOVED[0], fields["end"]: MOVED[1]}
            ok(await http.patch(f"{sandbox}/_sandbox/records/{sobject}/{moved['Id']}", json=edit))
            booking = {fields["patient"]: accounts[sobject][1], fields["start"]: BOOKED[0], fields["end"]: BOOKED[1]}
            booking["Subject"] = "Follow-up"
            if sobject == "ServiceAppointment":
                booking["Status"] = "Scheduled"
            ok(await http.post(f"{sandbox}/_sandbox/records/{sobject}", json=booking), 201)

        for sobject in FIELDS:
            await _pull_until(http, headers[sobject], updated=1, created=1)
            hub = await _hub_appointments(http, headers[sobject])
            assert len(hub) == 3  # its two and the new booking: nothing of the other practice's object
            starts = sorted(a["start"] for a in hub.values())
            assert "2026-09-14T15:00:00Z" in starts and "2026-09-21T13:00:00Z" in starts, starts
            [new] = [a for a in hub.values() if a["id"] not in hub_ids[sobject]]
            assert new["serviceType"][0]["text"] == "Follow-up"

        # The choice is fixed once appointments synced; the same choice again is accepted.
        practice_id, choice = PRACTICES["Event"]
        refused = await http.put(
            "/integrations/salesforce/appointment-object",
            json={"appointment_object": "service_appointment"},
            headers=headers["Event"],
        )
        assert_problem(refused, 409, reason="APPOINTMENTS_ALREADY_SYNCED")
        same = await http.put(
            "/integrations/salesforce/appointment-object", json={"appointment_object": choice}, headers=headers["Event"]
        )
        assert ok(same)["appointment_object"] == "event"
        assert_problem(
            await http.put(
                "/integrations/salesforce/appointment-object",
                json={"appointment_object": "task"},
                headers=headers["Event"],
            ),
            422,
        )
        read = ok(await http.get("/integrations/salesforce/appointment-object", headers=headers["ServiceAppointment"]))
        assert read["appointment_object"] == "service_appointment"
