"""The audit log over REST: JSON pages, the CSV and FHIR AuditEvent exports and a patient's
accounting of disclosures, with events written by the REST API and a real push to the GHL sandbox."""

from __future__ import annotations

import csv
import io
import uuid

import pytest
from fhir.resources.R4B.auditevent import AuditEvent
from fhir.resources.R4B.bundle import Bundle

from libs.grpc_client import call, open_channel
from libs.identity import Caller, reset_caller, set_caller
from libs.protos.concord.audit.v1 import audit_pb2, audit_pb2_grpc
from services.demo import connect_ghl, run_sync
from tests.gateway.conftest import Client, assert_problem

FAMILY = "Quillfeather"  # a canary: no audit output may carry a PHI value
EMAIL = "ada.quillfeather@example.com"
CSV_HEADER = [
    "timestamp",
    "user_id",
    "action",
    "resource",
    "patient_id",
    "integration_type",
    "data_accessed",
    "success",
    "ip_address",
    "user_agent",
    "sequence",
    "hash",
    "correlation_id",
    "mapping_version",
]


def patient_resource() -> dict:
    return {
        "resourceType": "Patient",
        "name": [{"family": FAMILY, "given": ["Ada"]}],
        "birthDate": "1984-03-09",
        "gender": "female",
        "telecom": [{"system": "email", "value": EMAIL}],
        "address": [{"city": "Salem", "state": "MA", "country": "US"}],
    }


@pytest.fixture
async def pushed(admin: Client) -> dict:
    """A connected practice with a mapping override (version 1), a patient created, updated and
    pushed to the sandbox."""
    headers = admin.headers()
    await connect_ghl(admin.http, headers)
    # Minimum necessary: nothing goes to a vendor that needs a BAA before one is in effect.
    baa = await admin.http.put("/integrations/hl/baa", json={"effective_date": "2020-01-01"}, headers=headers)
    assert baa.status_code in (200, 404), baa.text  # 404: no such route (before minimum necessary)
    body = {"overrides": [{"hub_field": "state", "vendor_field": "state", "transform": {"name": "us_state"}}]}
    put = await admin.http.put("/integrations/hl/mappings", json=body, headers=headers)
    assert put.status_code == 200, put.text
    version = put.json()["mapping_version"]
    assert version >= 1

    created = await admin.http.post("/patients", json=patient_resource(), headers=admin.headers("provider"))
    assert created.status_code == 201, created.text
    patient = created.json()
    patient["address"][0]["city"] = "Marblehead"
    updated = await admin.http.put(f"/patients/{patient['id']}", json=patient, headers=headers)
    assert updated.status_code == 200, updated.text
    run = await run_sync(admin.http, headers, "push")
    assert run["status"] == "succeeded" and run["records_created"] == 1, str(run)
    return {"patient_id": patient["id"], "run_id": run["run_id"], "mapping_version": version}


def assert_no_phi(text: str) -> None:
    assert FAMILY not in text and EMAIL not in text and "1984-03-09" not in text and "Marblehead" not in text


