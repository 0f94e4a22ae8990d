"""A push that meets a failing vendor, on the full stack: it loses no record and creates no
duplicate once the vendor recovers."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable

import httpx
import pytest

from libs.grpc_client import call, open_channel
from libs.protos.concord.sync.v1 import sync_pb2 as pb
from libs.protos.concord.sync.v1 import sync_pb2_grpc
from services.demo import connect_ghl, synthetic_patients_bundle
from services.supervisor import start_stack

PRACTICE_ID = "p-flaky-vendor"
PATIENTS = 12
UPSERT = "POST /contacts/upsert"


@pytest.fixture
async def stack(settings, temporal_binary):  # noqa: ANN001
    running = await start_stack(settings, ephemeral_ports=True)
    yield running
    await running.stop()


async def _until(check: Callable[[], Awaitable[bool]]) -> None:
    """Polls a condition (no fixed sleeps): the push runs in the stack's own tasks."""
    async with asyncio.timeout(20):
        while not await check():  # noqa: ASYNC110 - the state is the sandbox's, no event to wait on
            await asyncio.sleep(0.05)


async def test_a_push_through_vendor_errors_writes_every_record_once(stack) -> None:  # noqa: ANN001
    sandbox = stack.sandboxes["ghl"].url
    headers = {"Authorization": f"Bearer {stack.gateway.issuer.mint('admin-1', PRACTICE_ID, 'admin')}"}
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=120) as http:
        assert (await http.post("/practice", json={"name": "Flaky Vendor Clinic"}, headers=headers)).status_code == 201
        config_id = await connect_ghl(http, headers)
        imported = await http.post("/patients/import", json=synthetic_patients_bundle(PATIENTS), headers=headers)
        patient_ids = imported.json()["patient_ids"]
        assert len(patient_ids) == PATIENTS

        await http.post(f"{sandbox}/_sandbox/stats/reset")
        assert (await http.post(f"{sandbox}/_sandbox/faults", json={"status_5xx_rate": 1.0})).status_code == 200
        started = await http.post("/integrations/hl/patients/sync", json={"direction": "push"}, headers=headers)
        assert started.status_code == 202, started.text
        run_id = started.json()["run_id"]

        async def vendor_refused_a_write() -> bool:
            return (await http.get(f"{sandbox}/_sandbox/stats")).json().get(UPSERT, 0) >= 1

        await _until(vendor_refused_a_write)
        midway = (await http.get(f"/sync-runs/{run_id}", headers=headers)).json()
        assert midway["status"] == "running" and midway["records_succeeded"] == 0
        assert (await http.delete(f"{sandbox}/_sandbox/faults")).status_code == 200

        run = (await http.get(f"/sync-runs/{run_id}", params={"wait": "true"}, headers=headers)).json()
        assert run["status"] == "succeeded", run
        assert (run["records_succeeded"], run["records_created"], run["records_failed"]) == (PATIENTS, PATIENTS, 0)

        stats = (await http.get(f"{sandbox}/_sandbox/stats")).json()
        assert stats[UPSERT] > PATIENTS  # refused attempts were made, then retried
        location = (await http.get("/integrations/hl/status", headers=headers)).json()["account_id"]
        listed = (await http.get(f"{sandbox}/_sandbox/contacts", params={"locationId": location})).json()["contacts"]
    assert len(listed) == PATIENTS
    people = Counter((c.get("firstName"), c.get("lastName"), c.get("dateOfBirth")) for c in listed)
    assert max(people.values()) == 1, "a contact was created twice"

    # Every hub patient is linked to its own contact: none lost, none shared.
    async with open_channel(stack.settings.sync_address) as channel:
        sync = sync_pb2_grpc.SyncServiceStub(channel)
        links = [
            (
                await call(
                    sync.GetPatientLink,
                    pb.GetPatientLinkRequest(practice_id=PRACTICE_ID, patient_id=pid, config_id=config_id),
                )
            ).link
            for pid in patient_ids
        ]
    assert sorted(link.external_id for link in links) == sorted(c["id"] for c in listed)
    assert {link.synced_version for link in links} == {1}


async def test_a_pull_through_a_429_storm_5xx_and_a_malformed_page_loses_and_doubles_nothing(stack) -> None:  # noqa: ANN001
    """GHL contacts pulled into an empty hub while GHL refuses with 429s, answers 500 at random and
    sends one malformed page: the run waits and retries, and every contact is one hub patient."""
    sandbox = stack.sandboxes["ghl"].url
    headers = {"Authorization": f"Bearer {stack.gateway.issuer.mint('admin-1', 'p-stormy', 'admin')}"}
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=180) as http:
        assert (await http.post("/practice", json={"name": "Stormy Clinic"}, headers=headers)).status_code == 201
        await connect_ghl(http, headers)
        location = (await http.get("/integrations/hl/status", headers=headers)).json()["account_id"]
        seeded = await http.post(
            f"{sandbox}/_sandbox/seed", json={"locationId": location, "count": 230, "appointments": False}
        )
        assert seeded.status_code < 300, seeded.text
        faults = {"rate_limit_storm": 2, "status_5xx_rate": 0.2, "malformed_page": True}
        assert (await http.post(f"{sandbox}/_sandbox/faults", json=faults)).status_code == 200

        run = await http.post("/integrations/hl/patients/sync", json={"direction": "pull"}, headers=headers)
        done = (await http.get(f"/sync-runs/{run.json()['run_id']}", params={"wait": "true"}, headers=headers)).json()

        assert done["status"] == "succeeded", done
        # The seed holds some people twice (as CRMs do): those are held for review, not created.
        held = (await http.get("/review-items", params={"status": "open", "page_size": 200}, headers=headers)).json()
        held_ids = {i["external_id"] for i in held["items"] if i["kind"] == "identity"}
        assert done["records_failed"] == 0
        assert done["records_created"] + len(held_ids) == 230  # every contact: a patient, or waiting for a person
        patients = (await http.get("/patients", params={"page_size": 500}, headers=headers)).json()["patients"]
        assert len(patients) == done["records_created"]
        people = {(p["name"][0]["family"], p["name"][0]["given"][0], p.get("birthDate")) for p in patients}
        assert len(people) == len(patients)  # nobody twice
        stats = (await http.get(f"{sandbox}/_sandbox/stats")).json()
        assert sum(v for k, v in stats.items() if k.startswith("POST /contacts/search")) > 3  # retried pages
        # And nothing was left behind: the next pull brings nothing.
        assert (await http.delete(f"{sandbox}/_sandbox/faults")).status_code == 200
        again = await http.post("/integrations/hl/patients/sync", json={"direction": "pull"}, headers=headers)
        settled = (
            await http.get(f"/sync-runs/{again.json()['run_id']}", params={"wait": "true"}, headers=headers)
        ).json()
        assert (settled["records_created"], settled["records_updated"]) == (0, 0)
