"""Field mapping endpoints under the config's vendor: list, replace, delete, preview; role checks
and RFC 9457 problems that name the field and never echo a value."""

from __future__ import annotations

import logging
import uuid

from libs.grpc_client import call, open_channel
from libs.protos.concord.audit.v1 import audit_pb2, audit_pb2_grpc
from tests.gateway.conftest import Client, assert_problem

CANARY_GIVEN, CANARY_FAMILY, CANARY_PHONE = "Philippa", "Canaryvaluezz", "+16175550177"


def _patient() -> dict:
    return {
        "resourceType": "Patient",
        "name": [{"use": "official", "given": [CANARY_GIVEN], "family": CANARY_FAMILY}],
        "telecom": [{"system": "phone", "value": CANARY_PHONE}],
        "address": [{"city": "Boston", "state": "Massachusetts", "country": "US"}],
    }


async def test_list_replace_delete_and_versions(admin: Client) -> None:
    headers = admin.headers()
    listed = await admin.http.get("/integrations/hl/mappings", headers=headers)
    assert listed.status_code == 200, listed.text
    body = listed.json()
    assert body["mapping_version"] == 0 and len(body["mappings"]) == 11
    assert {m["source"] for m in body["mappings"]} == {"default"}
    page = (await admin.http.get("/integrations/hl/mappings?page_size=5", headers=headers)).json()
    assert len(page["mappings"]) == 5 and page["next_page_token"]
    rest = await admin.http.get(f"/integrations/hl/mappings?page_token={page['next_page_token']}", headers=headers)
    assert [m["hub_field"] for m in page["mappings"] + rest.json()["mappings"]] == [
        m["hub_field"] for m in body["mappings"]
    ]

    overrides = {
        "overrides": [
            {"hub_field": "phone", "direction": "none"},
            {"hub_field": "state", "vendor_field": "state", "transform": {"name": "us_state"}},
        ]
    }
    put = await admin.http.put("/integrations/hl/mappings", json=overrides, headers=headers)
    assert put.status_code == 200, put.text
    assert put.json()["mapping_version"] == 1
    effective = {m["hub_field"]: m for m in put.json()["mappings"]}
    assert effective["phone"]["direction"] == "none" and effective["phone"]["source"] == "override"

    stale = await admin.http.put(
        "/integrations/hl/mappings", json={**overrides, "expected_version": 7}, headers=headers
    )
    assert_problem(stale, 409, reason="VERSION_MISMATCH")

    preview = await admin.http.post(
        "/integrations/hl/mappings/preview", json={"direction": "to_vendor", "record": _patient()}, headers=headers
    )
    assert preview.status_code == 200, preview.text
    record = preview.json()["record"]
    assert "phone" not in record and record["state"] == "MA" and record["lastName"] == CANARY_FAMILY
    assert preview.json()["mapping_version"] == 1

    gone = await admin.http.delete("/integrations/hl/mappings?hub_field=phone", headers=headers)
    assert gone.status_code == 200 and gone.json()["mapping_version"] == 2
    again = await admin.http.post(
        "/integrations/hl/mappings/preview", json={"direction": "to_vendor", "record": _patient()}, headers=headers
    )
    assert again.json()["record"]["phone"] == CANARY_PHONE
    assert_problem(
        await admin.http.delete("/integrations/hl/mappings?hub_field=phone", headers=headers),
        404,
        reason="MAPPING_NOT_FOUND",
    )


