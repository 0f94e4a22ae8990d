"""The GHL marketing switches acted on by a push through the whole stack: a practice admin sets
them at the gateway, a push tags the contact of a consenting patient at the GHL sandbox, a second
push changes nothing, a revoked consent and switches off remove the tags, a DND set at GHL comes
back as the consent denied; a booking a Zap moves and then cancels is enrolled again and then
leaves the reminder workflow."""

from __future__ import annotations

from datetime import datetime, timedelta

import httpx

from libs import fhir_patient
from services.demo import connect_ghl, run_sync
from tests.e2e.conftest import ok
from tests.e2e.test_ghl_appointments_e2e import _appointment, _weekday_at

PRACTICE_ID = "marketing-push-e2e"
CAMPAIGNS = {"concord:email-campaigns", "concord:sms-campaigns"}
TAG_CALLS = ("POST /contacts/{contactId}/tags", "DELETE /contacts/{contactId}/tags")
LEAVE = "DELETE /contacts/{contactId}/workflow/{workflowId}"


def _patient(given: str, city: str, email: str | None = "permit", sms: str | None = "permit") -> dict:
    """A patient who (by default) consents to marketing by email and SMS."""
    patient = {
        "resourceType": "Patient",
        "name": [{"given": [given], "family": "Campaigner"}],
        "birthDate": "1971-09-12",
        "telecom": [
            {"system": "email", "value": f"{given.lower()}.campaign@example.com"},
            {"system": "phone", "value": "+16175550181", "use": "mobile"},
        ],
        "address": [{"city": city}],
    }
    return fhir_patient.apply(patient, {"email_marketing_consent": email, "sms_marketing_consent": sms})


def _consent(patient: dict) -> dict:
    return {k: v for k, v in fhir_patient.project(patient).items() if k in fhir_patient.CONSENT_FIELDS}


async def _connected(stack, http: httpx.AsyncClient, practice_id: str, name: str) -> tuple[dict, str]:  # noqa: ANN001
    """A new practice's admin headers and its GHL location, after the OAuth flow."""
    admin = {"Authorization": f"Bearer {stack.gateway.issuer.mint(f'{practice_id}-admin', practice_id, 'admin')}"}
    ok(await http.post("/practice", json={"name": name}, headers=admin), 201)
    await connect_ghl(http, admin)
    return admin, ok(await http.get("/integrations/hl/status", headers=admin))["account_id"]


async def _campaigner(http: httpx.AsyncClient, sandbox: str, location: str) -> dict:
    """The pushed patient's contact as the GHL sandbox holds it."""
    contacts = ok(await http.get(f"{sandbox}/_sandbox/contacts", params={"locationId": location}))["contacts"]
    (found,) = [c for c in contacts if c.get("lastName") == "Campaigner"]
    return found


async def test_campaign_switches_tag_the_pushed_contact_once_and_off_untags_it(stack) -> None:  # noqa: ANN001
    sandbox = stack.sandboxes["ghl"].url
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=300) as http:
        admin, location = await _connected(stack, http, PRACTICE_ID, "Campaign Clinic")

        async def contact() -> dict:
            return await _campaigner(http, sandbox, location)

        async def tags() -> set[str]:
            return set((await contact()).get("tags") or [])

        async def tag_calls() -> int:
            stats = ok(await http.get(f"{sandbox}/_sandbox/stats"))
            return sum(stats.get(route, 0) for route in TAG_CALLS)

        async def edit(city: str, **consent: str | None) -> None:
            ok(await http.put(f"/patients/{patient}", json=_patient("Cam", city, **consent), headers=admin))

        switches = {"email_campaigns": True, "sms_campaigns": True}
        ok(await http.put("/integrations/hl/marketing", json=switches, headers=admin))
        patient = ok(await http.post("/patients", json=_patient("Cam", "Boston"), headers=admin), 201)["id"]
        first = await run_sync(http, admin, "push")
        assert (first["records_created"], first["records_failed"]) == (1, 0), first
        assert CAMPAIGNS <= await tags()

        # The patient changes, the switches do not: the push updates the contact and tags nothing.
        await edit("Salem")
        before = await tag_calls()
        second = await run_sync(http, admin, "push")
        assert (second["records_updated"], second["records_failed"]) == (1, 0), second
        assert await tag_calls() == before
        assert CAMPAIGNS <= await tags()

        # The patient revokes SMS marketing in the hub: GHL's SMS DND comes on and the SMS tag goes.
        await edit("Salem", sms="deny")
        revoked = await run_sync(http, admin, "push")
        assert (revoked["records_updated"], revoked["records_failed"]) == (1, 0), revoked
        assert await tags() & CAMPAIGNS == {"concord:email-campaigns"}
        assert (await contact())["dndSettings"]["SMS"]["status"] == "active"

        # Switches off: the next push removes the campaign tags.
        ok(await http.put("/integrations/hl/marketing", json={}, headers=admin))
        await edit("Lowell", sms="deny")
        third = await run_sync(http, admin, "push")
        assert (third["records_updated"], third["records_failed"]) == (1, 0), third
        assert not await tags() & CAMPAIGNS


