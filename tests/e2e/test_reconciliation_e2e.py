"""Reconciliation end to end: the gateway, a real Temporal server, the sync service and the GHL
sandbox over real HTTP. A manual config (its webhooks ignored, as a dropped delivery would be):
five patients pushed; in GHL one contact is edited, one deleted, one made that the hub never saw.
A reconciliation finds the edit (drift) and brings it into the hub, creates the new contact's
patient, and holds the deleted contact's patient as a review item of kind missing, ids only. A
person answers "hub", a push makes the contact again, and the next reconciliation finds both sides
agreeing, checksum for checksum. A record missing again, answered "vendor", is taken as the
vendor's delete. A reconciliation of a config and entity that is running is refused; a daily
schedule exists for every entity of an active config, manual ones too."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
from temporalio.client import Client
from temporalio.service import RPCError

from libs.temporal import connect
from services.demo import connect_ghl, run_sync, synthetic_patients_bundle
from services.sync.domain import ScheduledSyncInput
from tests.e2e.conftest import ok

PRACTICE = "p-reconcile"
EDITED_CITY = "Driftwood Hollow"  # canary: the value the missed edit carried
STRANGER = ("Ottoline", "Marchbanks")  # canary: the contact the hub never saw


class Clinic:
    def __init__(self, stack, http: httpx.AsyncClient, headers: dict[str, str], location: str) -> None:  # noqa: ANN001
        self.http, self.headers, self.location = http, headers, location
        self.ghl = stack.vendors["ghl"]
        self.sandbox = self.ghl.sandbox.url

    async def contacts(self) -> dict[str, dict]:
        listed = ok(await self.http.get(f"{self.sandbox}/_sandbox/contacts", params={"locationId": self.location}))
        return {c["id"]: c for c in listed["contacts"]}

    async def patient(self, patient_id: str) -> httpx.Response:
        return await self.http.get(f"/patients/{patient_id}", headers=self.headers)

    async def reconcile(self) -> dict[str, Any]:
        """Starts one, waits for its run (its workflow) to end, and returns its finished report."""
        started = ok(await self.http.post("/integrations/hl/patients/reconcile", headers=self.headers), 202)
        assert started["status"] == "running" and started["drifted"] == 0
        run = ok(await self.http.get(f"/sync-runs/{started['run_id']}", params={"wait": "true"}, headers=self.headers))
        assert run["status"] == "succeeded", run
        reports = await self.reports()
        assert reports[0]["reconciliation_id"] == started["reconciliation_id"]  # newest first
        assert reports[0]["status"] == "succeeded" and reports[0]["completed_at"], reports[0]
        return reports[0]

    async def reports(self) -> list[dict[str, Any]]:
        listed = ok(await self.http.get("/integrations/hl/patients/reconciliations", headers=self.headers))
        return listed["reconciliations"]

    async def open_items(self) -> list[dict[str, Any]]:
        return ok(await self.http.get("/review-items", params={"status": "open"}, headers=self.headers))["items"]

    async def resolve(self, review_id: str, choice: str) -> httpx.Response:
        return await self.http.post(f"/review-items/{review_id}/resolve", json={"choice": choice}, headers=self.headers)

    async def new_contact(self, given: str, family: str) -> str:
        """A GHL user adds a contact (through GHL's API; the config is manual, so no webhook counts)."""
        token = ok(await self.http.post(f"{self.sandbox}/_sandbox/tokens", json={"client_id": self.ghl.client_id}), 201)
        api = {"Authorization": f"Bearer {token['access_token']}", "Version": "2021-07-28"}
        body = {"locationId": self.location, "firstName": given, "lastName": family, "dateOfBirth": "1979-09-09"}
        created = await self.http.post(f"{self.sandbox}/contacts/", json=body, headers=api)
        assert created.status_code in (200, 201), created.text
        return created.json()["contact"]["id"]


def _key(given: str, family: str) -> tuple[str, str]:
    return given.lower(), family.lower()


async def _contacts_of(clinic: Clinic, patient_ids: list[str]) -> dict[str, str]:
    """Each hub patient's GHL contact, by name (Synthea's names are unique in the sample)."""
    by_name = {_key(c["firstName"], c["lastName"]): i for i, c in (await clinic.contacts()).items()}
    found = {}
    for patient_id in patient_ids:
        name = ok(await clinic.patient(patient_id))["name"][0]
        found[patient_id] = by_name[_key(name["given"][0], name["family"])]
    return found


async def test_reconciliation_heals_drift_holds_the_missing_and_agrees_afterwards(stack, caplog) -> None:  # noqa: ANN001, PLR0915
    caplog.set_level(logging.DEBUG)
    admin = {"Authorization": f"Bearer {stack.gateway.issuer.mint('u-admin', PRACTICE, 'admin')}"}
    staff = {"Authorization": f"Bearer {stack.gateway.issuer.mint('u-staff', PRACTICE, 'staff')}"}
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=120) as http:
        ok(await http.post("/practice", json={"name": "Reconciliation Clinic"}, headers=admin), 201)
        await connect_ghl(http, admin)
        status = ok(await http.get("/integrations/hl/status", headers=admin))
        assert status["sync_frequency"] == "manual"  # GHL's webhooks are ignored: as if dropped
        clinic = Clinic(stack, http, admin, status["account_id"])
        ids = sorted(
            ok(await http.post("/patients/import", json=synthetic_patients_bundle(5), headers=admin), 201)[
                "patient_ids"
            ]
        )
        assert (await run_sync(http, admin, "push"))["records_created"] == 5
        contact = await _contacts_of(clinic, ids)
        edited, deleted, later_deleted = ids[:3]

        # Before anything changed: both sides agree.
        first = await clinic.reconcile()
        assert (first["vendor_count"], first["hub_count"], first["matched"]) == (5, 5, 5)
        assert (first["drifted"], first["unlinked"], first["missing_at_vendor"], first["healed"]) == (0, 0, 0, 0)
        assert first["hub_checksum"] == first["vendor_checksum"] != "0" * 64

        # GHL users: one contact edited, one deleted, one added; no webhook reaches the hub.
        ok(await http.patch(f"{clinic.sandbox}/_sandbox/contacts/{contact[edited]}", json={"city": EDITED_CITY}))
        ok(await http.delete(f"{clinic.sandbox}/_sandbox/contacts/{contact[deleted]}"))
        stranger = await clinic.new_contact(*STRANGER)
        assert ok(await clinic.patient(edited))["address"][0]["city"] != EDITED_CITY

        # Front-desk staff may read the reports, not start one; an entity the hub does not know is 404.
        refused = await http.post("/integrations/hl/patients/reconcile", headers=staff)
        assert refused.status_code == 403 and refused.headers["content-type"].startswith("application/problem+json")
        assert len(await Clinic(stack, http, staff, clinic.location).reports()) == 1
        unknown = await http.post("/integrations/hl/invoices/reconcile", headers=admin)
        assert unknown.status_code == 404 and unknown.json()["reason"] == "UNKNOWN_ENTITY"

        report = await clinic.reconcile()
        assert (report["vendor_count"], report["hub_count"]) == (5, 5)
        assert (report["matched"], report["drifted"], report["unlinked"]) == (3, 1, 1)
        # The edit came into the hub and the new contact became a patient: both agree with GHL now.
        assert report["healed"] == 2
        assert (report["missing_at_vendor"], report["review_items_opened"], report["pending_push"]) == (1, 1, 0)
        assert report["hub_checksum"] != report["vendor_checksum"]
        assert ok(await clinic.patient(edited))["address"][0]["city"] == EDITED_CITY
        history = ok(await http.get(f"/patients/{edited}/history", headers=admin))["changes"]
        assert (history[0]["side"], history[0]["source"], history[0]["fields"]) == ("vendor", "ghl", ["city"])
        assert history[0]["run_id"] == report["run_id"]
        run = ok(await http.get(f"/sync-runs/{report['run_id']}", headers=admin))
        assert (run["direction"], run["records_created"], run["records_updated"]) == ("pull", 1, 1)
        patients = ok(await http.get("/patients", headers=admin))["patients"]
        made = [p for p in patients if p["name"][0]["family"] == STRANGER[1]]
        assert len(patients) == 6 and len(made) == 1

        # The deleted contact's patient waits for a person: ids only, and it is not pushed meanwhile.
        items = await clinic.open_items()
        assert [(i["kind"], i["record_id"], i["external_id"]) for i in items] == [
            ("missing", deleted, contact[deleted])
        ]
        assert items[0]["reasons"] == ["not_listed", "read_back_missing"]  # GHL answered 404 when read by id
        shown = ok(await http.get(f"/review-items/{items[0]['review_id']}", headers=admin))
        assert shown["values"] == {"base": None, "hub": None, "vendor": None} and shown["vendor_record"] is None
        assert (await run_sync(http, admin, "push"))["records_processed"] == 0
        wrong = await clinic.resolve(items[0]["review_id"], "same")
        assert wrong.status_code == 400 and wrong.json()["reason"] == "INVALID_CHOICE"

        # "hub": the stale link goes; the next push makes the contact again at GHL.
        resolved = ok(await clinic.resolve(items[0]["review_id"], "hub"))
        assert (resolved["status"], resolved["resolution"]) == ("resolved", "hub")
        assert (await run_sync(http, admin, "push"))["records_created"] == 1
        contacts = await clinic.contacts()
        assert stranger in contacts and contact[deleted] not in contacts and len(contacts) == 6
        again = (await _contacts_of(clinic, [deleted]))[deleted]
        assert again != contact[deleted]

        agreed = await clinic.reconcile()
        assert (agreed["vendor_count"], agreed["hub_count"], agreed["matched"]) == (6, 6, 6)
        assert (agreed["drifted"], agreed["unlinked"], agreed["missing_at_vendor"]) == (0, 0, 0)
        assert agreed["hub_checksum"] == agreed["vendor_checksum"]
        assert await clinic.open_items() == []

        # Missing again, twice reconciled: one item, not two. "vendor": the vendor's delete is taken.
        ok(await http.delete(f"{clinic.sandbox}/_sandbox/contacts/{contact[later_deleted]}"))
        assert (await clinic.reconcile())["missing_at_vendor"] == 1
        twice = await clinic.reconcile()
        assert (twice["missing_at_vendor"], twice["review_items_opened"]) == (1, 0)
        items = await clinic.open_items()
        assert [(i["kind"], i["record_id"]) for i in items] == [("missing", later_deleted)]
        ok(await clinic.resolve(items[0]["review_id"], "vendor"))
        gone = await clinic.patient(later_deleted)
        assert gone.status_code == 404 and gone.json()["reason"] == "PATIENT_NOT_FOUND"
        history = ok(await http.get(f"/patients/{later_deleted}/history", headers=admin))["changes"]
        assert (history[0]["side"], history[0]["action"]) == ("review", "delete")
        assert (await run_sync(http, admin, "push"))["records_processed"] == 0  # nothing to make again
        final = await clinic.reconcile()
        assert (final["vendor_count"], final["hub_count"], final["matched"], final["missing_at_vendor"]) == (5, 5, 5, 0)
        assert final["hub_checksum"] == final["vendor_checksum"]

        shown_reports = str(await clinic.reports())
        assert EDITED_CITY not in shown_reports and STRANGER[0] not in shown_reports
    # No value reached a log line: not the missed edit, not the new contact's name.
    for canary in (EDITED_CITY, *STRANGER):
        assert canary not in caplog.text


