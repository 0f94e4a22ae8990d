"""GoHighLevel webhooks end to end: the GHL sandbox delivers signed webhooks to the gateway over
real HTTP (the app's webhook URL), the sync service has the GHL adapter verify each one on the real
Temporal server, stores its events in the config's inbox by GHL's webhookId, and InboxWorkflow
drains them through the pull's reconcile path, reading each contact as it is now. A real-time
config sees a GHL edit with no sync started; duplicated and out-of-order deliveries change nothing
more; a forged delivery is refused; a config that is not real time leaves webhooks to its pulls."""

from __future__ import annotations

import json
import logging

import httpx
from temporalio.client import Client

from libs.temporal import connect
from services.demo import connect_ghl, run_sync, synthetic_patients_bundle
from tests.e2e.conftest import ok

PRACTICE = "p-webhooks"


async def _patient(http: httpx.AsyncClient, headers: dict, patient_id: str) -> dict:
    return ok(await http.get(f"/patients/{patient_id}", headers=headers))


def _city(patient: dict) -> str | None:
    return patient["address"][0].get("city")


async def _drained(stack, http: httpx.AsyncClient) -> list[dict]:  # noqa: ANN001
    """Every delivery the GHL sandbox scheduled has been answered (retries included)."""
    await stack.sandbox_apps["ghl"].state.sandbox.webhooks.drain()
    return ok(await http.get(f"{stack.sandboxes['ghl'].url}/_sandbox/webhooks/deliveries"))["deliveries"]


async def _inbox_settled(temporal: Client, config_id: str) -> int:
    """After the deliveries were answered: the config's InboxWorkflow has emptied its inbox."""
    return await temporal.get_workflow_handle(f"inbox:{config_id}").result()


async def test_ghl_webhooks_reach_the_hub_once_each_and_forged_ones_are_refused(stack, caplog) -> None:  # noqa: ANN001
    caplog.set_level(logging.DEBUG)
    admin = {"Authorization": f"Bearer {stack.gateway.issuer.mint('u-admin', PRACTICE, 'admin')}"}
    sandbox = stack.sandboxes["ghl"].url
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=120) as http:
        ok(await http.post("/practice", json={"name": "Webhook Clinic"}, headers=admin), 201)
        config_id = await connect_ghl(http, admin)
        temporal = await connect(stack.settings)
        location = ok(await http.get("/integrations/hl/status", headers=admin))["account_id"]
        imported = ok(await http.post("/patients/import", json=synthetic_patients_bundle(3), headers=admin), 201)
        assert (await run_sync(http, admin, "push"))["records_created"] == 3
        contacts = ok(await http.get(f"{sandbox}/_sandbox/contacts", params={"locationId": location}))["contacts"]
        by_name = {(c["firstName"].lower(), c["lastName"].lower()): c["id"] for c in contacts}
        first = ok(await http.get(f"/patients/{sorted(imported['patient_ids'])[0]}", headers=admin))
        contact = by_name[(first["name"][0]["given"][0].lower(), first["name"][0]["family"].lower())]

        # Not real time (manual): the webhook is verified and ignored; the hub is unchanged.
        await _drained(stack, http)
        ok(await http.patch(f"{sandbox}/_sandbox/contacts/{contact}", json={"city": "Westerly"}))
        deliveries = await _drained(stack, http)
        assert deliveries and all(d["delivered"] for d in deliveries)
        assert _city(await _patient(http, admin, first["id"])) != "Westerly"

        # Real time: a GHL edit reaches the hub through the inbox, no sync started by anyone.
        await http.post("/integrations/hl/patients/sync-settings", json={"sync_frequency": "real_time"}, headers=admin)
        ok(await http.post(f"{sandbox}/_sandbox/faults", json={"webhook_duplicate_rate": 1.0}))
        ok(await http.patch(f"{sandbox}/_sandbox/contacts/{contact}", json={"city": "Narragansett"}))
        await _drained(stack, http)
        assert await _inbox_settled(temporal, config_id) >= 1
        assert _city(await _patient(http, admin, first["id"])) == "Narragansett"

        # Out of order: two edits, delivered shuffled (and twice each): the hub ends with the last.
        ok(await http.post(f"{sandbox}/_sandbox/faults", json={"webhook_out_of_order": True}))
        ok(await http.patch(f"{sandbox}/_sandbox/contacts/{contact}", json={"city": "Jamestown"}))
        ok(await http.patch(f"{sandbox}/_sandbox/contacts/{contact}", json={"city": "Tiverton"}))
        await _drained(stack, http)
        await _inbox_settled(temporal, config_id)
        assert _city(await _patient(http, admin, first["id"])) == "Tiverton"
        ok(await http.delete(f"{sandbox}/_sandbox/faults"))
        patients = ok(await http.get("/patients", headers=admin))["patients"]
        assert len(patients) == 3  # no delivery created anyone

        # Echo suppression: Concord's own write to GHL comes back as a ContactUpdate webhook; the
        # inbox reads the contact, finds what Concord last synced with it, and changes nothing.
        patient = await _patient(http, admin, first["id"])
        patient["address"] = [{**patient["address"][0], "city": "Wakefield"}]
        ok(await http.put(f"/patients/{first['id']}", json=patient, headers=admin))
        edited = (await http.get(f"/patients/{first['id']}", headers=admin)).headers["ETag"]
        sent_before = len(await _drained(stack, http))
        assert (await run_sync(http, admin, "push"))["records_updated"] == 1
        echoes = (await _drained(stack, http))[sent_before:]
        assert [d["type"] for d in echoes] == ["ContactUpdate"] and all(d["delivered"] for d in echoes)
        await _inbox_settled(temporal, config_id)
        after = await http.get(f"/patients/{first['id']}", headers=admin)
        assert after.headers["ETag"] == edited and _city(after.json()) == "Wakefield"
        history = ok(await http.get(f"/patients/{first['id']}/history", headers=admin))["changes"]
        assert (history[0]["side"], history[0]["action"]) == ("hub", "update")  # the echo wrote nothing
        again = await run_sync(http, admin, "push")
        assert again["records_processed"] == 0  # and nothing bounces back to GHL

        # A forged delivery and a tampered one: 401 problem JSON, nothing stored.
        body = json.dumps({"type": "ContactUpdate", "webhookId": "forged-1", "locationId": location, "id": contact})
        forged = await http.post("/webhooks/ghl", content=body, headers={"x-wh-signature": "AAAA"})
        assert forged.status_code == 401 and forged.headers["content-type"].startswith("application/problem+json")
        assert forged.json()["reason"] == "BAD_SIGNATURE"
        unsigned = await http.post("/webhooks/ghl", content=body)
        assert unsigned.status_code == 401
        assert (await http.post("/webhooks/nobody", content=body)).status_code == 404

        # The inbox's runs are ordinary sync runs, logged like a pull.
        runs = ok(await http.get("/integrations/hl/patients/status", headers=admin))["runs"]
        assert any(r["direction"] == "pull" and r["status"] == "succeeded" and r["records_updated"] for r in runs)

    for city in ("Narragansett", "Jamestown", "Tiverton", "Westerly", "Wakefield"):
        assert city not in caplog.text