async def test_json_csv_fhir_and_disclosures(admin: Client, pushed: dict) -> None:
    headers = admin.headers()
    patient_id, run_id = pushed["patient_id"], pushed["run_id"]

    # JSON: the patient's events, in chain order, filtered and paged.
    response = await admin.http.get("/audit/events", params={"patient_id": patient_id}, headers=headers)
    assert response.status_code == 200, response.text
    assert_no_phi(response.text)
    events = response.json()["events"]
    actions = [e["action"] for e in events]
    assert actions[:2] == ["patient.create", "patient.update"] and "patient.disclose" in actions
    assert {e["patient_id"] for e in events} == {patient_id}
    assert [e["sequence"] for e in events] == sorted(e["sequence"] for e in events)
    create = events[0]
    assert create["user_id"] == "provider-user" and "family_name" in create["data_accessed"]
    disclosure = next(e for e in events if e["action"] == "patient.disclose")
    assert disclosure["integration_type"] == "ghl" and disclosure["correlation_id"] == run_id
    assert disclosure["mapping_version"] == pushed["mapping_version"]
    assert "family_name" in disclosure["data_accessed"]
    assert create["mapping_version"] == 0

    only = await admin.http.get("/audit/events", params={"action": "*.disclose"}, headers=headers)
    assert [e["action"] for e in only.json()["events"]] == ["patient.disclose"]
    by_user = await admin.http.get("/audit/events", params={"user_id": "provider-user"}, headers=headers)
    assert [e["action"] for e in by_user.json()["events"]] == ["patient.create"]
    since = (
        await admin.http.get(
            "/audit/events",
            params={"patient_id": patient_id, "since": disclosure["timestamp"]},
            headers=headers,
        )
    ).json()["events"]
    assert since[0]["event_id"] == disclosure["event_id"]
    until = await admin.http.get(
        "/audit/events", params={"patient_id": patient_id, "until": create["timestamp"]}, headers=headers
    )
    assert until.json()["events"] == []
    first = (await admin.http.get("/audit/events", params={"page_size": 2}, headers=headers)).json()
    assert len(first["events"]) == 2 and first["next_page_token"]
    second = await admin.http.get(
        "/audit/events", params={"page_size": 2, "page_token": first["next_page_token"]}, headers=headers
    )
    assert second.json()["events"][0]["sequence"] > first["events"][-1]["sequence"]

    # CSV: a header row and one row per event, every page.
    exported = await admin.http.get("/audit/events.csv", params={"patient_id": patient_id}, headers=headers)
    assert exported.status_code == 200, exported.text
    assert exported.headers["content-type"].startswith("text/csv")
    assert "attachment" in exported.headers["content-disposition"]
    assert_no_phi(exported.text)
    rows = list(csv.reader(io.StringIO(exported.text)))
    assert rows[0] == CSV_HEADER
    table = [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]
    # The patient's trail now also holds the reads of it above (audit.query, with its patient id).
    assert [r["sequence"] for r in table][: len(events)] == [str(e["sequence"]) for e in events]
    assert {r["action"] for r in table[len(events) :]} == {"audit.query"}
    row = next(r for r in table if r["action"] == "patient.disclose")
    assert (row["integration_type"], row["correlation_id"], row["mapping_version"]) == (
        "ghl",
        run_id,
        str(pushed["mapping_version"]),
    )
    assert row["data_accessed"].split(";") == disclosure["data_accessed"]
    assert row["success"] == "true" and row["hash"] == disclosure["hash"] and row["patient_id"] == patient_id
    everything = await admin.http.get("/audit/events.csv", headers=headers)
    total = len(list(csv.reader(io.StringIO(everything.text)))) - 1
    assert total > len(events)

    # FHIR: a searchset Bundle of AuditEvent that fhir.resources accepts.
    fhir = await admin.http.get("/audit/events/fhir", params={"patient_id": patient_id}, headers=headers)
    assert fhir.status_code == 200, fhir.text
    assert fhir.headers["content-type"].startswith("application/fhir+json")
    assert_no_phi(fhir.text)
    bundle = Bundle.model_validate(fhir.json())
    assert bundle.type == "searchset" and len(bundle.entry) == len(table) + 1  # and the CSV export
    resources = [e.resource for e in bundle.entry]
    assert all(isinstance(r, AuditEvent) for r in resources)
    assert resources[-1].type.code == "110101" and resources[-1].subtype[0].code == "audit.export"
    resources = resources[: len(events)]
    assert [r.id for r in resources] == [e["event_id"] for e in events]
    created = resources[0]
    assert (created.action, created.type.code, created.outcome) == ("C", "110110", "0")
    assert created.agent[0].requestor and created.agent[0].who.identifier.value == "provider-user"
    assert created.agent[0].network.address
    assert created.entity[0].what.reference == f"Patient/{patient_id}"
    assert created.entity[0].role.code == "1"
    assert "family_name" in [d.valueString for d in created.entity[0].detail if d.type == "field"]
    shared = resources[actions.index("patient.disclose")]
    assert (shared.action, shared.type.system, shared.type.code) == (
        "R",
        "http://dicom.nema.org/resources/ontology/DCM",
        "110106",
    )
    assert [c.code for c in shared.subtype] == ["patient.disclose"]
    assert shared.entity[0].lifecycle.code == "11"
    details = {d.type: d.valueString for d in shared.entity[0].detail if d.type != "field"}
    assert details == {"correlation_id": run_id, "mapping_version": str(pushed["mapping_version"])}
    recipient = [a for a in shared.agent if not a.requestor]
    assert [a.who.identifier.value for a in recipient] == ["ghl"]
    assert "ghl" in shared.purposeOfEvent[0].text
    paged = (await admin.http.get("/audit/events/fhir", params={"page_size": 1}, headers=headers)).json()
    assert len(paged["entry"]) == 1 and [link["relation"] for link in paged["link"]] == ["self", "next"]

    # The accounting of disclosures: a provider may give it to the patient.
    accounting = await admin.http.get(f"/patients/{patient_id}/disclosures", headers=admin.headers("provider"))
    assert accounting.status_code == 200, accounting.text
    assert_no_phi(accounting.text)
    listed = accounting.json()["disclosures"]
    assert len(listed) == 1
    entry = listed[0]
    assert (entry["vendor"], entry["run_id"], entry["mapping_version"], entry["resource"]) == (
        "ghl",
        run_id,
        pushed["mapping_version"],
        f"Patient/{patient_id}",
    )
    assert entry["fields"] == disclosure["data_accessed"] and entry["disclosed_at"] == disclosure["timestamp"]

    # Each read of the log is itself in the log (no PHI, the patient id when it was about one).
    reads = (await admin.http.get("/audit/events", params={"action": "audit.*"}, headers=headers)).json()["events"]
    assert {"audit.query", "audit.export", "audit.disclosures"} <= {e["action"] for e in reads}
    about = [e for e in reads if e["action"] == "audit.disclosures"]
    assert about[-1]["patient_id"] == patient_id and about[-1]["user_id"] == "provider-user"
    assert all(e["data_accessed"] == [] for e in reads)

    verified = (await admin.http.get("/audit/verify", headers=headers)).json()
    assert verified["intact"]


