"""FHIR R4 Appointments against the sandbox, with real SMART backend-services tokens: conditional
creates on the hub's identifier, If-Match conflicts, `_lastUpdated` pulls from a cursor."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest

from libs.grpc_client import call
from libs.protos.concord.adapter.v1 import adapter_pb2 as pb
from libs.protos.concord.common.v1 import common_pb2
from libs.protos.concord.connection.v1 import connection_pb2 as cpb
from libs.settings import Settings
from services.adapters.fhir.resources import APPOINTMENT
from tests.adapters.conftest import plain, struct
from tests.adapters.harness_fhir import CLIENT_ID, FhirHarness, appointment, keys, open_fhir_harness

APPOINTMENTS = common_pb2.ENTITY_TYPE_APPOINTMENT


@pytest.fixture
async def fhir(settings: Settings) -> AsyncIterator[FhirHarness]:
    async with contextlib.AsyncExitStack() as stack:
        http = await stack.enter_async_context(httpx.AsyncClient(timeout=10))
        harness = await open_fhir_harness(stack, settings, http)
        # The suite's client may read patients only; the EMR's admin grants it appointments too, and the
        # next grant (which asks for the definition's scopes) gets them.
        public = keys()[0][1]
        await harness._admin(
            "POST",
            "/clients",
            json={
                "client_id": CLIENT_ID,
                "jwks": {"keys": [public]},
                "scopes": "system/Patient.cruds system/Appointment.cruds",
            },
        )
        token = await call(
            harness.connections.GetAccessToken,
            cpb.GetAccessTokenRequest(config_id=harness.config_id, force_refresh=True),
        )
        assert "system/Appointment.cruds" in harness.sandbox.tokens[token.access_token].scope_text
        yield harness


def _appointment(patient_id: str, hub_id: str | None = None, hour: int = 9) -> dict:
    return appointment(patient_id, hub_id, datetime(2024, 6, 3, hour, tzinfo=UTC))


async def _upsert(fhir: FhirHarness, items: list[tuple[str, str, dict]]) -> dict[str, pb.UpsertResult]:
    request = pb.UpsertBatchRequest(
        config_id=fhir.config_id,
        entity_type=APPOINTMENTS,
        items=[pb.UpsertItem(ref=ref, external_id=eid, record=struct(rec)) for ref, eid, rec in items],
    )
    return {r.ref: r for r in (await fhir.adapter.upsert_batch(request)).results}


async def _fetch_run(fhir: FhirHarness, cursor: str, size: int = 5) -> tuple[list[dict], str]:
    """One pull run: pages until has_more is false."""
    records: list[dict] = []
    for _ in range(50):
        page = await fhir.adapter.fetch_changes(
            pb.FetchChangesRequest(config_id=fhir.config_id, entity_type=APPOINTMENTS, cursor=cursor, page_size=size)
        )
        records += [plain(r) for r in page.records]
        cursor = page.next_cursor
        if not page.has_more:
            return records, cursor
    raise AssertionError("has_more never turned false")


def _live(fhir: FhirHarness) -> dict[str, dict]:
    assert fhir.sandbox is not None
    return {a["id"]: a for a in fhir.sandbox.tenants[fhir.tenant].live("Appointment")}


async def test_fhir_appointment_create_is_idempotent_on_the_hub_identifier(fhir: FhirHarness) -> None:
    (patient,) = await fhir.seed(1)
    records = [_appointment(patient, str(uuid.uuid4()), hour) for hour in (9, 10, 11)]

    first = await _upsert(fhir, [(f"a{i}", "", r) for i, r in enumerate(records)])
    assert all(r.success and r.created for r in first.values())
    # A retried batch (the activity failed after the writes landed): found, never created twice.
    again = await _upsert(fhir, [(f"a{i}", "", r) for i, r in enumerate(records)])

    assert all(r.success and not r.created for r in again.values())
    assert {r.external_id for r in again.values()} == {r.external_id for r in first.values()}
    stored = _live(fhir)
    assert len(stored) == 3
    written = stored[first["a0"].external_id]
    assert written["participant"][0]["actor"] == {"reference": f"Patient/{patient}"}
    assert APPOINTMENT.hub_id(written) == records[0]["identifier"][0]["value"]
    assert plain(first["a0"].record)["meta"]["versionId"] == "1"

    unidentified = await _upsert(fhir, [("x", "", _appointment(patient))])
    assert not unidentified["x"].success and unidentified["x"].error_reason == "HUB_IDENTIFIER_MISSING"
    assert len(_live(fhir)) == 3


async def test_fhir_appointment_update_refused_by_if_match_keeps_the_emr_edit(fhir: FhirHarness) -> None:
    (patient,) = await fhir.seed(1)
    records = [_appointment(patient, str(uuid.uuid4()), hour) for hour in (9, 10)]
    created = await _upsert(fhir, [(f"a{i}", "", r) for i, r in enumerate(records)])
    ids = [created[f"a{i}"].external_id for i in range(2)]
    # The front desk cancels the first at the EMR: version 2.
    await fhir._admin(
        "PATCH", f"/resources/Appointment/{ids[0]}", params={"tenant": fhir.tenant}, json={"status": "cancelled"}
    )

    # The hub moves both, each change based on version 1, the version it last synced.
    moved = [
        {**r, "start": "2024-06-05T15:00:00Z", "end": "2024-06-05T15:30:00Z", "meta": {"versionId": "1"}}
        for r in records
    ]
    pushed = await _upsert(fhir, [(f"a{i}", ids[i], moved[i]) for i in range(2)])

    assert not pushed["a0"].success and pushed["a0"].error_reason == "VENDOR_VERSION_CONFLICT"
    assert pushed["a1"].success and not pushed["a1"].created
    stored = _live(fhir)
    assert (stored[ids[0]]["status"], stored[ids[0]]["start"]) == ("cancelled", "2024-06-03T09:00:00Z")
    assert stored[ids[1]]["start"] == "2024-06-05T15:00:00Z" and stored[ids[1]]["meta"]["versionId"] == "2"


async def test_fhir_appointments_are_pulled_incrementally_from_the_cursor(fhir: FhirHarness) -> None:
    (patient,) = await fhir.seed(1)
    made = []
    for hour in range(8, 20):  # more than a sandbox page (7): the fetch follows next links
        response = await fhir.ehr("POST", "Appointment", json=_appointment(patient, hour=hour))
        assert response.status_code == 201, response.text
        made.append(response.json()["id"])

    records, cursor = await _fetch_run(fhir, "")
    assert sorted(r["id"] for r in records) == sorted(made)
    assert all(r["resourceType"] == "Appointment" for r in records)
    assert (await _fetch_run(fhir, cursor))[0] == []

    await fhir._admin(
        "PATCH", f"/resources/Appointment/{made[3]}", params={"tenant": fhir.tenant}, json={"status": "noshow"}
    )
    response = await fhir.ehr("POST", "Appointment", json=_appointment(patient, hour=21))
    records, cursor = await _fetch_run(fhir, cursor)

    assert [r["id"] for r in records] == [made[3], response.json()["id"]]
    assert records[0]["status"] == "noshow"
    assert (await _fetch_run(fhir, cursor))[0] == []
    # Patients are another search: the one patient is not among appointments, nor they among patients.
    patients = await fhir.fetch()
    assert [plain(r)["id"] for r in patients.records] == [patient]