async def test_one_at_a_time_daily_schedules_and_a_push_only_hub_as_the_source(stack) -> None:  # noqa: ANN001
    admin = {"Authorization": f"Bearer {stack.gateway.issuer.mint('u-admin', PRACTICE, 'admin')}"}
    temporal: Client = await connect(stack.settings)
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=120) as http:
        ok(await http.post("/practice", json={"name": "Schedule Reconciliation Clinic"}, headers=admin), 201)
        config_id = await connect_ghl(http, admin)
        clinic = Clinic(stack, http, admin, ok(await http.get("/integrations/hl/status", headers=admin))["account_id"])
        ids = ok(await http.post("/patients/import", json=synthetic_patients_bundle(2), headers=admin), 201)
        assert (await run_sync(http, admin, "push"))["records_created"] == 2

        # A reconciliation of this config's patients is running (a workflow no worker takes up).
        holder = await temporal.start_workflow(
            "Reconcile", id=f"reconcile:{config_id}:ENTITY_TYPE_PATIENT", task_queue="nobody-listens"
        )
        try:
            refused = await http.post("/integrations/hl/patients/reconcile", headers=admin)
            assert refused.status_code == 409 and refused.json()["reason"] == "RECONCILIATION_RUNNING"
            assert await clinic.reports() == []  # the refused one left no report behind
        finally:
            await holder.terminate()

        # Manual, the config still gets a daily reconciliation of each entity it syncs.
        async def settings(**body: object) -> dict:
            return ok(await http.post("/integrations/hl/patients/sync-settings", json=body, headers=admin))

        manual = await settings(sync_frequency="manual")
        assert manual["schedules"] == []
        daily = {s["entity"]: s["every_seconds"] for s in manual["reconciliation_schedules"]}
        assert daily == {"patient": 86400, "appointment": 86400}
        hourly = await settings(sync_frequency="hourly")
        assert {s["every_seconds"] for s in hourly["schedules"]} == {3600}
        assert [s["entity"] for s in hourly["reconciliation_schedules"]] == ["appointment", "patient"]

        # What the schedule starts: ScheduledSync, whose activity starts an ordinary reconciliation.
        scheduled = ScheduledSyncInput(PRACTICE, config_id, "ENTITY_TYPE_PATIENT", reconcile=True)
        reconciliation_id = await temporal.execute_workflow(
            "ScheduledSync",
            scheduled,
            id=f"test-scheduled-reconcile:{config_id}",
            task_queue=stack.settings.sync_task_queue,
            result_type=str,
        )
        reports = await clinic.reports()
        assert [r["reconciliation_id"] for r in reports] == [reconciliation_id]
        ok(await http.get(f"/sync-runs/{reports[0]['run_id']}", params={"wait": "true"}, headers=admin))
        done = (await clinic.reports())[0]
        assert (done["status"], done["matched"]) == ("succeeded", 2)
        assert done["hub_checksum"] == done["vendor_checksum"]

        # Push only, the hub is the source: GHL's edit is drift the next push undoes, not taken.
        await settings(sync_direction="push")
        patient_id = sorted(ids["patient_ids"])[0]
        city = ok(await clinic.patient(patient_id))["address"][0]["city"]
        contact = (await _contacts_of(clinic, [patient_id]))[patient_id]
        ok(await http.patch(f"{clinic.sandbox}/_sandbox/contacts/{contact}", json={"city": EDITED_CITY}))
        report = await clinic.reconcile()
        assert (report["drifted"], report["healed"], report["pending_push"]) == (1, 1, 1)
        assert ok(await clinic.patient(patient_id))["address"][0]["city"] == city
        assert (await run_sync(http, admin, "push"))["records_updated"] == 1
        assert (await clinic.contacts())[contact]["city"] == city
        agreed = await clinic.reconcile()
        assert (agreed["matched"], agreed["drifted"], agreed["pending_push"]) == (2, 0, 0)
        assert agreed["hub_checksum"] == agreed["vendor_checksum"]

        # Inactive: no reconciliation schedule either.
        assert (await settings(active=False))["reconciliation_schedules"] == []
        with pytest.raises(RPCError):
            await temporal.get_schedule_handle(f"reconcile:{config_id}:ENTITY_TYPE_PATIENT").describe()
