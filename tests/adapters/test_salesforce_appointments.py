"""Salesforce appointments through the adapter: ServiceAppointments under Person Accounts in the
real sandbox over HTTP, the real registry and connection services over gRPC, a password-grant
connection. Collections of 200, idempotent retried upserts (ParentRecordId is create-only),
updates by Id, the (SystemModstamp, Id) incremental read, and a status change both ways."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from libs import fhir_appointment as fa
from libs.protos.concord.adapter.v1 import adapter_pb2 as pb
from libs.protos.concord.common.v1 import common_pb2
from libs.settings import Settings
from services.mapping.mappers.salesforce_appointments import SalesforceAppointmentMapper
from tests.adapters.conftest import _harnesses, plain, struct
from tests.adapters.harness_salesforce import QUERY_ROUTE, UPDATE_ROUTE, UPSERT_ROUTE, SalesforceHarness

APPOINTMENT = common_pb2.ENTITY_TYPE_APPOINTMENT
EXTERNAL_ID = "Concord_Appointment_Id__c"
MAPPER = SalesforceAppointmentMapper()
NOTES = "Discuss Zyxwvut biopsy results"  # PHI canary


@pytest.fixture
async def sf(settings: Settings) -> AsyncIterator[SalesforceHarness]:
    async with _harnesses("salesforce", settings) as open_one:
        harness = await open_one()
        assert isinstance(harness, SalesforceHarness)
        yield harness


def _hub_appointments(accounts: list[str], count: int) -> list[dict]:
    """Hub appointments as MapToVendor gets them: the patient as a logical reference to its account."""
    return [
        {
            "resourceType": "Appointment",
            "id": f"hub-appt-{i:04d}",
            "status": "booked",
            "start": f"2026-03-{2 + i % 20:02d}T{9 + i % 8:02d}:00:00Z",
            "end": f"2026-03-{2 + i % 20:02d}T{9 + i % 8:02d}:30:00Z",
            "serviceType": [{"text": "Annual physical"}],
            "description": NOTES,
            "participant": [{"actor": fa.external_actor(accounts[i % len(accounts)]), "status": "accepted"}],
        }
        for i in range(count)
    ]


async def _upsert(sf: SalesforceHarness, entries: list[tuple[str, dict]]) -> pb.UpsertBatchResponse:
    items = [
        pb.UpsertItem(ref=f"ref-{n}", external_id=eid, record=struct(record)) for n, (eid, record) in enumerate(entries)
    ]
    return await sf.adapter.upsert_batch(
        pb.UpsertBatchRequest(config_id=sf.config_id, entity_type=APPOINTMENT, items=items)
    )


async def _fetch_all(sf: SalesforceHarness, cursor: str = "") -> tuple[list[dict], str]:
    records: list[dict] = []
    while True:
        page = await sf.adapter.fetch_changes(
            pb.FetchChangesRequest(config_id=sf.config_id, entity_type=APPOINTMENT, cursor=cursor, page_size=100)
        )
        records += [plain(r) for r in page.records]
        cursor = page.next_cursor
        if not page.has_more:
            return records, cursor


async def _stored(sf: SalesforceHarness) -> dict[str, dict]:
    return {a["Id"]: a for a in await sf._admin("GET", "/records/ServiceAppointment")}


async def test_250_appointments_take_two_collection_calls_and_a_retried_batch_duplicates_none(
    sf: SalesforceHarness,
) -> None:
    accounts = await sf.seed(5)
    hub = _hub_appointments(accounts, 250)
    entries = [("", MAPPER.to_vendor(a)) for a in hub]
    calls = await sf.requests(UPSERT_ROUTE)

    written = await _upsert(sf, entries)

    assert written.vendor_requests == 2
    assert await sf.requests(UPSERT_ROUTE) == calls + 2
    assert all(r.success and r.created for r in written.results), written.results[0]
    ids = [r.external_id for r in written.results]
    assert len(set(ids)) == 250
    assert plain(written.results[0].record)["ParentRecordId"] == accounts[0]
    # The results were lost: the same batch again updates what the first attempt created.
    retried = await _upsert(sf, entries)
    assert all(r.success and not r.created for r in retried.results)
    assert [r.external_id for r in retried.results] == ids
    assert all(plain(r.record)["ParentRecordId"] for r in retried.results)
    stored = await _stored(sf)
    assert set(stored) == set(ids)
    for result, appointment in zip(written.results, hub, strict=True):
        record = stored[result.external_id]
        assert record[EXTERNAL_ID] == appointment["id"]
        assert (
            record["ParentRecordId"]
            == record["AccountId"]
            == appointment["participant"][0]["actor"]["identifier"]["value"]
        )
        assert record["Status"] == "Scheduled"
        assert fa.project(MAPPER.to_hub(record).resource) == fa.project(
            fa.set_patient_reference(appointment, f"external:{record['ParentRecordId']}")
        )


async def test_reads_are_incremental_and_a_status_change_travels_both_ways(sf: SalesforceHarness) -> None:
    accounts = await sf.seed(3)
    hub = _hub_appointments(accounts, 120)
    written = await _upsert(sf, [("", MAPPER.to_vendor(a)) for a in hub])
    ids = [r.external_id for r in written.results]

    first, cursor = await _fetch_all(sf)

    assert [r["Id"] for r in first] == sorted(ids)  # one SystemModstamp: Id order
    assert {fa.project(MAPPER.to_hub(r).resource)["status"] for r in first} == {"booked"}
    again, same = await _fetch_all(sf, cursor)
    assert again == []
    assert same == cursor

    # The hub marks one fulfilled: an update by Id (ParentRecordId is create-only, so it is not sent).
    sf.clock.tick()
    done = fa.apply(hub[7], {"status": "fulfilled"})
    updates = await sf.requests(UPDATE_ROUTE)
    result = (await _upsert(sf, [(ids[7], MAPPER.to_vendor(done))])).results[0]
    assert result.success and not result.created
    assert await sf.requests(UPDATE_ROUTE) == updates + 1
    # A scheduler cancels another in Salesforce.
    sf.clock.tick()
    await sf._admin("PATCH", f"/records/ServiceAppointment/{ids[42]}", json={"Status": "Canceled"})
    queries = await sf.requests(QUERY_ROUTE)

    changed, _ = await _fetch_all(sf, cursor)

    assert await sf.requests(QUERY_ROUTE) == queries + 1
    assert [(r["Id"], r["Status"]) for r in changed] == [(ids[7], "Completed"), (ids[42], "Canceled")]
    statuses = [fa.project(MAPPER.to_hub(r).resource)["status"] for r in changed]
    assert statuses == ["fulfilled", "cancelled"]
    stored = await _stored(sf)
    assert stored[ids[7]]["ParentRecordId"] == accounts[7 % 3]


async def test_an_unknown_patient_fails_alone_and_names_only_the_field(sf: SalesforceHarness) -> None:
    accounts = await sf.seed(1)
    good, bad = (MAPPER.to_vendor(a) for a in _hub_appointments(accounts, 2))
    bad = {**bad, "ParentRecordId": "001000000000000AAA", "AccountId": "001000000000000AAA"}

    results = (await _upsert(sf, [("", good), ("", bad)])).results

    assert results[0].success
    assert not results[1].success
    assert results[1].error_reason
    assert "Zyxwvut" not in results[1].error_message
    assert "001000000000000AAA" not in results[1].error_message
