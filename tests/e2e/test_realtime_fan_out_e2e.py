"""Real time from one vendor to another: a GoHighLevel edit reaches the hub through its signed
webhook and the inbox, and goes on to Salesforce, the practice's other real-time vendor, with no
sync started by anyone (SyncService.fan_out starts a push in the real-time lane). A vendor that is
not real time is left to its own schedule; the vendor the change came from gets no push."""

from __future__ import annotations

import httpx

from libs.temporal import connect
from services.demo import connect_ghl, run_sync, synthetic_patients_bundle
from tests.e2e.conftest import ok

PRACTICE = "p-fan-out"


async def test_a_ghl_edit_reaches_salesforce_in_real_time(stack) -> None:  # noqa: ANN001
    admin = {"Authorization": f"Bearer {stack.gateway.issuer.mint('u-admin', PRACTICE, 'admin')}"}
    ghl, sf = stack.sandboxes["ghl"].url, stack.sandboxes["salesforce"].url
    webhooks = stack.sandbox_apps["ghl"].state.sandbox.webhooks
    temporal = await connect(stack.settings)
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=120) as http:
        ok(await http.post("/practice", json={"name": "Fan-out Clinic"}, headers=admin), 201)
        ghl_config = await connect_ghl(http, admin)
        sf_config = ok(
            await http.post("/integrations/salesforce/connect", json=stack.vendors["salesforce"].connect, headers=admin)
        )["config_id"]
        ids = ok(await http.post("/patients/import", json=synthetic_patients_bundle(3), headers=admin), 201)[
            "patient_ids"
        ]
        for vendor in ("hl", "salesforce"):
            assert (await run_sync(http, admin, "push", vendor=vendor))["records_created"] == 3
        await webhooks.drain()  # the push's own echoes, while GHL is not real time

        location = ok(await http.get("/integrations/hl/status", headers=admin))["account_id"]
        contacts = ok(await http.get(f"{ghl}/_sandbox/contacts", params={"locationId": location}))["contacts"]
        patient = ok(await http.get(f"/patients/{ids[0]}", headers=admin))
        family = patient["name"][0]["family"].lower()
        contact = next(c["id"] for c in contacts if c["lastName"].lower() == family)

        async def salesforce_city() -> str | None:
            accounts = ok(await http.get(f"{sf}/_sandbox/records/Account"))
            return next(a.get("PersonMailingCity") for a in accounts if a["Concord_Patient_Id__c"] == ids[0])

        async def settled() -> None:
            """The GHL deliveries answered, the inbox drained, and any push it started ended."""
            await webhooks.drain()
            await temporal.get_workflow_handle(f"inbox:{ghl_config}").result()
            push = temporal.get_workflow_handle(f"sync:{sf_config}:ENTITY_TYPE_PATIENT")
            await push.result()

        # GHL real time, Salesforce manual: the edit reaches the hub only; Salesforce waits.
        await http.post("/integrations/hl/patients/sync-settings", json={"sync_frequency": "real_time"}, headers=admin)
        before_runs = len(ok(await http.get("/integrations/salesforce/patients/status", headers=admin))["runs"])
        ok(await http.patch(f"{ghl}/_sandbox/contacts/{contact}", json={"city": "Westerly"}))
        await settled()
        assert ok(await http.get(f"/patients/{ids[0]}", headers=admin))["address"][0]["city"] == "Westerly"
        assert await salesforce_city() != "Westerly"
        assert len(ok(await http.get("/integrations/salesforce/patients/status", headers=admin))["runs"]) == before_runs

        # Both real time: the next GHL edit goes on to Salesforce by itself, in a push run of its own.
        body = {"sync_frequency": "real_time"}
        await http.post("/integrations/salesforce/patients/sync-settings", json=body, headers=admin)
        ok(await http.patch(f"{ghl}/_sandbox/contacts/{contact}", json={"city": "Narragansett"}))
        await settled()
        assert await salesforce_city() == "Narragansett"
        runs = ok(await http.get("/integrations/salesforce/patients/status", headers=admin))["runs"]
        pushes = [r for r in runs[: len(runs) - before_runs] if r["direction"] == "push"]
        assert pushes and pushes[0]["status"] == "succeeded" and pushes[0]["records_updated"] >= 1

        # GHL itself is not pushed the change it sent: no push run of the GHL config since.
        ghl_runs = ok(await http.get("/integrations/hl/patients/status", headers=admin))["runs"]
        assert not [r for r in ghl_runs if r["direction"] == "push" and r["status"] != "succeeded"]
        assert sum(r["direction"] == "push" for r in ghl_runs) == 1  # the setup's
