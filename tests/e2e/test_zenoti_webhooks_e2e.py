"""Zenoti webhooks end to end: the Zenoti sandbox delivers Guest.* events signed with the secret
Concord derived for the config (the practice enters it where it registers the webhook in Zenoti)
to the config's URL at the gateway over real HTTP; the sync service checks the signature and puts
the events in the config's inbox, whose workflow reads each guest back (a Guest.Deleted is
confirmed by the guest being gone, and becomes a tombstone). Forged deliveries, and deliveries to
a URL that names no Zenoti config, are refused alike."""

from __future__ import annotations

import logging

import httpx

from libs.temporal import connect
from sandbox.zenoti import render
from services.demo import run_sync, synthetic_patients_bundle
from tests.e2e.conftest import ok

PRACTICE = "p-zenoti-webhooks"


async def test_zenoti_guest_events_reach_the_hub_and_a_deleted_guest_becomes_a_tombstone(stack, caplog) -> None:  # noqa: ANN001
    caplog.set_level(logging.DEBUG)
    admin = {"Authorization": f"Bearer {stack.gateway.issuer.mint('u-admin', PRACTICE, 'admin')}"}
    vendor = stack.vendors["zenoti"]
    zenoti = vendor.app.state.sandbox
    org = zenoti.org_by_key(vendor.connect["api_key"])
    sandbox = stack.sandboxes["zenoti"].url
    temporal = await connect(stack.settings)
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=300) as http:
        ok(await http.post("/practice", json={"name": "Zenoti Webhook Spa"}, headers=admin), 201)
        config_id = ok(await http.post("/integrations/zenoti/connect", json=vendor.connect, headers=admin))["config_id"]
        imported = ok(await http.post("/patients/import", json=synthetic_patients_bundle(3), headers=admin), 201)
        assert (await run_sync(http, admin, "push", vendor="zenoti"))["records_created"] == 3
        guests = {}
        for patient_id in imported["patient_ids"]:
            name = ok(await http.get(f"/patients/{patient_id}", headers=admin))["name"][0]
            guests[patient_id] = next(
                g["id"]
                for g in map(render.guest, org.guests.values())
                if g["personal_info"]["last_name"] == name["family"]
                and g["personal_info"]["first_name"] == name["given"][0]
            )
        edited, deleted, _ = sorted(imported["patient_ids"])

        setup = ok(await http.post("/integrations/zenoti/webhooks", headers=admin))
        assert setup["url"].endswith(f"/webhooks/zenoti/{config_id}") and setup["secret"]
        assert ok(await http.post("/integrations/zenoti/webhooks", headers=admin))["secret"] == setup["secret"]
        registration = {"url": setup["url"], "secret": setup["secret"], "events": setup["events"]}
        ok(await http.post(f"{sandbox}/_sandbox/webhooks", json=registration), 201)

        async def edit(guest_id: str, city: str) -> None:
            ok(await http.patch(f"{sandbox}/_sandbox/guests/{guest_id}", json={"address_info": {"city": city}}))
            await zenoti.webhooks.drain()

        def city(patient: dict) -> str | None:
            return patient["address"][0].get("city")

        # Not real time yet: the delivery verifies and is ignored.
        await edit(guests[edited], "Wickford")
        assert city(ok(await http.get(f"/patients/{edited}", headers=admin))) != "Wickford"

        # Real time: a front-desk edit reaches the hub through the inbox.
        body = {"sync_frequency": "real_time"}
        ok(await http.post("/integrations/zenoti/patients/sync-settings", json=body, headers=admin))
        await edit(guests[edited], "Galilee")
        await temporal.get_workflow_handle(f"inbox:{config_id}").result()
        assert city(ok(await http.get(f"/patients/{edited}", headers=admin))) == "Galilee"

        # A guest deleted in Zenoti's web app (its API has no delete): a tombstone in the hub.
        ok(await http.delete(f"{sandbox}/_sandbox/guests/{guests[deleted]}"))
        await zenoti.webhooks.drain()
        await temporal.get_workflow_handle(f"inbox:{config_id}").result()
        gone = await http.get(f"/patients/{deleted}", headers=admin)
        assert gone.status_code == 404 and gone.json()["reason"] == "PATIENT_NOT_FOUND"
        history = ok(await http.get(f"/patients/{deleted}/history", headers=admin))["changes"]
        assert (history[0]["side"], history[0]["action"], history[0]["source"]) == ("vendor", "delete", "zenoti")
        deliveries = ok(await http.get(f"{sandbox}/_sandbox/webhooks/deliveries"))["deliveries"]
        assert deliveries and all(d["delivered"] for d in deliveries)

        # Forged, and sent to a URL naming no Zenoti config: the same refusal, nothing stored.
        forged = b'{"event_id":"e-1","event_type":"Guest.Updated","data":{"id":"x"}}'
        for url in (setup["url"], f"{stack.gateway_url}/webhooks/zenoti/not-a-config"):
            refused = await http.post(url, content=forged, headers={"X-Zenoti-Signature": "00" * 32})
            assert refused.status_code == 401 and refused.json()["reason"] == "BAD_SIGNATURE"
        assert len(ok(await http.get("/patients", headers=admin))["patients"]) == 2

    for value in ("Wickford", "Galilee"):
        assert value not in caplog.text
