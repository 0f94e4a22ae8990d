"""Minimum necessary on a real push to the GoHighLevel sandbox (full stack: Temporal dev server,
every service, the gateway): GoHighLevel's definition says baa_required, so nothing PHI reaches
it before the practice records its Business Associate Agreement; afterwards the config's field
allow-list decides which fields go, and the disclosure audit event names exactly those."""

from __future__ import annotations

import logging
import uuid

import httpx
import pytest

from services.demo import connect_ghl, run_sync
from tests.e2e.conftest import ok

pytestmark = pytest.mark.no_baa

GIVEN, FAMILY = "Philippa", "Quennell"
PHONE, EMAIL, BIRTH = "+16175550177", "philippa.q@example.org", "1971-04-12"
PATIENT = {
    "resourceType": "Patient",
    "name": [{"use": "official", "given": [GIVEN], "family": FAMILY}],
    "telecom": [{"system": "phone", "value": PHONE}, {"system": "email", "value": EMAIL}],
    "birthDate": BIRTH,
    "address": [{"line": ["12 Quarry Lane"], "city": "Quincy", "state": "MA", "postalCode": "02169"}],
}


def _contacts(listed: object) -> list[dict]:
    return listed.get("contacts", listed) if isinstance(listed, dict) else listed  # type: ignore[return-value]


async def test_no_phi_before_the_baa_then_only_the_allowed_fields(stack, caplog) -> None:  # noqa: ANN001
    caplog.set_level(logging.INFO)
    sandbox = stack.sandboxes["ghl"].url
    practice_id = f"p-{uuid.uuid4().hex[:10]}"
    headers = {"Authorization": f"Bearer {stack.gateway.issuer.mint('mn-admin', practice_id, 'admin')}"}
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=300) as http:
        ok(await http.post("/practice", json={"name": "Minimum Clinic"}, headers=headers), 201)
        await connect_ghl(http, headers)
        location = ok(await http.get("/integrations/hl/status", headers=headers))["account_id"]
        allow = ok(await http.get("/integrations/hl/field-allow-list", headers=headers))
        assert allow["fields"] == [] and allow["baa_effective_date"] is None
        patient_id = ok(await http.post("/patients", json=PATIENT, headers=headers), 201)["id"]

        # (a) No BAA recorded: the push sends GoHighLevel nothing, and it is no failure.
        caplog.clear()
        push = await run_sync(http, headers, "push")
        assert push["status"] == "succeeded", push
        assert push["records_failed"] == 0 and push["records_created"] == 0, push
        contacts = _contacts(ok(await http.get(f"{sandbox}/_sandbox/contacts", params={"locationId": location})))
        assert contacts == []
        lines = [r.getMessage() for r in caplog.records if "minimum necessary" in r.getMessage()]
        withheld = [line for line in lines if "withheld fields" in line]
        assert withheld, lines
        for name in ("given_name", "family_name", "email", "phone", "birth_date", "postal_code"):
            assert name in withheld[0]
        for value in (GIVEN, FAMILY, PHONE, EMAIL, BIRTH, "Quarry", "02169", "example.org"):
            assert value not in caplog.text
        events = ok(await http.get("/audit/events", params={"action": "patient.disclose"}, headers=headers))
        assert events["events"] == []

        # (b) BAA recorded, allow-list: email and name only.
        baa = ok(await http.put("/integrations/hl/baa", json={"effective_date": "2024-02-01"}, headers=headers))
        assert baa["effective_date"] == "2024-02-01" and baa["recorded_by"] == "mn-admin"
        fields = ["patient.email", "patient.given_name", "patient.family_name"]
        put = ok(await http.put("/integrations/hl/field-allow-list", json={"fields": fields}, headers=headers))
        assert put["fields"] == fields and put["baa_effective_date"] == "2024-02-01"
        push = await run_sync(http, headers, "push")
        assert push["status"] == "succeeded" and push["records_created"] == 1, push
        (contact,) = _contacts(ok(await http.get(f"{sandbox}/_sandbox/contacts", params={"locationId": location})))
        assert (contact.get("firstName"), contact.get("lastName"), contact.get("email")) == (GIVEN, FAMILY, EMAIL)
        for withheld_key in ("phone", "dateOfBirth", "address1", "city", "postalCode", "state"):
            assert not contact.get(withheld_key), withheld_key
        events = ok(await http.get("/audit/events", params={"action": "patient.disclose"}, headers=headers))["events"]
        (event,) = [e for e in events if e["patient_id"] == patient_id]
        assert sorted(event["data_accessed"]) == ["email", "family_name", "given_name"]
        assert event["integration_type"] == "ghl"


async def test_bad_input_is_problem_json_and_admins_only(stack) -> None:  # noqa: ANN001
    practice_id = f"p-{uuid.uuid4().hex[:10]}"
    admin = {"Authorization": f"Bearer {stack.gateway.issuer.mint('mn-admin', practice_id, 'admin')}"}
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=300) as http:
        ok(await http.post("/practice", json={"name": "Minimum Clinic"}, headers=admin), 201)
        await connect_ghl(http, admin)

        bad = await http.put(
            "/integrations/hl/field-allow-list", json={"fields": ["patient.email", "patient.ssn"]}, headers=admin
        )
        assert bad.status_code == 400, bad.text
        assert bad.headers["content-type"].startswith("application/problem+json")
        problem = bad.json()
        assert (problem["reason"], problem["field"]) == ("UNKNOWN_HUB_FIELD", "field_allow_list[1]")
        assert ok(await http.get("/integrations/hl/field-allow-list", headers=admin))["fields"] == []

        date = await http.put("/integrations/hl/baa", json={"effective_date": "2024-02-30"}, headers=admin)
        assert date.status_code == 400, date.text
        assert date.headers["content-type"].startswith("application/problem+json")
        assert (date.json()["reason"], date.json()["field"]) == ("INVALID_DATE", "effective_date")
        unknown = await http.put("/integrations/nope/baa", json={"effective_date": "2024-02-01"}, headers=admin)
        assert unknown.status_code == 404 and unknown.json()["reason"] == "UNKNOWN_INTEGRATION"

        for role in ("provider", "staff"):
            other = {"Authorization": f"Bearer {stack.gateway.issuer.mint('u2', practice_id, role)}"}
            refused = await http.put("/integrations/hl/baa", json={"effective_date": "2024-02-01"}, headers=other)
            assert refused.status_code == 403, (role, refused.text)
            refused = await http.put("/integrations/hl/field-allow-list", json={"fields": []}, headers=other)
            assert refused.status_code == 403, (role, refused.text)
