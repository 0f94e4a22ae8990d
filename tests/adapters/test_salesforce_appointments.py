"""Salesforce appointments through the adapter: ServiceAppointments under Person Accounts in the
real sandbox over HTTP, the real registry and connection services over gRPC, a password-grant
connection. Collections of 200, idempotent retried upserts (ParentRecordId is create-only),
updates by Id, the (SystemModstamp, Id) incremental read, and a status change both ways."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from libs import fhir_appointment as fa
from libs.settings import Settings
from services.mapping.mappers.salesforce_appointments import SalesforceAppointmentMapper
from tests.adapters.conftest import _harnesses, plain
from tests.adapters.harness_salesforce import QUERY_ROUTE, UPSERT_ROUTE, SalesforceHarness
from tests.adapters.salesforce_appointment_support import (
    EXTERNAL_ID,
    fetch_all,
    hub_appointments,
    stored_records,
    update_by_id,
    upsert,
    write_and_read_back,
)

MAPPER = SalesforceAppointmentMapper()


@pytest.fixture
async def sf(settings: Settings) -> AsyncIterator[SalesforceHarness]:
    async with _harnesses("salesforce", settings) as open_one:
        harness = await open_one()
        assert isinstance(harness, SalesforceHarness)
        yield harness


async def test_250_appointments_take_two_collection_calls_and_a_retried_batch_duplicates_none(
    sf: SalesforceHarness,
) -> None:
    accounts = await sf.seed(5)
    hub = hub_appointments(accounts, 250)
    entries = [("", MAPPER.to_vendor(a)) for a in hub]
    calls = await sf.requests(UPSERT_ROUTE)

    written = await upsert(sf, entries)

    assert written.vendor_requests == 2
    assert await sf.requests(UPSERT_ROUTE) == calls + 2
    assert all(r.success and r.created for r in written.results), written.results[0]
    ids = [r.external_id for r in written.results]
    assert len(set(ids)) == 250
    assert plain(written.results[0].record)["ParentRecordId"] == accounts[0]
    # The results were lost: the same batch again updates what the first attempt created.
    retried = await upsert(sf, entries)
    assert all(r.success and not r.created for r in retried.results)
    assert [r.external_id for r in retried.results] == ids
    assert all(plain(r.record)["ParentRecordId"] for r in retried.results)
    stored = await stored_records(sf, "ServiceAppointment")
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
    hub = hub_appointments(accounts, 120)
    ids, cursor = await write_and_read_back(sf, MAPPER, hub)
    # The hub marks one fulfilled: an update by Id (ParentRecordId is create-only, so it is not sent).
    await update_by_id(sf, MAPPER, ids[7], fa.apply(hub[7], {"status": "fulfilled"}))
    # A scheduler cancels another in Salesforce.
    sf.clock.tick()
    await sf._admin("PATCH", f"/records/ServiceAppointment/{ids[42]}", json={"Status": "Canceled"})
    queries = await sf.requests(QUERY_ROUTE)

    changed, _ = await fetch_all(sf, cursor)

    assert await sf.requests(QUERY_ROUTE) == queries + 1
    assert [(r["Id"], r["Status"]) for r in changed] == [(ids[7], "Completed"), (ids[42], "Canceled")]
    statuses = [fa.project(MAPPER.to_hub(r).resource)["status"] for r in changed]
    assert statuses == ["fulfilled", "cancelled"]
    stored = await stored_records(sf, "ServiceAppointment")
    assert stored[ids[7]]["ParentRecordId"] == accounts[7 % 3]


async def test_an_unknown_patient_fails_alone_and_names_only_the_field(sf: SalesforceHarness) -> None:
    accounts = await sf.seed(1)
    good, bad = (MAPPER.to_vendor(a) for a in hub_appointments(accounts, 2))
    bad = {**bad, "ParentRecordId": "001000000000000AAA", "AccountId": "001000000000000AAA"}

    results = (await upsert(sf, [("", good), ("", bad)])).results

    assert results[0].success
    assert not results[1].success
    assert results[1].error_reason
    assert "Zyxwvut" not in results[1].error_message
    assert "001000000000000AAA" not in results[1].error_message