async def test_bad_input_is_a_problem_naming_the_field(admin: Client, caplog) -> None:  # noqa: ANN001
    caplog.set_level(logging.DEBUG)
    headers = admin.headers()
    bad = {"overrides": [{"hub_field": "given_name", "vendor_field": "firstName"}, {"hub_field": CANARY_FAMILY}]}
    problem = assert_problem(
        await admin.http.put("/integrations/hl/mappings", json=bad, headers=headers),
        400,
        field="overrides[1].hub_field",
        reason="UNKNOWN_HUB_FIELD",
    )
    assert CANARY_FAMILY not in problem["detail"]
    wrong = {
        "overrides": [
            {
                "hub_field": "phone",
                "vendor_field": "phone",
                "transform": {"name": "phone_e164", "params": {"region": "ZZ"}},
            }
        ]
    }
    assert_problem(
        await admin.http.put("/integrations/hl/mappings", json=wrong, headers=headers),
        400,
        field="overrides[0].transform",
        reason="INVALID_TRANSFORM",
    )
    # Checked against GoHighLevel's contact schema: dnd is a boolean, dateOfBirth a date in its formats.
    for override in (
        {"hub_field": "given_name", "vendor_field": "dnd"},
        {"hub_field": "birth_date", "vendor_field": "dateOfBirth", "transform": {"name": "date", "params": {"format": "%d.%m.%Y"}}},
    ):  # fmt: skip
        assert_problem(
            await admin.http.put("/integrations/hl/mappings", json={"overrides": [override]}, headers=headers),
            400,
            field="overrides[0].vendor_field",
            reason="VENDOR_FIELD_TYPE_MISMATCH",
        )
    # Shape errors are 422 problems from the gateway itself.
    shape = await admin.http.post(
        "/integrations/hl/mappings/preview", json={"direction": "sideways", "record": {}}, headers=headers
    )
    assert_problem(shape, 422)
    assert_problem(
        await admin.http.post("/integrations/hl/mappings/preview", json={"direction": "to_vendor"}, headers=headers),
        422,
    )
    # A record that is not a Patient: 200 with per-field errors, naming the field, not the value.
    preview = await admin.http.post(
        "/integrations/hl/mappings/preview",
        json={"direction": "to_hub", "record": {"id": "c1", "firstName": CANARY_GIVEN, "dateOfBirth": CANARY_FAMILY}},
        headers=headers,
    )
    assert preview.status_code == 200, preview.text
    assert [(e["field"], e["reason"]) for e in preview.json()["errors"]] == [("dateOfBirth", "INVALID_DATE")]
    assert preview.json()["resource"] is None and CANARY_FAMILY not in preview.text
    assert_problem(
        await admin.http.get(f"/integrations/{CANARY_FAMILY}/mappings", headers=headers),
        404,
        reason="UNKNOWN_INTEGRATION",
    )
    other = Client(admin.stack, admin.http, f"p-{uuid.uuid4().hex[:10]}")
    assert_problem(
        await admin.http.get("/integrations/hl/mappings", headers=other.headers()), 404, reason="CONFIG_NOT_FOUND"
    )
    for phi in (CANARY_GIVEN, CANARY_FAMILY, CANARY_PHONE):
        assert phi not in caplog.text


async def test_roles(admin: Client) -> None:
    body = {"overrides": [{"hub_field": "phone", "direction": "none"}]}
    for role in ("provider", "staff"):
        headers = admin.headers(role)
        assert (await admin.http.get("/integrations/hl/mappings", headers=headers)).status_code == 200
        preview = await admin.http.post(
            "/integrations/hl/mappings/preview", json={"direction": "to_vendor", "record": _patient()}, headers=headers
        )
        assert preview.status_code == 200
        assert_problem(await admin.http.put("/integrations/hl/mappings", json=body, headers=headers), 403)
        assert_problem(await admin.http.delete("/integrations/hl/mappings?hub_field=phone", headers=headers), 403)
    assert (await admin.http.put("/integrations/hl/mappings", json=body, headers=admin.headers())).status_code == 200
    assert (await admin.http.get("/integrations/hl/mappings")).status_code == 401


async def test_changes_are_audited_as_the_user_who_made_them(admin: Client) -> None:
    headers = admin.headers()
    body = {"overrides": [{"hub_field": "phone", "direction": "none"}]}
    assert (await admin.http.put("/integrations/hl/mappings", json=body, headers=headers)).status_code == 200
    stale = await admin.http.put("/integrations/hl/mappings", json={**body, "expected_version": 9}, headers=headers)
    assert_problem(stale, 409, reason="VERSION_MISMATCH")
    assert (await admin.http.delete("/integrations/hl/mappings?hub_field=phone", headers=headers)).status_code == 200
    config_id = (await admin.http.get("/integrations/hl/mappings", headers=headers)).json()["config_id"]
    async with open_channel(admin.stack.services["audit"].address) as channel:
        answer = await call(
            audit_pb2_grpc.AuditServiceStub(channel).Query,
            audit_pb2.QueryRequest(practice_id=admin.practice_id, action="mapping.change"),
        )
    assert [(e.resource, e.success, list(e.data_accessed)) for e in answer.events] == [
        (f"IntegrationConfig/{config_id}/_history/1", True, ["patient.phone"]),
        (f"IntegrationConfig/{config_id}", False, ["patient.phone"]),
        (f"IntegrationConfig/{config_id}/_history/2", True, ["patient.phone"]),
    ]
    assert {(e.user_id, e.integration_type) for e in answer.events} == {("admin-user", "ghl")}
    assert all(e.ip_address and e.correlation_id for e in answer.events)
    verified = await admin.http.get("/audit/verify", headers=headers)
    assert verified.status_code == 200 and verified.json()["intact"]
