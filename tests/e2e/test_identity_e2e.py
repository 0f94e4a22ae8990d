"""Before a vendor's record becomes a hub patient, it is matched, through the gateway, a real
Temporal server and the GoHighLevel sandbox over real HTTP: a contact that is an existing hub
patient (the same name and birth date, spelt otherwise) is linked to it, not duplicated; a family
member sharing that patient's phone is held for review with why; a stranger is created. A person
then says the held one is someone else, and it becomes a patient of its own."""

from __future__ import annotations

import logging

import httpx

from services.demo import connect_ghl, run_sync, synthetic_patients_bundle
from tests.e2e.conftest import ok

PRACTICE = "p-identity"
SIBLING_GIVEN = "Quorrath"  # canary: the held contact's given name
STRANGER = ("Ysolde", "Brennick")


async def test_a_pulled_contact_is_matched_held_or_created(stack, caplog) -> None:  # noqa: ANN001
    caplog.set_level(logging.DEBUG)
    admin = {"Authorization": f"Bearer {stack.gateway.issuer.mint('u-admin', PRACTICE, 'admin')}"}
    ghl = stack.vendors["ghl"]
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=120) as http:
        ok(await http.post("/practice", json={"name": "Identity Clinic"}, headers=admin), 201)
        await connect_ghl(http, admin)
        location = ok(await http.get("/integrations/hl/status", headers=admin))["account_id"]
        imported = ok(await http.post("/patients/import", json=synthetic_patients_bundle(3), headers=admin), 201)
        hub = [ok(await http.get(f"/patients/{i}", headers=admin)) for i in sorted(imported["patient_ids"])]
        same, relative = hub[0], hub[1]

        token = ok(await http.post(f"{ghl.sandbox.url}/_sandbox/tokens", json={"client_id": ghl.client_id}), 201)
        headers = {"Authorization": f"Bearer {token['access_token']}", "Version": "2021-07-28"}

        async def contact(**fields: str) -> str:
            body = {"locationId": location, **fields}
            created = await http.post(f"{ghl.sandbox.url}/contacts/", json=body, headers=headers)
            assert created.status_code in (200, 201), created.text
            return created.json()["contact"]["id"]

        name = same["name"][0]
        matched = await contact(
            firstName=name["given"][0].upper(), lastName=name["family"].upper(), dateOfBirth=same["birthDate"]
        )
        phone = next(t["value"] for t in relative["telecom"] if t["system"] == "phone")
        held = await contact(
            firstName=SIBLING_GIVEN, lastName=relative["name"][0]["family"], phone=phone, dateOfBirth="2015-05-05"
        )
        stranger = await contact(firstName=STRANGER[0], lastName=STRANGER[1], dateOfBirth="1990-01-01")

        pull = await run_sync(http, admin, "pull")
        assert pull["status"] == "succeeded", pull
        assert pull["records_created"] == 1  # the stranger only
        patients = ok(await http.get("/patients", params={"page_size": 50}, headers=admin))["patients"]
        assert len(patients) == 4
        # The matched contact is the existing patient's link now: a second pull changes nothing.
        again = await run_sync(http, admin, "pull")
        assert (again["records_created"], again["records_updated"]) == (0, 0)

        items = ok(await http.get("/review-items", params={"status": "open"}, headers=admin))["items"]
        assert [(i["kind"], i["record_id"], i["external_id"]) for i in items] == [("identity", relative["id"], held)]
        item = items[0]
        assert "phone" in item["reasons"] and "name_differs" in item["reasons"] and "birth_differs" in item["reasons"]
        assert SIBLING_GIVEN not in str(item)  # a listing names no one
        shown = ok(await http.get(f"/review-items/{item['review_id']}", headers=admin))
        assert shown["vendor_record"]["given_name"] == SIBLING_GIVEN
        assert set(shown["vendor_record"]) <= {
            "given_name",
            "family_name",
            "birth_date",
            "gender",
            "email",
            "phone",
            "postal_code",
        }

        wrong = await http.post(f"/review-items/{item['review_id']}/resolve", json={"choice": "vendor"}, headers=admin)
        assert wrong.status_code == 400 and wrong.json()["reason"] == "INVALID_CHOICE"
        ok(await http.post(f"/review-items/{item['review_id']}/resolve", json={"choice": "different"}, headers=admin))
        patients = ok(await http.get("/patients", params={"page_size": 50}, headers=admin))["patients"]
        assert len(patients) == 5
        assert sum(1 for p in patients if p["name"][0]["given"][0] == SIBLING_GIVEN) == 1
        # Linked now: the next pull neither holds nor creates it again.
        last = await run_sync(http, admin, "pull")
        assert (last["records_created"], last["records_updated"]) == (0, 0)
        assert ok(await http.get("/review-items", params={"status": "open"}, headers=admin))["items"] == []
        assert matched and stranger

    assert SIBLING_GIVEN not in caplog.text and STRANGER[1] not in caplog.text