async def test_disclosures_recorded_directly_are_listed(admin: Client) -> None:
    """Appointment disclosures name their patient too; a filter and paging work without a push."""
    patient_id = f"pat-{uuid.uuid4().hex[:8]}"
    events = [
        audit_pb2.AuditEvent(
            practice_id=admin.practice_id,
            action=action,
            resource=resource,
            patient_id=patient_id,
            integration_type=vendor,
            data_accessed=fields,
            correlation_id=run,
            mapping_version=version,
            success=True,
        )
        for action, resource, vendor, fields, run, version in (
            ("patient.disclose", f"Patient/{patient_id}", "ghl", ["name.family"], "run-a", 2),
            ("appointment.disclose", "Appointment/ap-1", "zenoti", ["start", "participant"], "run-b", 0),
            ("patient.read", f"Patient/{patient_id}", "", ["name.family"], "", 0),
        )
    ]
    token = set_caller(Caller(user_id="system:sync", practice_id=admin.practice_id, role="admin"))
    try:
        async with open_channel(admin.stack.services["audit"].address) as channel:
            await call(audit_pb2_grpc.AuditServiceStub(channel).Record, audit_pb2.RecordRequest(events=events))
    finally:
        reset_caller(token)

    first = await admin.http.get(
        f"/patients/{patient_id}/disclosures", params={"page_size": 1}, headers=admin.headers()
    )
    assert first.status_code == 200, first.text
    body = first.json()
    assert [(d["vendor"], d["run_id"], d["mapping_version"]) for d in body["disclosures"]] == [("ghl", "run-a", 2)]
    rest = await admin.http.get(
        f"/patients/{patient_id}/disclosures", params={"page_token": body["next_page_token"]}, headers=admin.headers()
    )
    assert [(d["action"], d["resource"], d["fields"]) for d in rest.json()["disclosures"]] == [
        ("appointment.disclose", "Appointment/ap-1", ["start", "participant"])
    ]

    fhir = await admin.http.get("/audit/events/fhir", params={"action": "appointment.*"}, headers=admin.headers())
    resource = AuditEvent.model_validate(fhir.json()["entry"][0]["resource"])
    # The appointment and its patient, the fields on the appointment.
    assert [e.what.reference for e in resource.entity] == [f"Patient/{patient_id}", "Appointment/ap-1"]
    assert [d.valueString for d in resource.entity[1].detail if d.type == "field"] == ["start", "participant"]


