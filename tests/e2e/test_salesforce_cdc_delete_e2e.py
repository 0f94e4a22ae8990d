"""Salesforce deletes reach the hub as tombstones: a pull never sees a deleted record, so the CDC
DELETE event's record ids go to the config's inbox, whose workflow reads each back from the
Salesforce sandbox and settles the ones gone. A delete Concord made itself comes back as an event
of Concord's own origin and is dropped (echo suppression). Real HTTP, the real Temporal server."""

from __future__ import annotations

import httpx

from libs.temporal import connect
from services.demo import run_sync, subscribe_cdc, synthetic_patients_bundle
from tests.e2e.conftest import ok

PRACTICE_ID = "sf-cdc-delete-e2e"


async def test_a_salesforce_delete_becomes_a_tombstone_and_concords_own_delete_is_an_echo(stack) -> None:  # noqa: ANN001
    sandbox = stack.sandboxes["salesforce"].url
    sender = stack.sandbox_apps["salesforce"].state.sandbox.sender
    headers = {"Authorization": f"Bearer {stack.gateway.issuer.mint('cdc-admin', PRACTICE_ID, 'admin')}"}
    temporal = await connect(stack.settings)
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=600) as http:
        ok(await http.post("/practice", json={"name": "Delete Clinic"}, headers=headers), 201)
        connected = ok(
            await http.post(
                "/integrations/salesforce/connect", json=stack.vendors["salesforce"].connect, headers=headers
            )
        )
        ids = sorted(
            ok(await http.post("/patients/import", json=synthetic_patients_bundle(5), headers=headers), 201)[
                "patient_ids"
            ]
        )
        assert (await run_sync(http, headers, "push", vendor="salesforce"))["records_created"] == 5

        async def accounts() -> dict[str, str]:
            listed = ok(await http.get(f"{sandbox}/_sandbox/records/Account"))
            return {a["Concord_Patient_Id__c"]: a["Id"] for a in listed}

        account = await accounts()
        live = await subscribe_cdc(
            http, sandbox, ok(await http.post("/integrations/salesforce/realtime", headers=headers), 201)
        )
        deleted_there, deleted_here, kept, duplicate, survivor = ids

        # A Salesforce user deletes the Account: its DELETE event goes through the inbox.
        gone = await http.delete(f"{sandbox}/_sandbox/records/Account/{account[deleted_there]}")
        assert gone.status_code == 204
        await sender.drain()
        assert sender.deliveries[-1].attempts[-1] == 202 and sender.deliveries[-1].event_type.endswith("/DELETE")
        await temporal.get_workflow_handle(f"inbox:{connected['config_id']}").result()
        answer = await http.get(f"/patients/{deleted_there}", headers=headers)
        assert answer.status_code == 404 and answer.json()["reason"] == "PATIENT_NOT_FOUND"
        history = ok(await http.get(f"/patients/{deleted_there}/history", headers=headers))["changes"]
        assert (history[0]["side"], history[0]["action"], history[0]["source"]) == ("vendor", "delete", "salesforce")

        # A hub delete reaches Salesforce; the event of Concord's own delete is an echo, dropped.
        assert (await http.delete(f"/patients/{deleted_here}", headers=headers)).status_code == 204
        sent = len(sender.deliveries)
        pushed = await run_sync(http, headers, "push", vendor="salesforce")
        assert (pushed["records_processed"], pushed["records_failed"]) == (1, 0)
        assert set(await accounts()) == {kept, duplicate, survivor}
        await sender.drain()
        echoes = sender.deliveries[sent:]
        assert echoes and all(d.attempts[-1] == 200 for d in echoes)  # suppressed: nothing queued

        # A Salesforce user merges a duplicate Account into another: the duplicate's DELETE event
        # carries no master, the adapter reads MasterRecordId from the recycle bin (queryAll), and
        # the hub merges the duplicate's patient into the survivor's.
        merge = {"merge_ids": [account[duplicate]]}
        ok(await http.post(f"{sandbox}/_sandbox/records/Account/{account[survivor]}/merge", json=merge))
        await sender.drain()
        await temporal.get_workflow_handle(f"inbox:{connected['config_id']}").result()
        # The survivor's UPDATE event started a pull: it ends before the next push can start.
        await temporal.get_workflow_handle(f"sync:{connected['config_id']}:ENTITY_TYPE_PATIENT").result()
        answer = await http.get(f"/patients/{duplicate}", headers=headers)
        assert answer.status_code == 404
        history = ok(await http.get(f"/patients/{duplicate}/history", headers=headers))["changes"]
        assert (history[0]["side"], history[0]["action"], history[0]["source"]) == ("vendor", "merge", "salesforce")
        merged = ok(await http.get(f"/patients/{survivor}/history", headers=headers))["changes"]
        assert (merged[0]["side"], merged[0]["action"]) == ("vendor", "merge")
        ok(await http.get(f"/patients/{survivor}", headers=headers))

        live_patients = sorted(p["id"] for p in ok(await http.get("/patients", headers=headers))["patients"])
        assert live_patients == sorted([kept, survivor])
        assert set(await accounts()) == {kept, survivor}
        assert (await run_sync(http, headers, "push", vendor="salesforce"))["records_processed"] == 0
        assert (await http.delete(f"{sandbox}/_sandbox/cdc/subscriptions/{live['id']}")).status_code == 204
