"""Change Data Capture across downtime, through the gateway and the real stack (every service over
gRPC, Temporal, the adapter worker, the Salesforce sandbox standing in for Pub/Sub's Subscribe):
changes made while delivery is stopped arrive once when the subscriber resumes from the replay id
Concord recorded; a redelivery is a duplicate that starts nothing; a replay id Salesforce no longer
holds (72 h) makes Concord pull in full, and the subscription starts again at LATEST."""

from __future__ import annotations

import logging
import time
from typing import Any

import httpx

from services.demo import REPLAY_ID_CORRUPTED, run_sync, subscribe_cdc, synthetic_patients_bundle
from tests.e2e.conftest import ok

PRACTICE_ID = "sf-cdc-replay-e2e"


async def _runs(http: httpx.AsyncClient, headers: dict[str, str]) -> list[dict[str, Any]]:
    return ok(await http.get("/integrations/salesforce/patients/status", params={"page_size": 100}, headers=headers))[
        "runs"
    ]


async def _hub(http: httpx.AsyncClient, headers: dict[str, str], patient_ids: list[str]) -> dict[str, tuple[str, int]]:
    """Each patient's city in the hub and its version (the ETag)."""
    out = {}
    for patient_id in patient_ids:
        response = await http.get(f"/patients/{patient_id}", headers=headers)
        out[patient_id] = (ok(response)["address"][0]["city"], int(response.headers["ETag"].strip('W/"')))
    return out


async def _cities_become(
    http: httpx.AsyncClient, headers: dict[str, str], wanted: dict[str, str]
) -> dict[str, tuple[str, int]]:
    """Polls the hub (the events' pulls run on their own) until each patient lives in its city."""
    deadline = time.monotonic() + 60
    while True:
        hub = await _hub(http, headers, list(wanted))
        if all(hub[p][0] == city for p, city in wanted.items()):
            return hub
        assert time.monotonic() < deadline, hub


