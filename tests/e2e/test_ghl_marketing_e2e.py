"""The GHL marketing switches acted on by a push through the whole stack: a practice admin sets
them at the gateway, a push tags the contact at the GHL sandbox, a second push changes nothing,
switches off remove the tags."""

from __future__ import annotations

import httpx

from services.demo import connect_ghl, run_sync
from tests.e2e.conftest import ok
from tests.e2e.test_ghl_appointments_e2e import _appointment, _weekday_at

PRACTICE_ID = "marketing-push-e2e"
CAMPAIGNS = {"concord:email-campaigns", "concord:sms-campaigns"}
TAG_CALLS = ("POST /contacts/{contactId}/tags", "DELETE /contacts/{contactId}/tags")


def _patient(given: str, city: str) -> dict:
    return {
        "resourceType": "Patient",
        "name": [{"given": [given], "family": "Campaigner"}],
        "birthDate": "1971-09-12",
        "telecom": [
            {"system": "email", "value": f"{given.lower()}.campaign@example.com"},
            {"system": "phone", "value": "+16175550181", "use": "mobile"},
        ],
        "address": [{"city": city}],
    }


async def test_campaign_switches_tag_the_pushed_contact_once_and_off_untags_it(stack) -> None:  # noqa: ANN001
    sandbox = stack.sandboxes["ghl"].url
    admin = {"Authorization": f"Bearer {stack.gateway.issuer.mint('mkt-push-admin', PRACTICE_ID, 'admin')}"}
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=300) as http:
        ok(await http.post("/practice", json={"name": "Campaign Clinic"}, headers=admin), 201)
        await connect_ghl(http, admin)
        location = ok(await http.get("/integrations/hl/status", headers=admin))["account_id"]

        async def tags() -> set[str]:
            contacts = ok(await http.get(f"{sandbox}/_sandbox/contacts", params={"locationId": location}))["contacts"]
            (contact,) = [c for c in contacts if c.get("lastName") == "Campaigner"]
            return set(contact.get("tags") or [])

        async def tag_calls() -> int:
            stats = ok(await http.get(f"{sandbox}/_sandbox/stats"))
            return sum(stats.get(route, 0) for route in TAG_CALLS)

        async def edit(city: str) -> None:
            ok(await http.put(f"/patients/{patient}", json=_patient("Cam", city), headers=admin))

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

        # Switches off: the next push removes the campaign tags.
        ok(await http.put("/integrations/hl/marketing", json={}, headers=admin))
        await edit("Lowell")
        third = await run_sync(http, admin, "push")
        assert (third["records_updated"], third["records_failed"]) == (1, 0), third
        assert not await tags() & CAMPAIGNS


async def test_reminder_enrolment_and_lead_score_follow_a_pushed_appointment_once(stack) -> None:  # noqa: ANN001
    sandbox = stack.sandboxes["ghl"].url
    admin = {"Authorization": f"Bearer {stack.gateway.issuer.mint('mkt-appt-admin', 'marketing-appt-e2e', 'admin')}"}
    ghl_state = stack.sandbox_apps["ghl"].state.sandbox
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=300) as http:
        ok(await http.post("/practice", json={"name": "Reminder Clinic"}, headers=admin), 201)
        await connect_ghl(http, admin)
        location = ok(await http.get("/integrations/hl/status", headers=admin))["account_id"]
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
            contacts = ok(await http.get(f"{sandbox}/_sandbox/contacts", params={"locationId": location}))["contacts"]
            (contact,) = [c for c in contacts if c.get("lastName") == "Campaigner"]
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
