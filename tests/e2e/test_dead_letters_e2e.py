"""Dead letters end to end, through the gateway, a real Temporal server and the GoHighLevel
sandbox: a patient GHL cannot take is parked with its error class while the rest of the push goes
on, is not retried by later pushes, and once fixed is replayed by a user (audited) and lands; a
replay of a whole error class works the same way."""

from __future__ import annotations

import httpx

from libs.grpc_client import call, open_channel
from libs.protos.concord.audit.v1 import audit_pb2, audit_pb2_grpc
from services.demo import connect_ghl, run_sync, synthetic_patients_bundle
from tests.e2e.conftest import ok

PRACTICE = "p-dead-letters"
BAD_EMAIL = "not-an-email"


async def _set_email(http: httpx.AsyncClient, headers: dict, patient_id: str, email: str) -> None:
    patient = ok(await http.get(f"/patients/{patient_id}", headers=headers))
    others = [t for t in patient.get("telecom", []) if t["system"] != "email"]
    patient["telecom"] = [*others, {"system": "email", "value": email}]
    ok(await http.put(f"/patients/{patient_id}", json=patient, headers=headers))


async def test_a_record_the_vendor_refuses_is_parked_then_fixed_and_replayed(stack) -> None:  # noqa: ANN001
    admin = {"Authorization": f"Bearer {stack.gateway.issuer.mint('u-admin', PRACTICE, 'admin')}"}
    staff = {"Authorization": f"Bearer {stack.gateway.issuer.mint('u-staff', PRACTICE, 'staff')}"}
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=120) as http:
        ok(await http.post("/practice", json={"name": "Dead Letter Clinic"}, headers=admin), 201)
        await connect_ghl(http, admin)
        imported = ok(await http.post("/patients/import", json=synthetic_patients_bundle(4), headers=admin), 201)
        bad, worse, *good = sorted(imported["patient_ids"])
        await _set_email(http, admin, bad, BAD_EMAIL)
        await _set_email(http, admin, worse, BAD_EMAIL)

        first = await run_sync(http, admin, "push")
        assert (first["status"], first["records_created"], first["records_failed"]) == ("partial", 2, 2)
        letters = ok(await http.get("/dead-letters", params={"status": "open"}, headers=staff))["letters"]
        assert sorted(x["record_ref"] for x in letters) == sorted([bad, worse])
        assert {(x["direction"], x["attempts"]) for x in letters} == {("push", 1)}
        error_class = letters[0]["error_class"]
        assert error_class and error_class.isupper() and all(x["error_class"] == error_class for x in letters)
        assert BAD_EMAIL not in str(letters)

        # Parked: later pushes do not send them again (and the run has nothing to fail).
        again = await run_sync(http, admin, "push")
        assert (again["records_processed"], again["records_failed"]) == (0, 0)

        # Front-desk staff may read letters, not replay them.
        refused = await http.post(f"/dead-letters/{letters[0]['letter_id']}/replay", headers=staff)
        assert refused.status_code == 403

        # Fixed in the hub and replayed: it lands; the other one, replayed unfixed, is parked again.
        await _set_email(http, admin, bad, "fixed.patient@example.org")
        by_ref = {x["record_ref"]: x for x in letters}
        replay = ok(await http.post(f"/dead-letters/{by_ref[bad]['letter_id']}/replay", headers=admin), 202)
        assert replay["replayed"] == 1
        run = ok(await http.get(f"/sync-runs/{replay['run_ids'][0]}", params={"wait": "true"}, headers=admin))
        assert (run["records_created"], run["records_failed"]) == (1, 0)
        by_class = ok(await http.post("/dead-letters/replay", json={"error_class": error_class}, headers=admin), 202)
        assert by_class["replayed"] == 1
        run = ok(await http.get(f"/sync-runs/{by_class['run_ids'][0]}", params={"wait": "true"}, headers=admin))
        assert run["records_failed"] == 1
        now = {x["record_ref"]: x for x in ok(await http.get("/dead-letters", headers=admin))["letters"]}
        assert (now[bad]["status"], now[worse]["status"], now[worse]["attempts"]) == ("resolved", "open", 2)
        missing = await http.post("/dead-letters/replay", json={"error_class": "NO_SUCH_CLASS"}, headers=admin)
        assert ok(missing, 202)["replayed"] == 0

    async with open_channel(stack.settings.audit_address) as channel:
        found = await call(
            audit_pb2_grpc.AuditServiceStub(channel).Query,
            audit_pb2.QueryRequest(practice_id=PRACTICE, action="dead_letter.replay", page_size=100),
        )
    assert sorted(e.user_id for e in found.events) == ["u-admin", "u-admin"]
    assert all(e.data_accessed == [error_class] for e in found.events)
