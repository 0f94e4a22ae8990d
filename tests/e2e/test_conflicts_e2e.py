"""Both sides edit the same patient, under each conflict policy, through the gateway, a real
Temporal server, the sync service's three-way merge and the GoHighLevel sandbox over real HTTP
(GHL stamps each contact's dateUpdated, what newest_wins orders edits by). Afterwards every
patient is present once, with the value its policy says; the manual review queue holds what no
rule settled, shows that field only, and a person's resolution reaches GHL on the next push."""

from __future__ import annotations

import logging
from typing import Any

import httpx

from services.conflicts_demo import GHL_CITY, HOUSEHOLD_GIVEN, HUB_CITY, run_conflicts_demo
from services.demo import connect_ghl, run_demo, run_sync, synthetic_patients_bundle
from tests.e2e.conftest import ok

PRACTICE = "p-conflicts"


class Practice:
    def __init__(self, http: httpx.AsyncClient, headers: dict[str, str], sandbox: str, location: str) -> None:
        self.http, self.headers, self.sandbox, self.location = http, headers, sandbox, location

    async def contacts(self) -> dict[str, dict]:
        listed = ok(await self.http.get(f"{self.sandbox}/_sandbox/contacts", params={"locationId": self.location}))
        return {c["id"]: c for c in listed["contacts"]}

    async def patient(self, patient_id: str) -> dict:
        return ok(await self.http.get(f"/patients/{patient_id}", headers=self.headers))

    async def hub_edit(self, patient_id: str, **address: str) -> None:
        """A practice user edits the patient's address in the hub."""
        patient = await self.patient(patient_id)
        patient["address"] = [{**patient["address"][0], **address}]
        ok(await self.http.put(f"/patients/{patient_id}", json=patient, headers=self.headers))

    async def ghl_edit(self, contact_id: str, **fields: str) -> None:
        """A GHL user edits the contact in GHL's UI."""
        ok(await self.http.patch(f"{self.sandbox}/_sandbox/contacts/{contact_id}", json=fields))

    async def policy(self, policy: str, per_field: dict[str, str] | None = None) -> dict:
        body: dict[str, Any] = {"conflict_policy": policy, "field_conflict_policies": per_field or {}}
        return ok(await self.http.post("/integrations/hl/patients/sync-settings", json=body, headers=self.headers))

    async def sync(self, direction: str) -> dict:
        run = await run_sync(self.http, self.headers, direction)
        assert run["status"] == "succeeded", run
        return run


async def _contacts_of(p: Practice, patient_ids: list[str]) -> dict[str, str]:
    """Each hub patient's GHL contact, by name (Synthea's names are unique in the sample)."""
    by_name = {(c["firstName"].lower(), c["lastName"].lower()): i for i, c in (await p.contacts()).items()}
    found = {}
    for patient_id in patient_ids:
        name = (await p.patient(patient_id))["name"][0]
        found[patient_id] = by_name[(name["given"][0].lower(), name["family"].lower())]
    assert len(set(found.values())) == len(patient_ids)
    return found


def _address(patient: dict) -> dict:
    return patient["address"][0]


