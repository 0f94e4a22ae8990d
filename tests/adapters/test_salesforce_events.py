"""Salesforce appointments as Lightning calendar Events through the adapter (a config whose
options choose SALESFORCE_APPOINTMENT_OBJECT_EVENT):
Events related to Person Accounts in the real sandbox over HTTP, the real registry and connection
services over gRPC, a password-grant connection. Collections of 200, idempotent retried upserts on
Concord_Appointment_Id__c, updates by Id, the (SystemModstamp, Id) incremental read, a calendar
edit in Salesforce and a reschedule from the hub, all-day Events, and refusals without PHI."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx
import pytest
from temporalio.exceptions import ApplicationError

from libs import fhir_appointment as fa
from libs.protos.concord.registry.v1 import registry_pb2 as rpb
from libs.settings import Settings
from services.adapters.salesforce.client import CONCORD_CLIENT
from services.mapping.domain import RecordInvalid
from services.mapping.mappers.salesforce_appointments import SalesforceAppointmentMapper
from services.mapping.mappers.salesforce_events import SalesforceEventMapper
from tests.adapters.harness_salesforce import QUERY_ROUTE, UPSERT_ROUTE, SalesforceHarness, open_harness
from tests.adapters.salesforce_appointment_support import (
    EXTERNAL_ID,
    fetch_all,
    hub_appointments,
    stored_records,
    update_by_id,
    upsert,
    write_and_read_back,
)

MAPPER = SalesforceEventMapper()


@pytest.fixture
async def sf(settings: Settings) -> AsyncIterator[SalesforceHarness]:
    """The suite's Salesforce harness, its config's appointments calendar Events."""
    async with contextlib.AsyncExitStack() as stack, httpx.AsyncClient(timeout=10) as http:
        yield await open_harness(
            stack, settings, http, None, appointment_object=rpb.SALESFORCE_APPOINTMENT_OBJECT_EVENT
        )


async def test_250_events_take_two_collection_calls_and_a_retried_batch_duplicates_none(sf: SalesforceHarness) -> None:
    accounts = await sf.seed(5)
    before = set(await stored_records(sf, "Event"))
    hub = hub_appointments(accounts, 250, "hub-event")
    entries = [("", MAPPER.to_vendor(a)) for a in hub]
    calls = await sf.requests(UPSERT_ROUTE)

    written = await upsert(sf, entries)

    assert written.vendor_requests == 2
    assert await sf.requests(UPSERT_ROUTE) == calls + 2
    assert all(r.success and r.created for r in written.results), written.results[0]
    ids = [r.external_id for r in written.results]
    assert len(set(ids)) == 250
    # The results were lost: the same batch again updates what the first attempt created.
    retried = await upsert(sf, entries)
    assert all(r.success and not r.created for r in retried.results)
    assert [r.external_id for r in retried.results] == ids
    stored = await stored_records(sf, "Event")
    assert set(stored) - before == set(ids)
    assert not any(stored[i]["IsAllDayEvent"] for i in ids)
    for result, appointment in zip(written.results, hub, strict=True):
        record = stored[result.external_id]
        assert record[EXTERNAL_ID] == appointment["id"]
        assert record["WhatId"] == appointment["participant"][0]["actor"]["identifier"]["value"]
        assert fa.project(MAPPER.to_hub(record).resource) == fa.project(
            fa.set_patient_reference(appointment, f"external:{record['WhatId']}")
        )


async def test_reads_are_incremental_and_reschedules_travel_both_ways(sf: SalesforceHarness) -> None:
    accounts = await sf.seed(3)
    _, start = await fetch_all(sf)  # past whatever the org already holds
    hub = hub_appointments(accounts, 120, "hub-event")
    sf.clock.tick()
    ids, cursor = await write_and_read_back(sf, MAPPER, hub, start)
    # The hub reschedules one: an update by Id.
    moved = fa.apply(hub[7], {"start": "2026-04-01T15:00:00Z", "end": "2026-04-01T15:45:00Z"})
    await update_by_id(sf, MAPPER, ids[7], moved)
    # A front desk drags another in the Lightning calendar, keeping its duration.
    sf.clock.tick()
    await sf._admin("PATCH", f"/records/Event/{ids[42]}", json={"StartDateTime": "2026-05-04T13:00:00.000+0000"})
    queries = await sf.requests(QUERY_ROUTE)

    changed, _ = await fetch_all(sf, cursor)

    assert await sf.requests(QUERY_ROUTE) == queries + 1
    assert [r["Id"] for r in changed] == [ids[7], ids[42]]
    views = [fa.project(MAPPER.to_hub(r).resource) for r in changed]
    assert [(v["start"], v["end"]) for v in views] == [
        ("2026-04-01T15:00:00Z", "2026-04-01T15:45:00Z"),
        ("2026-05-04T13:00:00Z", "2026-05-04T13:30:00Z"),
    ]
    assert {v["status"] for v in views} == {"booked"}


async def test_an_all_day_event_made_in_the_calendar_spans_its_day(sf: SalesforceHarness) -> None:
    [account] = await sf.seed(1)
    made = await sf._admin(
        "POST",
        "/records/Event",
        json={"WhatId": account, "Subject": "Other", "IsAllDayEvent": True, "ActivityDate": "2026-06-10"},
    )
    [record] = [r for r in (await fetch_all(sf))[0] if r["Id"] == made["Id"]]

    view = fa.project(MAPPER.to_hub(record).resource)

    assert (view["start"], view["end"], view["patient"]) == (
        "2026-06-10T00:00:00Z",
        "2026-06-11T00:00:00Z",
        f"external:{account}",
    )


async def test_an_unknown_patient_fails_alone_and_a_cancellation_is_refused_by_name(sf: SalesforceHarness) -> None:
    accounts = await sf.seed(1)
    good, bad = (MAPPER.to_vendor(a) for a in hub_appointments(accounts, 2, "hub-event"))
    bad = {**bad, "WhatId": "001000000000000AAA"}

    results = (await upsert(sf, [("", good), ("", bad)])).results

    assert results[0].success
    assert not results[1].success
    assert results[1].error_reason
    assert "Zyxwvut" not in results[1].error_message
    assert "001000000000000AAA" not in results[1].error_message
    cancelled = fa.apply(hub_appointments(accounts, 1, "hub-event")[0], {"status": "cancelled"})
    with pytest.raises(RecordInvalid) as refused:
        MAPPER.to_vendor(cancelled)
    assert [(e.field, e.reason) for e in refused.value.errors] == [("status", "UNSUPPORTED_STATUS")]
    assert "Zyxwvut" not in str(refused.value)


async def test_concords_writes_name_it_in_the_change_origin_and_a_users_edit_does_not(sf: SalesforceHarness) -> None:
    [account] = await sf.seed(1)
    replay = await sf._admin("GET", "/cdc/events", params={"replayId": "-2", "channel": "/data/EventChangeEvent"})
    seen = len(replay["events"] if isinstance(replay, dict) else replay)
    [written] = (
        await upsert(sf, [("", MAPPER.to_vendor(a)) for a in hub_appointments([account], 1, "hub-cdc")])
    ).results
    sf.clock.tick()
    await sf._admin("PATCH", f"/records/Event/{written.external_id}", json={"Location": "Room 4"})

    replay = await sf._admin("GET", "/cdc/events", params={"replayId": "-2", "channel": "/data/EventChangeEvent"})
    events = (replay["events"] if isinstance(replay, dict) else replay)[seen:]

    headers = [e["payload"]["ChangeEventHeader"] for e in events]
    assert [(h["changeType"], h["recordIds"]) for h in headers] == [
        ("CREATE", [written.external_id]),
        ("UPDATE", [written.external_id]),
    ]
    assert headers[0]["changeOrigin"].endswith(f";client={CONCORD_CLIENT}")
    assert not headers[1]["changeOrigin"].endswith(f";client={CONCORD_CLIENT}")


def test_the_gateway_knows_concords_client_id_as_the_adapter_sends_it() -> None:
    """Echo suppression compares changeOrigin with the definition's call_client: they must agree."""
    import json
    from pathlib import Path

    definition = json.loads(
        (Path(__file__).resolve().parents[2] / "services/registry/definitions/salesforce.json").read_text()
    )
    assert definition["extra"]["cdc"]["call_client"] == CONCORD_CLIENT


