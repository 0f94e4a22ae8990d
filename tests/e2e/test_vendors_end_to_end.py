"""The EMR as the source, through the gateway and the real stack: patients pulled from the FHIR R4
EMR sandbox into the hub, then pushed to the Salesforce and Zenoti sandboxes; edits made at Zenoti's
front desk and in Salesforce come back and go on to the other vendor."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx

from services.demo import run_sync, run_vendors_demo


async def test_emr_patients_reach_salesforce_and_zenoti_once(stack) -> None:  # noqa: ANN001
    result = await run_vendors_demo(stack)
    pulled = result.pulled_from_emr["records_created"]
    assert pulled == 60  # the EMR sandbox's Synthea patients
    assert result.pushed["salesforce"]["records_created"] == pulled
    assert result.vendor_calls["salesforce"] <= 2  # one sObject Collections call per 200 records (+ auth)
    assert result.pushed["zenoti"]["records_created"] == pulled
    # A guest edited at Zenoti's front desk: the pull reads every guest, updates only that patient.
    assert result.front_desk["pulled"]["records_processed"] == pulled
    assert (result.front_desk["pulled"]["records_created"], result.front_desk["pulled"]["records_updated"]) == (0, 1)
    visits = result.appointments_pulled["records_created"]
    assert visits > pulled  # past visits and bookings of those patients
    assert result.appointments_pushed["records_created"] == visits
    assert result.appointments_pushed["vendor_requests"] <= -(-visits // 200) + 1  # 200 a collection call

    token = stack.gateway.issuer.mint("demo-admin", "demo-emr-practice", "admin")
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=600) as http:
        # The front desk's edit pulled from Zenoti goes on to Salesforce, and only it ...
        edited = (await http.get(f"/patients/{result.front_desk['patient_id']}", headers=headers)).json()
        assert edited["address"][0]["city"] == "Pawtucket"
        again = await run_sync(http, headers, "push", vendor="salesforce")
        assert (again["records_created"], again["records_updated"]) == (0, 1)
        # ... and the one change Salesforce sent in real time (below) goes on to Zenoti, and only it:
        # neither goes back to the vendor it came from.
        again = await run_sync(http, headers, "push", vendor="zenoti")
        assert (again["records_created"], again["records_updated"]) == (0, 1)
        for vendor in ("salesforce", "zenoti"):
            again = await run_sync(http, headers, "push", vendor=vendor)
            assert (again["records_created"], again["records_updated"], again["vendor_requests"]) == (0, 0, 0)
        again = await run_sync(http, headers, "pull", vendor="fhir")
        assert again["records_created"] == 0 and again["records_updated"] == 0

    # Change Data Capture: the demo's Salesforce UI edit reached the hub without a sync call.
    assert result.realtime["patient_id"]
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=600) as http:
        # ... and so did the scheduler's ServiceAppointment move (the demo waited for exactly this start).
        moved = (await http.get(f"/appointments/{result.realtime['appointment_id']}", headers=headers)).json()
        assert datetime.fromisoformat(moved["start"].replace("Z", "+00:00")) == datetime(2031, 5, 5, 15, tzinfo=UTC)
        sender = stack.sandbox_apps["salesforce"].state.sandbox.sender
        await sender.drain()
        runs_before = (await http.get("/integrations/salesforce/patients/status", headers=headers)).json()["runs"]
        seen = len(sender.deliveries)
        # Concord's own write comes back as a change event with Concord's changeOrigin: dropped.
        patient = (await http.get(f"/patients/{result.realtime['patient_id']}", headers=headers)).json()
        patient["address"][0]["postalCode"] = "02895"
        assert (await http.put(f"/patients/{patient['id']}", json=patient, headers=headers)).status_code == 200
        pushed = await run_sync(http, headers, "push", vendor="salesforce")
        assert pushed["records_updated"] == 1
        await sender.drain()
        echoes = sender.deliveries[seen:]
        assert echoes, "the CDC subscriber received no event for Concord's write"
        assert all(d.delivered and d.attempts[-1] == 200 for d in echoes)  # 200 suppressed, not 202 pulled
        runs_after = (await http.get("/integrations/salesforce/patients/status", headers=headers)).json()["runs"]
        assert len(runs_after) == len(runs_before) + 1  # the push itself; no pull started by its echo
        # A forged key starts nothing.
        forged = await http.post(
            "/webhooks/salesforce/cdc",
            json={"payload": {"ChangeEventHeader": {"entityName": "Account", "changeOrigin": ""}}},
            headers={"X-API-Key": "ck_" + "f" * 43},
        )
        assert forged.status_code == 401 and forged.json()["reason"] == "INVALID_API_KEY"
        runs_last = (await http.get("/integrations/salesforce/patients/status", headers=headers)).json()["runs"]
        assert len(runs_last) == len(runs_after)