async def test_changes_made_while_delivery_stopped_arrive_once_and_an_expired_position_pulls_in_full(
    stack,  # noqa: ANN001
    caplog,  # noqa: ANN001
) -> None:
    caplog.set_level(logging.DEBUG)
    sandbox = stack.sandboxes["salesforce"].url
    sender = stack.sandbox_apps["salesforce"].state.sandbox.sender
    token = stack.gateway.issuer.mint("cdc-admin", PRACTICE_ID, "admin")
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=600) as http:
        ok(await http.post("/practice", json={"name": "Replay Clinic"}, headers=headers), 201)
        ok(
            await http.post(
                "/integrations/salesforce/connect", json=stack.vendors["salesforce"].connect, headers=headers
            )
        )
        ok(await http.post("/patients/import", json=synthetic_patients_bundle(3), headers=headers), 201)
        assert (await run_sync(http, headers, "push", vendor="salesforce"))["records_created"] == 3
        accounts = {
            a["Concord_Patient_Id__c"]: a["Id"] for a in ok(await http.get(f"{sandbox}/_sandbox/records/Account"))
        }
        ids = sorted(accounts)
        enabled = ok(await http.post("/integrations/salesforce/realtime", headers=headers), 201)
        key = enabled["headers"]

        async def edit(patient_id: str, city: str) -> None:
            ui = {"PersonMailingCity": city}
            ok(await http.patch(f"{sandbox}/_sandbox/records/Account/{accounts[patient_id]}", json=ui))

        async def position() -> dict[str, Any]:
            return ok(await http.get(enabled["replay_url"], headers=key))

        assert (await position())["replay_preset"] == "LATEST"  # nothing accepted yet
        live = await subscribe_cdc(http, sandbox, enabled)
        assert live["replay_preset"] == "LATEST"
        await edit(ids[0], "Pawtucket")
        await _cities_become(http, headers, {ids[0]: "Pawtucket"})
        await sender.drain()
        last = await position()
        assert last["replay_preset"] == "CUSTOM" and last["replay_id"] == sender.deliveries[-1].event_id

        # Delivery stops (Concord's subscriber is down); the front desk goes on editing.
        assert (await http.delete(f"{sandbox}/_sandbox/cdc/subscriptions/{live['id']}")).status_code == 204
        missed = {ids[0]: "Cranston", ids[1]: "Warwick", ids[2]: "Bristol"}
        for patient_id, city in missed.items():
            await edit(patient_id, city)
        before = await _hub(http, headers, ids)
        assert not any(before[p][0] == city for p, city in missed.items())  # nothing delivered, nothing pulled
        runs_before = len(await _runs(http, headers))
        seen = len(sender.deliveries)

        resumed = await subscribe_cdc(http, sandbox, enabled)
        assert (resumed["replay_preset"], resumed["replay_id"], resumed["replayed"]) == (
            "CUSTOM",
            int(last["replay_id"]),
            3,
        )
        after = await _cities_become(http, headers, missed)
        await sender.drain()
        replayed = sender.deliveries[seen:]
        assert len(replayed) == 3 and len({d.event_id for d in replayed}) == 3
        # One pull applies the three: the first event started it, the others found it pending.
        assert [d.attempts for d in replayed] == [[202], [202], [202]]
        runs = await _runs(http, headers)
        assert len(runs) == runs_before + 1 and runs[0]["direction"] == "pull"
        assert all(after[p][1] == before[p][1] + 1 for p in ids)  # each change applied once
        assert (await position())["replay_id"] == replayed[-1].event_id

        # A redelivery from an older position (a relay restarted from a stale checkpoint): duplicates.
        assert (await http.delete(f"{sandbox}/_sandbox/cdc/subscriptions/{resumed['id']}")).status_code == 204
        seen = len(sender.deliveries)
        stale = {"url": enabled["url"], "channel": enabled["channel"], "headers": key}
        again = ok(
            await http.post(
                f"{sandbox}/_sandbox/cdc/subscriptions",
                json={**stale, "replay_preset": "CUSTOM", "replay_id": last["replay_id"]},
            ),
            201,
        )
        await sender.drain()
        assert [d.attempts for d in sender.deliveries[seen:]] == [[200], [200], [200]]
        answer = await http.post(
            enabled["url"],
            json={
                "payload": {"ChangeEventHeader": {"entityName": "Account"}},
                "event": {"replayId": replayed[0].event_id},
            },
            headers=key,
        )
        assert ok(answer)["status"] == "duplicate"
        assert len(await _runs(http, headers)) == runs_before + 1  # no pull for any of them
        assert await _hub(http, headers, ids) == after

        # Down longer than Salesforce keeps events: the replay id is refused, Concord pulls in full.
        assert (await http.delete(f"{sandbox}/_sandbox/cdc/subscriptions/{again['id']}")).status_code == 204
        await edit(ids[1], "Newport")
        ok(await http.post(f"{sandbox}/_sandbox/cdc/age", json={"seconds": 72 * 3600 + 1}))
        refused = await http.post(
            f"{sandbox}/_sandbox/cdc/subscriptions",
            json={**stale, "replay_preset": "CUSTOM", "replay_id": (await position())["replay_id"]},
        )
        assert refused.status_code == 400 and refused.json()["errorCode"] == REPLAY_ID_CORRUPTED
        runs_before = len(await _runs(http, headers))
        restarted = await subscribe_cdc(http, sandbox, enabled)
        assert restarted["replay_preset"] == "LATEST"
        await _cities_become(http, headers, {ids[1]: "Newport"})
        listed = await _runs(http, headers)
        full = listed[: len(listed) - runs_before]
        assert {r["direction"] for r in full} == {"pull"} and len(full) == 2  # patients and appointments
        patients_pull = next(r for r in full if r["records_processed"])
        assert patients_pull["records_processed"] >= 3  # from no cursor: every Person Account again
        assert (await position())["replay_preset"] == "LATEST"
        await edit(ids[2], "Westerly")
        await _cities_become(http, headers, {ids[2]: "Westerly"})
        assert (await position())["replay_preset"] == "CUSTOM"
        # The events carried addresses (PHI): none of them reached a log line (which were captured).
        assert "could not resume" in caplog.text
        for city in ("Pawtucket", *missed.values(), "Newport", "Westerly"):
            assert city not in caplog.text