async def test_each_request_reads_and_writes_the_appointment_object_its_config_chose(sf: SalesforceHarness) -> None:
    """One adapter process serves configs on either object: the request's options decide, and a
    cursor of one object is refused by the other rather than resumed at a foreign position."""
    accounts = await sf.seed(2)
    before = {sobject: set(await stored_records(sf, sobject)) for sobject in ("Event", "ServiceAppointment")}
    on_events = await upsert(sf, [("", MAPPER.to_vendor(a)) for a in hub_appointments(accounts, 3, "hub-ev")])
    _, event_cursor = await fetch_all(sf)
    scheduler = SalesforceHarness(**{**sf.__dict__, "options": rpb.VendorOptions()})  # a ServiceAppointment config
    sa_mapper = SalesforceAppointmentMapper()

    on_appointments = await upsert(
        scheduler, [("", sa_mapper.to_vendor(a)) for a in hub_appointments(accounts, 2, "hub-sa")]
    )
    read, sa_cursor = await fetch_all(scheduler)

    after = {sobject: set(await stored_records(sf, sobject)) for sobject in ("Event", "ServiceAppointment")}
    assert after["Event"] - before["Event"] == {r.external_id for r in on_events.results}
    assert after["ServiceAppointment"] - before["ServiceAppointment"] == {
        r.external_id for r in on_appointments.results
    }
    assert {r["Id"] for r in read} == after["ServiceAppointment"]
    for wrong, cursor in ((scheduler, event_cursor), (sf, sa_cursor)):
        with pytest.raises(ApplicationError) as refused:
            await fetch_all(wrong, cursor)
        assert (refused.value.type, refused.value.non_retryable) == ("InvalidArgument", True)
