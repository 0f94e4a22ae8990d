"""Booking at Zenoti through the gateway and the real stack (Temporal, gRPC services, the Zenoti
sandbox over HTTP): availability for a hub patient and service, a hub appointment booked through
the booking flow once (a second push writes nothing), a silent front-desk reschedule polled back,
and the availability endpoint's refusals as problem JSON, with the patient's name in none of them."""

from __future__ import annotations

from datetime import datetime

import httpx

from services.booking_demo import PATIENTS, run_booking_demo
from tests.e2e.conftest import ok


def _instant(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def test_a_hub_appointment_is_booked_at_zenoti_once_and_a_reschedule_comes_back(stack) -> None:  # noqa: ANN001
    result = await run_booking_demo(stack)
    assert result.free_slots > 0 and result.repeat_writes == 0 and result.to_emr == 1
    assert result.booked_calls == 5  # the guest's day, booking, reserve, confirm, the booked appointment
    org = stack.vendors["zenoti"].app.state.sandbox.org_by_key(stack.vendors["zenoti"].connect["api_key"])
    booked = org.appointments[result.vendor_appointment_id]
    center = org.centers[booked.center_id]
    assert center.local(booked.start).strftime("%Y-%m-%dT%H:%M:%S") == result.rescheduled_local
    assert _instant(result.hub_start_after) == booked.start  # the hub follows the front desk's drag
    emr = stack.vendors["fhir"].app.state.sandbox.tenants["default"]
    at_emr = [a for a in emr.live("Appointment") if _instant(a["start"]) == booked.start]
    assert len(at_emr) == 1  # the EMR has the booking at its new time, once

    practice = "demo-booking-practice"
    admin = {"Authorization": f"Bearer {stack.gateway.issuer.mint('demo-admin', practice, 'admin')}"}
    staff = {"Authorization": f"Bearer {stack.gateway.issuer.mint('front-desk', practice, 'staff')}"}
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=600) as http:
        hub = ok(await http.get(f"/appointments/{result.appointment_id}", headers=admin))
        patient_id = hub["participant"][0]["actor"]["reference"].removeprefix("Patient/")
        services = ok(await http.get("/services", params={"page_size": 500}, headers=admin))["services"]
        params = {"patient_id": patient_id, "service_id": services[0]["id"], "date": result.day}

        # The front desk may read availability; the booked time is no longer free for its therapist.
        therapist = booked.therapist_id
        free = ok(
            await http.get(
                "/integrations/zenoti/availability",
                params={**params, "service_id": _service_of(services, booked.service_id), "provider_id": therapist},
                headers=staff,
            )
        )["slots"]
        assert free and all(_instant(s["start"]) != booked.start for s in free)

        async def refused(query: dict, status: int, reason: str) -> None:
            response = await http.get("/integrations/zenoti/availability", params=query, headers=admin)
            assert response.status_code == status, response.text
            assert response.headers["content-type"].startswith("application/problem+json")
            assert response.json()["reason"] == reason, response.text
            assert all(p["family"] not in response.text and p["email"] not in response.text for p in PATIENTS)

        await refused({**params, "service_id": "no-such-service"}, 409, "SERVICE_NOT_LINKED")
        await refused({**params, "patient_id": "no-such-patient"}, 409, "PATIENT_NOT_LINKED")
        await refused({**params, "date": "2020-01-01"}, 400, "AVAILABILITY_REFUSED")  # Zenoti: a past date
        bad = await http.get("/integrations/zenoti/availability", params={**params, "days": 9}, headers=admin)
        assert bad.status_code == 422

        # Another practice's caller learns nothing about this one's patient.
        other = {"Authorization": f"Bearer {stack.gateway.issuer.mint('intruder', 'p-elsewhere', 'admin')}"}
        ok(await http.post("/practice", json={"name": "Elsewhere"}, headers=other), 201)
        ok(await http.post("/integrations/zenoti/connect", json=stack.vendors["zenoti"].connect, headers=other))
        stranger = await http.get("/integrations/zenoti/availability", params=params, headers=other)
        assert stranger.status_code == 409 and stranger.json()["reason"] == "PATIENT_NOT_LINKED"
        # Without the center's time zone Zenoti cannot be asked: a clear refusal, not a guess.
        ok(
            await http.put("/integrations/zenoti/booking", json={"center_time_zone": "Mars/Olympus"}, headers=admin),
            400,
        )


def _service_of(services: list[dict], zenoti_id: str) -> str:
    return next(s["id"] for s in services for i in s["identifier"] if i["value"] == zenoti_id)
