"""Deletes and merges as tombstones, end to end: the GoHighLevel sandbox over real HTTP, its signed
ContactDelete webhooks through the gateway into the real-time config's inbox, the real Temporal
server. A GHL delete of a patient the hub did not change since is taken; one the hub changed is
settled by the policy (hub_wins keeps it and GHL gets it again; manual_review holds it for a
person); a hub delete reaches GHL as a delete, whose echo changes nothing; a merge moves the
duplicate's link to the survivor or deletes the duplicate's GHL copy. Afterwards every patient is
where the rules say, once."""

from __future__ import annotations

import logging

import httpx
from temporalio.client import Client

from libs.temporal import connect
from services.demo import connect_ghl, run_sync, synthetic_patients_bundle
from tests.e2e.conftest import ok

PRACTICE = "p-tombstones"


class Ghl:
    def __init__(self, stack, http: httpx.AsyncClient, headers: dict, temporal: Client, config_id: str) -> None:  # noqa: ANN001
        self.stack, self.http, self.headers, self.temporal, self.config_id = stack, http, headers, temporal, config_id
        self.sandbox = stack.sandboxes["ghl"].url

    async def contacts(self) -> dict[str, dict]:
        return {c["id"]: c for c in ok(await self.http.get(f"{self.sandbox}/_sandbox/contacts"))["contacts"]}

    async def settled(self) -> None:
        """Every webhook GHL scheduled is answered and the config's inbox is empty again."""
        await self.stack.sandbox_apps["ghl"].state.sandbox.webhooks.drain()
        await self.temporal.get_workflow_handle(f"inbox:{self.config_id}").result()

    async def delete(self, contact_id: str) -> None:
        """A GHL user deletes the contact in GHL's UI (a ContactDelete webhook follows)."""
        ok(await self.http.delete(f"{self.sandbox}/_sandbox/contacts/{contact_id}"))
        await self.settled()

    async def sync(self, direction: str) -> dict:
        run = await run_sync(self.http, self.headers, direction)
        assert run["status"] == "succeeded", run
        return run

    async def policy(self, policy: str) -> None:
        body = {"conflict_policy": policy, "sync_frequency": "real_time"}
        ok(await self.http.post("/integrations/hl/patients/sync-settings", json=body, headers=self.headers))

    async def patient(self, patient_id: str) -> httpx.Response:
        return await self.http.get(f"/patients/{patient_id}", headers=self.headers)

    async def hub_edit(self, patient_id: str, city: str) -> None:
        patient = ok(await self.patient(patient_id))
        patient["address"] = [{**patient["address"][0], "city": city}]
        ok(await self.http.put(f"/patients/{patient_id}", json=patient, headers=self.headers))


def _gone(response: httpx.Response) -> bool:
    return response.status_code == 404 and response.json()["reason"] == "PATIENT_NOT_FOUND"