async def test_each_policy_settles_a_patient_both_sides_edited(stack, caplog) -> None:  # noqa: ANN001, PLR0915
    caplog.set_level(logging.DEBUG)
    admin = {"Authorization": f"Bearer {stack.gateway.issuer.mint('u-admin', PRACTICE, 'admin')}"}
    staff = {"Authorization": f"Bearer {stack.gateway.issuer.mint('u-staff', PRACTICE, 'staff')}"}
    sandbox = stack.sandboxes["ghl"].url
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=120) as http:
        # GHL's servers' clock runs ten minutes behind until the newest_wins part is done (its
        # stamps never go backwards, so the skew is set before any).
        ok(await http.post(f"{sandbox}/_sandbox/clock", json={"skew_seconds": -600}))
        ok(await http.post("/practice", json={"name": "Conflict Clinic"}, headers=admin), 201)
        await connect_ghl(http, admin)
        location = ok(await http.get("/integrations/hl/status", headers=admin))["account_id"]
        p = Practice(http, admin, sandbox, location)
        imported = ok(await http.post("/patients/import", json=synthetic_patients_bundle(6), headers=admin), 201)
        ids = sorted(imported["patient_ids"])
        assert (await p.sync("push"))["records_created"] == 6
        link = await _contacts_of(p, ids)
        vendor_wins, hub_wins, per_field, newest, held, review = ids

        # vendor_wins: GHL's city replaces the hub's.
        await p.policy("vendor_wins")
        await p.hub_edit(vendor_wins, city="Hubville")
        await p.ghl_edit(link[vendor_wins], city="Vendorton")
        assert (await p.sync("pull"))["records_updated"] == 1
        assert _address(await p.patient(vendor_wins))["city"] == "Vendorton"

        # hub_wins: the hub keeps its city, and the next push gives it to GHL.
        await p.policy("hub_wins")
        await p.hub_edit(hub_wins, city="Hubville")
        await p.ghl_edit(link[hub_wins], city="Vendorton")
        await p.sync("pull")
        assert _address(await p.patient(hub_wins))["city"] == "Hubville"
        await p.sync("push")
        assert (await p.contacts())[link[hub_wins]]["city"] == "Hubville"

        # Per field: hub_wins overall, but GHL's city wins; each one-sided change is kept.
        await p.policy("hub_wins", {"patient.city": "vendor_wins"})
        await p.hub_edit(per_field, city="Hubville", postalCode="02110")
        await p.ghl_edit(link[per_field], city="Vendorton", postalCode="02903")
        await p.sync("pull")
        address = _address(await p.patient(per_field))
        assert (address["city"], address["postalCode"]) == ("Vendorton", "02110")

        # newest_wins: GHL's clock runs ten minutes behind, so its edit is the older one: the hub's
        # city stands (times closer than the skew guard's two minutes are not compared).
        await p.policy("newest_wins")
        await p.hub_edit(newest, city="Hubville")
        await p.ghl_edit(link[newest], city="Vendorton")
        await p.sync("pull")
        assert _address(await p.patient(newest))["city"] == "Hubville"
        assert ok(await http.get("/review-items", headers=admin))["items"] == []

        ok(await http.post(f"{sandbox}/_sandbox/clock", json={"skew_seconds": 0}))  # GHL's clock is set right
        # newest_wins, edits seconds apart: no clock can order them; the city waits for a person,
        # GHL's one-sided state change is applied meanwhile.
        await p.hub_edit(held, city="Hubville")
        await p.ghl_edit(link[held], city="Vendorton", state="RI")
        await p.sync("pull")
        address = _address(await p.patient(held))
        assert (address["city"], address["state"]) == ("Hubville", "RI")
        # manual_review: the same, whatever the clocks.
        await p.policy("manual_review")
        await p.hub_edit(review, city="Hubville")
        await p.ghl_edit(link[review], city="Vendorton")
        await p.sync("pull")
        assert _address(await p.patient(review))["city"] == "Hubville"

        listed = ok(await http.get("/review-items", params={"status": "open"}, headers=staff))["items"]
        assert sorted((i["record_id"], i["field"]) for i in listed) == sorted([(held, "city"), (review, "city")])
        assert all(set(i) >= {"review_id", "config_id", "external_id", "status"} for i in listed)
        assert "Hubville" not in str(listed) and "Vendorton" not in str(listed)  # a listing shows no value
        by_record = {i["record_id"]: i for i in listed}
        shown = ok(await http.get(f"/review-items/{by_record[held]['review_id']}", headers=staff))
        assert shown["values"]["hub"] == "Hubville" and shown["values"]["vendor"] == "Vendorton"
        assert shown["hub_modified_at"] and shown["vendor_modified_at"]
        assert "address" not in shown and "name" not in shown  # that field only, never the record

        # While they wait, a push leaves both GHL contacts alone.
        await p.sync("push")
        contacts = await p.contacts()
        assert contacts[link[held]]["city"] == contacts[link[review]]["city"] == "Vendorton"

        # Front-desk staff may read the queue, not settle it.
        refused = await http.post(
            f"/review-items/{by_record[held]['review_id']}/resolve", json={"choice": "vendor"}, headers=staff
        )
        assert refused.status_code == 403 and refused.headers["content-type"].startswith("application/problem+json")
        resolved = ok(
            await http.post(
                f"/review-items/{by_record[held]['review_id']}/resolve",
                json={"choice": "value", "value": "Pawtucket"},
                headers=admin,
            )
        )
        assert (resolved["status"], resolved["resolution"], resolved["resolved_by"]) == ("resolved", "value", "u-admin")
        ok(
            await http.post(
                f"/review-items/{by_record[review]['review_id']}/resolve", json={"choice": "vendor"}, headers=admin
            )
        )
        again = await http.post(
            f"/review-items/{by_record[review]['review_id']}/resolve", json={"choice": "hub"}, headers=admin
        )
        assert again.status_code == 409 and again.json()["reason"] == "REVIEW_ITEM_RESOLVED"
        assert _address(await p.patient(held))["city"] == "Pawtucket"
        assert _address(await p.patient(review))["city"] == "Vendorton"

        await p.sync("push")
        contacts = await p.contacts()
        assert contacts[link[held]]["city"] == "Pawtucket" and contacts[link[review]]["city"] == "Vendorton"
        # Every patient once at GHL, none twice.
        assert len(contacts) == 6
        assert ok(await http.get("/review-items", params={"status": "open"}, headers=admin))["items"] == []
        # Each patient's history says who changed what, in which run, and never a value.
        history = ok(await http.get(f"/patients/{held}/history", headers=admin))["changes"]
        assert [(c["version"], c["side"], c["action"]) for c in history][-1] == (1, "hub", "create")
        review_change = history[0]
        assert (review_change["side"], review_change["source"], review_change["fields"]) == (
            "review",
            "u-admin",
            ["city"],
        )
        hub_edit = next(c for c in history if c["side"] == "hub" and c["action"] == "update")
        assert hub_edit["fields"] == ["city"] and hub_edit["source"] == "u-admin" and hub_edit["run_id"] is None
        vendor_change = next(c for c in history if c["side"] == "vendor")  # GHL's state, taken by the pull
        assert (vendor_change["source"], vendor_change["fields"]) == ("ghl", ["state"]) and vendor_change["run_id"]
        assert "Pawtucket" not in str(history) and "Hubville" not in str(history)
        versions = [c["version"] for c in history]
        assert versions == sorted(versions, reverse=True) and len(set(versions)) == len(versions)
        # Nothing is left to settle: a two-way run changes nothing on either side.
        settled = await p.sync("bidirectional")
        assert settled["records_created"] == 0 and settled["records_updated"] == 0

    assert "Hubville" not in caplog.text and "Vendorton" not in caplog.text and "Pawtucket" not in caplog.text


async def test_the_demos_conflict_is_held_resolved_and_pushed(stack, caplog) -> None:  # noqa: ANN001
    caplog.set_level(logging.DEBUG)
    await run_demo(stack, patients_limit=5)
    result = await run_conflicts_demo(stack)
    assert result.pull["records_updated"] == 0  # the city waited; nothing else had changed
    assert [i["field"] for i in result.held] == ["city"]
    assert (result.shown["values"]["hub"], result.shown["values"]["vendor"]) == (HUB_CITY, GHL_CITY)
    assert result.resolved["resolution"] == "vendor" and result.push["records_updated"] == 1
    assert result.hub_city == result.ghl_city == GHL_CITY
    # The household member's contact: held, not created, until a person said who it is.
    assert result.identity_pull["records_created"] == 0
    assert {"family_postal", "name_differs", "birth_differs"} <= set(result.identity["reasons"])
    assert result.patients_after == result.patients_before + 1
    assert HUB_CITY not in caplog.text and GHL_CITY not in caplog.text and HOUSEHOLD_GIVEN not in caplog.text