async def test_a_dnd_set_at_ghl_comes_back_as_the_consent_denied(stack) -> None:  # noqa: ANN001
    sandbox = stack.sandboxes["ghl"].url
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=300) as http:
        admin, location = await _connected(stack, http, "marketing-dnd-e2e", "Opt-out Clinic")
        ok(await http.put("/integrations/hl/marketing", json={"email_campaigns": True}, headers=admin))
        patient = ok(await http.post("/patients", json=_patient("Opt", "Boston", sms=None), headers=admin), 201)
        assert (await run_sync(http, admin, "push"))["records_created"] == 1
        contact = await _campaigner(http, sandbox, location)
        assert "concord:email-campaigns" in contact["tags"]

        # The patient unsubscribes from GHL's emails (GHL turns the channel's DND on), and texts STOP.
        dnd = {"dndSettings": {"Email": {"status": "active"}, "SMS": {"status": "permanent"}}}
        ok(await http.patch(f"{sandbox}/_sandbox/contacts/{contact['id']}", json=dnd))
        pulled = await run_sync(http, admin, "pull")
        assert (pulled["records_updated"], pulled["records_failed"]) == (1, 0), pulled
        hub = ok(await http.get(f"/patients/{patient['id']}", headers=admin))
        assert _consent(hub) == {"email_marketing_consent": "deny", "sms_marketing_consent": "deny"}

        # A later hub edit pushes the denial back and no campaign tag is left.
        hub["address"][0]["city"] = "Quincy"
        ok(await http.put(f"/patients/{patient['id']}", json=hub, headers=admin))
        assert (await run_sync(http, admin, "push"))["records_failed"] == 0
        contact = await _campaigner(http, sandbox, location)
        assert "concord:email-campaigns" not in contact["tags"]
        assert {setting["status"] for setting in contact["dndSettings"].values()} <= {"active", "permanent"}


async def test_reminder_enrolment_and_lead_score_follow_a_pushed_appointment_once(stack) -> None:  # noqa: ANN001
    sandbox = stack.sandboxes["ghl"].url
    ghl_state = stack.sandbox_apps["ghl"].state.sandbox
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=300) as http:
        admin, location = await _connected(stack, http, "marketing-appt-e2e", "Reminder Clinic")
        workflows = {w["name"]: w_id for w_id, w in ghl_state.locations[location].workflows.items()}
        token = ok(
            await http.post(
                f"{sandbox}/_sandbox/tokens", json={"client_id": next(iter(ghl_state.apps)), "location_id": location}
            ),
            201,
        )["access_token"]
        field = ok(
            await http.post(
                f"{sandbox}/locations/{location}/customFields",
                json={"name": "Lead score", "dataType": "NUMERICAL"},
                headers={"Authorization": f"Bearer {token}", "Version": "2021-07-28"},
            ),
            201,
        )["customField"]["id"]
        reminder = workflows["Appointment reminders"]
        switches = {
            "appointment_reminders": True,
            "reminder_workflow_id": reminder,
            "lead_scoring": True,
            "lead_score_field": "contact.lead_score",
        }
        ok(await http.put("/integrations/hl/marketing", json=switches, headers=admin))

        patient = ok(await http.post("/patients", json=_patient("Rem", "Boston"), headers=admin), 201)["id"]
        assert (await run_sync(http, admin, "push"))["records_created"] == 1
        ok(
            await http.post(
                "/appointments", json=_appointment(patient, _weekday_at(10), "Annual physical"), headers=admin
            ),
            201,
        )

        async def enrolments() -> list[dict]:
            listed = ok(await http.get(f"{sandbox}/_sandbox/enrollments", params={"locationId": location}))
            return listed["enrollments"]

        async def score() -> object:
            contact = await _campaigner(http, sandbox, location)
            return {c["id"]: c["value"] for c in contact.get("customFields") or []}.get(field)

        async def push_appointments() -> dict:
            return await run_sync(http, admin, "push", entity="appointments")

        pushed = await push_appointments()
        assert (pushed["records_created"], pushed["records_failed"]) == (1, 0), pushed
        enrolled = await enrolments()
        assert [e["workflowId"] for e in enrolled] == [reminder]
        assert await score() == "20"  # a booking ahead, no visit yet

        # A second push: nothing is pending, so no enrolment call and no score write (a re-push of the
        # same appointment is covered against the sandbox in tests/adapters/test_ghl_marketing.py).
        stats = ok(await http.get(f"{sandbox}/_sandbox/stats"))
        again = await push_appointments()
        assert again["records_failed"] == 0, again
        after = ok(await http.get(f"{sandbox}/_sandbox/stats"))
        for route in ("POST /contacts/{contactId}/workflow/{workflowId}", "PUT /contacts/{contactId}"):
            assert after.get(route, 0) == stats.get(route, 0)
        assert await enrolments() == enrolled
        assert await score() == "20"