async def test_roles_and_practices_are_confined(admin: Client, stack) -> None:  # noqa: ANN001
    headers = admin.headers()
    created = await admin.http.post("/patients", json=patient_resource(), headers=headers)
    patient_id = created.json()["id"]
    staff, provider = admin.headers("staff"), admin.headers("provider")
    for path in ("/audit/events", "/audit/events.csv", "/audit/events/fhir"):
        for role_headers in (staff, provider):
            body = assert_problem(await admin.http.get(path, headers=role_headers), 403, reason="ROLE_FORBIDDEN")
            assert_no_phi(str(body))
        assert_problem(await admin.http.get(path), 401)
    assert_problem(
        await admin.http.get(f"/patients/{patient_id}/disclosures", headers=staff), 403, reason="ROLE_FORBIDDEN"
    )
    assert_problem(
        await admin.http.get("/audit/events", params={"action": "%.disclose"}, headers=headers),
        400,
        field="action",
        reason="INVALID_ACTION",
    )
    assert_problem(
        await admin.http.get("/audit/events", params={"page_token": "not-a-token!"}, headers=headers),
        400,
        field="page_token",
    )
    assert_problem(
        await admin.http.get(
            "/audit/events",
            params={"since": "2024-05-02T00:00:00Z", "until": "2024-05-01T00:00:00Z"},
            headers=headers,
        ),
        400,
        field="until",
        reason="INVALID_TIME_RANGE",
    )
    naive = {"since": "2024-05-01T10:00:00", "until": "2024-05-01T10:00:00+00:00"}
    assert_problem(await admin.http.get(f"/patients/{patient_id}/disclosures", params=naive, headers=headers), 400)

    # Another practice's admin sees none of this practice's events, whatever it asks for.
    other = stack.gateway.issuer.mint("other-admin", f"p-{uuid.uuid4().hex[:10]}", "admin")
    theirs = {"Authorization": f"Bearer {other}"}
    assert (await admin.http.get("/audit/events", params={"patient_id": patient_id}, headers=theirs)).json()[
        "events"
    ] == []
    # practice_id is the token's: a query parameter naming this practice changes nothing.
    named = {"practice_id": admin.practice_id}
    listed = (await admin.http.get("/audit/events", params=named, headers=theirs)).json()["events"]
    # Only its own reads of its own log (the first of which asked about this practice's patient id).
    assert listed and all(e["action"] == "audit.query" and e["user_id"] == "other-admin" for e in listed)
    csv_rows = list(csv.reader(io.StringIO((await admin.http.get("/audit/events.csv", headers=theirs)).text)))
    assert {row[2] for row in csv_rows[1:]} == {"audit.query"}
    fhir = (await admin.http.get("/audit/events/fhir", headers=theirs)).json()
    assert {e["resource"]["subtype"][0]["code"] for e in fhir["entry"]} == {"audit.query", "audit.export"}
    assert (await admin.http.get(f"/patients/{patient_id}/disclosures", headers=theirs)).json()["disclosures"] == []
    mine = (await admin.http.get("/audit/events", params={"patient_id": patient_id}, headers=headers)).json()
    assert [e["action"] for e in mine["events"]] == ["patient.create"]
