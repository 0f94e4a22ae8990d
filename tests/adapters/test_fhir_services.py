"""FHIR R4 HealthcareService (ENTITY_TYPE_SERVICE) against the sandbox, with real SMART
backend-services tokens: conditional creates on the hub's identifier, If-Match updates,
`_lastUpdated` pulls from a cursor, a malformed EMR record rejected alone by the mapper."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from libs import fhir_service
from libs.protos.concord.common.v1 import common_pb2
from libs.settings import Settings
from services.adapters.fhir.resources import SERVICE
from services.mapping.domain import RecordInvalid
from services.mapping.mappers.fhir_services import FhirServiceMapper
from tests.adapters.conftest import plain, response_statuses
from tests.adapters.harness_fhir import FhirHarness, fetch_run, grant_scopes, open_fhir_harness, upsert_entities

SERVICES = common_pb2.ENTITY_TYPE_SERVICE


@pytest.fixture
async def fhir(settings: Settings) -> AsyncIterator[FhirHarness]:
    async with contextlib.AsyncExitStack() as stack:
        http = await stack.enter_async_context(httpx.AsyncClient(timeout=10))
        harness = await open_fhir_harness(stack, settings, http)
        await grant_scopes(harness, "system/Patient.cruds system/HealthcareService.cruds")
        yield harness


def _service(name: str, price: float = 120.0, hub_id: str | None = None) -> dict:
    """As the mapper writes it: the hub's item with the hub's id as an identifier."""
    item = fhir_service.catalog_item(
        name=name,
        service_code=name.upper()[:6],
        category_code="c-facials",
        category_name="Facials",
        duration_minutes=60,
        price=price,
        currency="USD",
    )
    return FhirServiceMapper().to_vendor({**item, "id": hub_id} if hub_id else item)


def _live(fhir: FhirHarness) -> dict[str, dict]:
    assert fhir.sandbox is not None
    return {s["id"]: s for s in fhir.sandbox.tenants[fhir.tenant].live("HealthcareService")}


async def test_create_is_idempotent_on_the_hub_identifier(fhir: FhirHarness) -> None:
    records = [_service(name, hub_id=str(uuid.uuid4())) for name in ("Hydrafacial", "Peel", "Botox")]
    items = [(f"s{i}", "", r) for i, r in enumerate(records)]
    first = await upsert_entities(fhir, SERVICES, items)
    assert all(r.success and r.created for r in first.values())
    again = await upsert_entities(fhir, SERVICES, items)  # a retried batch: found, never created twice
    assert all(r.success and not r.created for r in again.values())
    assert {r.external_id for r in again.values()} == {r.external_id for r in first.values()}
    stored = _live(fhir)
    assert len(stored) == 3
    assert SERVICE.hub_id(stored[first["s0"].external_id]) == records[0]["identifier"][0]["value"]

    unidentified = await upsert_entities(fhir, SERVICES, [("x", "", _service("Nameless"))])
    assert not unidentified["x"].success and unidentified["x"].error_reason == "HUB_IDENTIFIER_MISSING"
    assert len(_live(fhir)) == 3


async def test_update_goes_with_if_match_and_a_stale_version_keeps_the_emr_edit(fhir: FhirHarness) -> None:
    records = [_service(name, hub_id=str(uuid.uuid4())) for name in ("Hydrafacial", "Peel")]
    created = await upsert_entities(fhir, SERVICES, [(f"s{i}", "", r) for i, r in enumerate(records)])
    ids = [created[f"s{i}"].external_id for i in range(2)]
    await fhir._admin(
        "PATCH", f"/resources/HealthcareService/{ids[0]}", params={"tenant": fhir.tenant}, json={"active": False}
    )
    repriced = [fhir_service.apply({**r, "meta": {"versionId": "1"}}, {"price": "99.00"}) for r in records]
    pushed = await upsert_entities(fhir, SERVICES, [(f"s{i}", ids[i], repriced[i]) for i in range(2)])

    assert not pushed["s0"].success and pushed["s0"].error_reason == "VENDOR_VERSION_CONFLICT"
    assert pushed["s1"].success and not pushed["s1"].created
    stored = _live(fhir)
    assert stored[ids[0]]["active"] is False and fhir_service.project(stored[ids[0]])["price"] == "120.00"
    assert fhir_service.project(stored[ids[1]])["price"] == "99.00" and stored[ids[1]]["meta"]["versionId"] == "2"


async def test_services_are_pulled_incrementally_and_a_malformed_one_is_rejected_alone(fhir: FhirHarness) -> None:
    made = []
    for i in range(9):  # more than a sandbox page (7): the fetch follows next links
        response = await fhir.ehr("POST", "HealthcareService", json=_service(f"Service {i}"))
        assert response.status_code == 201, response.text
        made.append(response.json()["id"])
    nameless = await fhir.ehr("POST", "HealthcareService", json={"resourceType": "HealthcareService", "active": True})
    assert nameless.status_code == 201, nameless.text

    records, cursor = await fetch_run(fhir, SERVICES, "")
    assert sorted(r["id"] for r in records) == sorted([*made, nameless.json()["id"]])
    mapped, refused = [], []
    for record in records:
        try:
            mapped.append(FhirServiceMapper().to_hub(record).external_id)
        except RecordInvalid as error:
            refused.append((error.external_id, error.errors[0].reason))
    assert sorted(mapped) == sorted(made) and refused == [(nameless.json()["id"], "MISSING_NAME")]
    assert (await fetch_run(fhir, SERVICES, cursor))[0] == []

    await fhir._admin(
        "PATCH", f"/resources/HealthcareService/{made[4]}", params={"tenant": fhir.tenant}, json={"name": "Renamed"}
    )
    records, cursor = await fetch_run(fhir, SERVICES, cursor)
    assert [(r["id"], r["name"]) for r in records] == [(made[4], "Renamed")]
    # Patients are another search: no HealthcareService among them.
    assert all(plain(r)["resourceType"] == "Patient" for r in (await fhir.fetch()).records)


async def test_an_expired_token_is_refreshed_and_server_errors_retried(fhir: FhirHarness) -> None:
    for i in range(3):
        response = await fhir.ehr("POST", "HealthcareService", json=_service(f"Service {i}"))
        assert response.status_code == 201, response.text
    await fhir.expire_access_tokens()
    await fhir.inject(server_error_rate=0.3)
    records, _ = await fetch_run(fhir, SERVICES, "", size=2)
    await fhir.clear_faults()
    assert sorted(r["name"] for r in records) == ["Service 0", "Service 1", "Service 2"]


async def test_a_429_storm_is_waited_out(fhir: FhirHarness) -> None:
    for i in range(2):
        response = await fhir.ehr("POST", "HealthcareService", json=_service(f"Stormy {i}"))
        assert response.status_code == 201, response.text
    statuses = response_statuses(fhir.adapter)
    storm = await fhir.http.post(f"{fhir.sandbox_url}/_sandbox/faults", json={"rate_limit_storm": 1})
    assert storm.status_code < 300, storm.text
    records, _ = await fetch_run(fhir, SERVICES, "", size=5)
    assert statuses.count(429) == 1 and statuses[-1] == 200  # a 429 (Retry-After: 1), then the search
    assert sorted(r["name"] for r in records) == ["Stormy 0", "Stormy 1"]