async def test_a_booking_a_zap_moves_and_cancels_is_reenrolled_and_then_leaves_the_reminders(stack) -> None:  # noqa: ANN001
    sandbox = stack.sandboxes["ghl"].url
    ghl_state = stack.sandbox_apps["ghl"].state.sandbox
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=300) as http:
        admin, location = await _connected(stack, http, "marketing-zap-e2e", "Zapped Clinic")
        reminder = next(w_id for w_id, w in ghl_state.locations[location].workflows.items() if "reminder" in w["name"])
        switches = {"appointment_reminders": True, "reminder_workflow_id": reminder}
        ok(await http.put("/integrations/hl/marketing", json=switches, headers=admin))
        # Bookings reach the hub from a Zap (the hub's API has no appointment edit): Zapier's actions.
        zapier = {"X-API-Key": ok(await http.post("/integrations/zapier/keys", json={}, headers=admin), 201)["api_key"]}
        person = {"external_id": "zap-rem-1", "first_name": "Rhea", "last_name": "Reminded"}
        person |= {"email": "rhea.reminded@example.com", "phone": "+16175550177"}
        ok(await http.post("/zapier/patients", json=person, headers=zapier), 201)
        assert (await run_sync(http, admin, "push"))["records_created"] == 1

        async def zap_books(start: datetime, status: str = "booked", answer: int = 200) -> None:
            """The Zap's action on the one booking (matched on external_id: 201 made, 200 changed)."""
            booking = {"external_id": "zap-rem-booking", "patient_external_id": "zap-rem-1", "status": status}
            booking |= {"start": start.isoformat(), "end": (start + timedelta(minutes=45)).isoformat()}
            booking["service_name"] = "Annual physical"
            ok(await http.post("/zapier/appointments", json=booking, headers=zapier), answer)

        async def pushed() -> None:
            run = await run_sync(http, admin, "push", entity="appointments")
            assert (run["records_processed"], run["records_failed"]) == (1, 0), run

        async def enrolments() -> list[dict]:
            listed = ok(await http.get(f"{sandbox}/_sandbox/enrollments", params={"locationId": location}))
            return listed["enrollments"]

        async def calls(route: str) -> int:
            return ok(await http.get(f"{sandbox}/_sandbox/stats")).get(route, 0)

        def at(enrolment: dict) -> datetime:
            return datetime.fromisoformat(enrolment["eventStartTime"])

        await zap_books(_weekday_at(10), answer=201)
        await pushed()
        [first] = await enrolments()
        assert (first["workflowId"], at(first)) == (reminder, _weekday_at(10))

        # The Zap moves the booking an hour: the contact is enrolled again for the new start.
        await zap_books(_weekday_at(11))
        await pushed()
        [moved] = await enrolments()
        assert (moved["workflowId"], at(moved)) == (reminder, _weekday_at(11))

        # The Zap cancels it: the contact leaves the reminder workflow, once.
        leaving = await calls(LEAVE)
        await zap_books(_weekday_at(11), status="cancelled")
        await pushed()
        assert await enrolments() == []
        assert await calls(LEAVE) == leaving + 1
        again = await run_sync(http, admin, "push", entity="appointments")
        assert again["records_processed"] == 0 and await calls(LEAVE) == leaving + 1
