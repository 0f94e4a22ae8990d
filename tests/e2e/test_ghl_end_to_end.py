"""What `make demo` does, through the gateway, on SQLite and again on PostgreSQL: real gRPC
services, a real Temporal dev server, real OAuth and real HTTP to the GoHighLevel sandbox."""

from __future__ import annotations

import logging

import httpx
import pytest

from libs.telemetry import memory_exporter
from services.demo import EDITED_CITY, run_demo, run_sync, synthetic_patients_bundle
from services.supervisor import start_stack


@pytest.fixture
async def stack(settings, temporal_binary):  # noqa: ANN001
    running = await start_stack(settings, ephemeral_ports=True)
    yield running
    await running.stop()


def _family_names() -> set[str]:
    names = set()
    for entry in synthetic_patients_bundle()["entry"]:
        for name in entry["resource"].get("name", []):
            if len(name.get("family", "")) >= 5:
                names.add(name["family"])
    return names


async def test_demo_flow_pushes_pulls_and_keeps_phi_out_of_logs_and_disk(stack, caplog) -> None:  # noqa: ANN001
    caplog.set_level(logging.DEBUG)
    result = await run_demo(stack, patients_limit=20)

    assert result.patients_imported == 20
    assert result.push_run["status"] == "succeeded"
    assert result.push_run["records_created"] == 20
    assert result.push_run["vendor_requests"] == 20  # GHL has no batch write: one upsert each
    assert result.pull_run["records_updated"] == 1
    assert result.pull_run["records_created"] == 0
    assert result.audit["intact"] and result.audit["events_checked"] > 40
    assert len(result.push_run["trace_id"]) == 32
    assert result.push_run["trace_id"] != result.pull_run["trace_id"]
    push_trace = [
        s
        for s in memory_exporter.get_finished_spans()
        if format(s.context.trace_id, "032x") == result.push_run["trace_id"]
    ]
    names = {s.name for s in push_trace}
    # One sync, one trace: gateway -> sync service -> workflow -> adapter activity -> vendor HTTP.
    assert "/concord.sync.v1.SyncService/StartSync" in names
    assert {"RunWorkflow:PatientSync", "RunActivity:upsert_batch", "RunActivity:record_push_results"} <= names
    assert any(
        s.attributes.get("http.url", s.attributes.get("url.full", "")).endswith("/contacts/upsert") for s in push_trace
    )

    token = stack.gateway.issuer.mint("demo-admin", result.practice_id, "admin")
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=120) as http:
        patient = (await http.get(f"/patients/{result.edited_patient_id}", headers=headers)).json()
        assert patient["address"][0]["city"] == EDITED_CITY

        # Nothing changed since: an incremental push writes nothing, a pull changes nothing.
        await http.post(f"{stack.sandboxes['ghl'].url}/_sandbox/stats/reset")
        again = await run_sync(http, headers, "bidirectional")
        assert again["status"] == "succeeded"
        assert again["records_created"] == 0 and again["records_updated"] == 0
        stats = (await http.get(f"{stack.sandboxes['ghl'].url}/_sandbox/stats")).json()
        writes = {
            k: v
            for k, v in stats.items()
            if k.startswith(("PUT /contacts", "POST /contacts/upsert", "POST /contacts/"))
            and not k.startswith("POST /contacts/search")
            and v
        }
        assert writes == {}

        # A hub edit flows out on the next push, to the same GHL contact (no duplicate).
        patient["telecom"] = [{"system": "phone", "value": "+1 617 555 0100", "use": "mobile"}]
        response = await http.put(f"/patients/{result.edited_patient_id}", json=patient, headers=headers)
        assert response.status_code == 200, response.text
        pushed = await run_sync(http, headers, "push")
        assert (pushed["records_created"], pushed["records_updated"]) == (0, 1)
        sandbox = stack.sandboxes["ghl"].url
        location = (await http.get("/integrations/hl/status", headers=headers)).json()["account_id"]
        listed = (await http.get(f"{sandbox}/_sandbox/contacts", params={"locationId": location})).json()
        listed = listed.get("contacts", listed) if isinstance(listed, dict) else listed
        contact = next(c for c in listed if c["id"] == result.edited_contact_id)
        assert contact["phone"] == "+16175550100"
        assert len(listed) == 20

    names = _family_names()
    assert names, "the canary names must not be empty"
    leaked = [name for name in names if name in caplog.text]
    assert leaked == []
    spans_text = " ".join(
        f"{span.name} {dict(span.attributes or {})} {[dict(e.attributes or {}) for e in span.events]}"
        for span in memory_exporter.get_finished_spans()
    )
    assert "upsert_batch" in spans_text
    assert [name for name in names if name in spans_text] == []
    if not stack.settings.database_url:
        raw = b"".join(p.read_bytes() for p in stack.settings.data_dir.glob("*.db*"))
        assert raw, "expected SQLite files"
        assert [n for n in names if n.encode() in raw] == []


async def test_gateway_refuses_bad_input_with_problem_json(stack) -> None:  # noqa: ANN001
    issuer = stack.gateway.issuer
    admin = {"Authorization": f"Bearer {issuer.mint('u1', 'p-bad', 'admin')}"}
    staff = {"Authorization": f"Bearer {issuer.mint('u2', 'p-bad', 'staff')}"}
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=60) as http:
        assert (await http.post("/practice", json={"name": "Bad Input Clinic"}, headers=admin)).status_code == 201

        response = await http.get("/patients")
        assert response.status_code == 401
        assert response.headers["content-type"].startswith("application/problem+json")

        forged = issuer.mint("u1", "p-bad", "admin")[:-4] + "AAAA"
        assert (await http.get("/patients", headers={"Authorization": f"Bearer {forged}"})).status_code == 401

        response = await http.post("/integrations/hl/patients/sync-settings", json={"active": False}, headers=staff)
        assert response.status_code == 403
        assert response.json()["reason"] == "ROLE_FORBIDDEN"

        bad = {"resourceType": "Patient", "birthDate": "not-a-date", "name": [{"family": "Zyxwvut"}]}
        response = await http.post("/patients", json=bad, headers=admin)
        assert response.status_code == 400
        problem = response.json()
        assert problem["field"] == "birthDate"
        assert "not-a-date" not in response.text and "Zyxwvut" not in response.text

        response = await http.get("/patients/00000000-0000-0000-0000-000000000000", headers=admin)
        assert response.status_code == 404
        assert response.json()["reason"] == "PATIENT_NOT_FOUND"

        response = await http.post("/integrations/hl/patients/sync", json={"direction": "sideways"}, headers=admin)
        assert response.status_code == 422
        assert response.json()["field"] == "direction"

        response = await http.post("/integrations/hl/patients/sync", json={}, headers=admin)
        assert response.status_code == 404  # no GoHighLevel config yet
        listed = (await http.get("/patients", headers=admin)).json()
        assert listed["patients"] == []  # nothing half-written by the refused requests
