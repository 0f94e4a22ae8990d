"""A config's field mapping overrides change what a real push writes to the GoHighLevel sandbox
and what a real pull takes from it (full stack: Temporal dev server, every service, the gateway),
on SQLite and again on PostgreSQL."""

from __future__ import annotations

import logging
import uuid

import httpx
import pytest

from services.demo import connect_ghl, run_sync
from services.supervisor import start_stack

GIVEN, FAMILY = "Ottoline", "Vandersteen"
PHONE, EMAIL, NEW_EMAIL, NEW_PHONE = "+16175550161", "ottoline.v@example.org", "o.vdst@example.net", "+16175550999"


@pytest.fixture
async def stack(settings, temporal_binary):  # noqa: ANN001
    running = await start_stack(settings, ephemeral_ports=True)
    yield running
    await running.stop()


def _check(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    return response.json()


async def test_overrides_change_what_a_push_writes_and_a_pull_takes(stack, caplog) -> None:  # noqa: ANN001
    caplog.set_level(logging.DEBUG)
    sandbox = stack.sandboxes["ghl"].url
    practice_id = f"p-{uuid.uuid4().hex[:10]}"
    token = stack.gateway.issuer.mint("mapping-admin", practice_id, "admin")
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=300) as http:
        _check(await http.post("/practice", json={"name": "Override Clinic"}, headers=headers), 201)
        await connect_ghl(http, headers)
        location = _check(await http.get("/integrations/hl/status", headers=headers), 200)["account_id"]

        # The practice keeps the hub's email in a GoHighLevel custom field of its own.
        vendor_token = _check(
            await http.post(
                f"{sandbox}/_sandbox/tokens",
                json={"client_id": stack.vendors["ghl"].client_id, "location_id": location},
            ),
            201,
        )["access_token"]
        vendor_headers = {"Authorization": f"Bearer {vendor_token}", "Version": "2021-07-28"}
        field_id = _check(
            await http.post(
                f"{sandbox}/locations/{location}/customFields",
                json={"name": "Hub email", "dataType": "TEXT"},
                headers=vendor_headers,
            ),
            201,
        )["customField"]["id"]
        overrides = [
            {"hub_field": "phone", "direction": "none"},
            {"hub_field": "email", "vendor_field": f"customFields[{field_id}]"},
        ]
        put = _check(await http.put("/integrations/hl/mappings", json={"overrides": overrides}, headers=headers), 200)
        assert put["mapping_version"] == 1

        patient = {
            "resourceType": "Patient",
            "name": [{"use": "official", "given": [GIVEN], "family": FAMILY}],
            "telecom": [{"system": "phone", "value": PHONE}, {"system": "email", "value": EMAIL}],
            "birthDate": "1966-10-30",
        }
        patient_id = _check(await http.post("/patients", json=patient, headers=headers), 201)["id"]
        push = await run_sync(http, headers, "push")
        assert push["status"] == "succeeded" and push["records_created"] == 1, push

        listed = _check(await http.get(f"{sandbox}/_sandbox/contacts", params={"locationId": location}), 200)
        contacts = listed.get("contacts", listed) if isinstance(listed, dict) else listed
        (contact,) = [c for c in contacts if c.get("lastName") == FAMILY]
        assert not contact.get("phone")  # switched off: not sent
        assert not contact.get("email")  # sent to the custom field instead
        assert contact["customFields"] == [{"id": field_id, "value": EMAIL}]
        assert contact["firstName"] == GIVEN and contact["dateOfBirth"].startswith("1966-10-30")

        # In GoHighLevel someone edits the custom field and sets a phone: the pull takes the
        # custom field as the hub's email, and leaves the hub's phone alone.
        edit = {"customFields": [{"id": field_id, "field_value": NEW_EMAIL}], "phone": NEW_PHONE}
        _check(await http.patch(f"{sandbox}/_sandbox/contacts/{contact['id']}", json=edit), 200)
        pull = await run_sync(http, headers, "pull")
        assert pull["status"] == "succeeded" and pull["records_updated"] == 1 and pull["records_created"] == 0, pull
        hub = _check(await http.get(f"/patients/{patient_id}", headers=headers), 200)
        telecom = {t["system"]: t["value"] for t in hub["telecom"]}
        assert telecom["email"] == NEW_EMAIL
        assert telecom["phone"] == PHONE

    for phi in (GIVEN, FAMILY, PHONE, EMAIL, NEW_EMAIL, NEW_PHONE):
        assert phi not in caplog.text