async def test_deletes_and_merges_follow_the_rules_everywhere(stack, caplog) -> None:  # noqa: ANN001, PLR0915
    caplog.set_level(logging.DEBUG)
    admin = {"Authorization": f"Bearer {stack.gateway.issuer.mint('u-admin', PRACTICE, 'admin')}"}
    staff = {"Authorization": f"Bearer {stack.gateway.issuer.mint('u-staff', PRACTICE, 'staff')}"}
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=120) as http:
        ok(await http.post("/practice", json={"name": "Tombstone Clinic"}, headers=admin), 201)
        config_id = await connect_ghl(http, admin)
        ghl = Ghl(stack, http, admin, await connect(stack.settings), config_id)
        await ghl.policy("hub_wins")
        ids = sorted(
            ok(await http.post("/patients/import", json=synthetic_patients_bundle(6), headers=admin), 201)[
                "patient_ids"
            ]
        )
        assert (await ghl.sync("push"))["records_created"] == 6
        await ghl.settled()  # the ContactCreate echoes change nothing
        contact: dict[str, str] = {}
        by_name = {(c["firstName"].lower(), c["lastName"].lower()): i for i, c in (await ghl.contacts()).items()}
        for patient_id in ids:
            name = ok(await ghl.patient(patient_id))["name"][0]
            contact[patient_id] = by_name[(name["given"][0].lower(), name["family"].lower())]
        taken, kept, held, hub_deleted, duplicate, survivor = ids

        # A GHL delete of a patient the hub did not change since: taken (a tombstone in the hub).
        await ghl.delete(contact[taken])
        assert _gone(await ghl.patient(taken))
        history = ok(await http.get(f"/patients/{taken}/history", headers=admin))["changes"]
        assert (history[0]["side"], history[0]["action"], history[0]["source"]) == ("vendor", "delete", "ghl")
        listed = {p["id"] for p in ok(await http.get("/patients", headers=admin))["patients"]}
        assert taken not in listed and len(listed) == 5

        # The hub changed it since (hub_wins): kept, and GHL gets it again on the next push.
        await ghl.hub_edit(kept, "Hubville")
        await ghl.delete(contact[kept])
        assert ok(await ghl.patient(kept))["address"][0]["city"] == "Hubville"
        pushed = await ghl.sync("push")
        assert pushed["records_created"] == 1
        again = [c for c in (await ghl.contacts()).values() if c.get("city") == "Hubville"]
        assert len(again) == 1 and again[0]["id"] != contact[kept]
        await ghl.settled()

        # manual_review: held for a person, who takes the delete.
        await ghl.policy("manual_review")
        await ghl.hub_edit(held, "Reviewton")
        await ghl.delete(contact[held])
        items = ok(await http.get("/review-items", params={"status": "open"}, headers=staff))["items"]
        assert [(i["record_id"], i["kind"]) for i in items] == [(held, "delete")]
        assert "Reviewton" not in str(items)
        assert ok(await ghl.patient(held))["address"][0]["city"] == "Reviewton"  # untouched while it waits
        wrong = await http.post(
            f"/review-items/{items[0]['review_id']}/resolve", json={"choice": "value"}, headers=admin
        )
        assert wrong.status_code == 400 and wrong.json()["reason"] == "INVALID_CHOICE"
        ok(await http.post(f"/review-items/{items[0]['review_id']}/resolve", json={"choice": "vendor"}, headers=admin))
        assert _gone(await ghl.patient(held))

        # A hub delete reaches GHL as a delete; its ContactDelete echo changes nothing; staff may not.
        refused = await http.delete(f"/patients/{hub_deleted}", headers=staff)
        assert refused.status_code == 403
        assert (await http.delete(f"/patients/{hub_deleted}", headers=admin)).status_code == 204
        assert _gone(await ghl.patient(hub_deleted))
        assert (await http.delete(f"/patients/{hub_deleted}", headers=admin)).status_code == 404
        deleted = await ghl.sync("push")
        assert (deleted["records_processed"], deleted["records_failed"]) == (1, 0)
        assert contact[hub_deleted] not in await ghl.contacts()
        await ghl.settled()
        assert (await ghl.sync("push"))["records_processed"] == 0

        # A merge of two linked patients: the duplicate's GHL copy is deleted, the survivor stays.
        merged = ok(await http.post(f"/patients/{duplicate}/merge", json={"into": survivor}, headers=admin))
        assert merged["id"] == survivor
        assert _gone(await ghl.patient(duplicate))
        await ghl.sync("push")
        contacts = await ghl.contacts()
        assert contact[duplicate] not in contacts and contact[survivor] in contacts
        await ghl.settled()

        # A merge into a patient GHL does not have: the duplicate's GHL record now stands for the
        # survivor and gets its values; no contact is created.
        await ghl.policy("hub_wins")
        fresh = ok(
            await http.post(
                "/patients",
                json={
                    "resourceType": "Patient",
                    "name": [{"family": "Newhouse", "given": ["Wren"]}],
                    "birthDate": "1988-04-04",
                    "address": [{"city": "Survivorton", "state": "RI"}],
                },
                headers=admin,
            ),
            201,
        )
        ok(await http.post(f"/patients/{kept}/merge", json={"into": fresh["id"]}, headers=admin))
        before = await ghl.contacts()
        moved = await ghl.sync("push")
        assert (moved["records_created"], moved["records_updated"]) == (0, 1)
        after = await ghl.contacts()
        assert set(after) == set(before)
        assert [c["lastName"] for c in after.values() if c.get("city") == "Survivorton"] == ["Newhouse"]
        await ghl.settled()

        live = {p["id"] for p in ok(await http.get("/patients", headers=admin))["patients"]}
        assert live == {survivor, fresh["id"]}
        assert len(await ghl.contacts()) == 2  # every live patient once at GHL, nothing else

    for value in ("Hubville", "Reviewton", "Survivorton", "Newhouse"):
        assert value not in caplog.text
