"""The GHL marketing switches acted on by a push through the whole stack: a practice admin sets
them at the gateway, a push tags the contact at the GHL sandbox, a second push changes nothing,
switches off remove the tags."""

from __future__ import annotations

import httpx

from services.demo import connect_ghl, run_sync
from tests.e2e.conftest import ok

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
