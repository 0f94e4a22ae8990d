"""What the Salesforce appointment tests (ServiceAppointment and calendar Event) share: hub
appointments as MapToVendor gets them, and the adapter's write and read calls for APPOINTMENT."""

from __future__ import annotations

from libs import fhir_appointment as fa
from libs.protos.concord.adapter.v1 import adapter_pb2 as pb
from services.mapping.domain import Mapper
from tests.adapters.conftest import plain, struct
from tests.adapters.harness_salesforce import APPOINTMENT, APPOINTMENT_EXTERNAL_ID, UPDATE_ROUTE, SalesforceHarness

# Hub appointments and their constants live in harness_salesforce.py (its suite cases write them
# too, and this module imports that one); re-exported here for the appointment tests.
from tests.adapters.harness_salesforce import NOTES as NOTES
from tests.adapters.harness_salesforce import hub_appointments as hub_appointments

EXTERNAL_ID = APPOINTMENT_EXTERNAL_ID


async def upsert(sf: SalesforceHarness, entries: list[tuple[str, dict]]) -> pb.UpsertBatchResponse:
    items = [
        pb.UpsertItem(ref=f"ref-{n}", external_id=eid, record=struct(record)) for n, (eid, record) in enumerate(entries)
    ]
    return await sf.adapter.upsert_batch(
        pb.UpsertBatchRequest(config_id=sf.config_id, entity_type=APPOINTMENT, items=items, options=sf.options)
    )


async def fetch_all(sf: SalesforceHarness, cursor: str = "") -> tuple[list[dict], str]:
    records: list[dict] = []
    while True:
        page = await sf.adapter.fetch_changes(
            pb.FetchChangesRequest(
                config_id=sf.config_id, entity_type=APPOINTMENT, cursor=cursor, page_size=100, options=sf.options
            )
        )
        records += [plain(r) for r in page.records]
        cursor = page.next_cursor
        if not page.has_more:
            return records, cursor


async def stored_records(sf: SalesforceHarness, sobject: str) -> dict[str, dict]:
    return {r["Id"]: r for r in await sf._admin("GET", f"/records/{sobject}")}


async def write_and_read_back(
    sf: SalesforceHarness, mapper: Mapper, hub: list[dict], start: str = ""
) -> tuple[list[str], str]:
    """Writes new appointments, then reads them from `start`: once in Id order (they share one
    SystemModstamp), then nothing and the same cursor. Their Salesforce ids and the cursor after them."""
    written = await upsert(sf, [("", mapper.to_vendor(a)) for a in hub])
    ids = [r.external_id for r in written.results]
    first, cursor = await fetch_all(sf, start)
    assert [r["Id"] for r in first] == sorted(ids)
    assert {fa.project(mapper.to_hub(r).resource)["status"] for r in first} == {"booked"}
    again, same = await fetch_all(sf, cursor)
    assert again == []
    assert same == cursor
    return ids, cursor


async def update_by_id(sf: SalesforceHarness, mapper: Mapper, record_id: str, appointment: dict) -> None:
    """The hub changes a linked appointment a second later: one update-by-Id collection call."""
    sf.clock.tick()
    updates = await sf.requests(UPDATE_ROUTE)
    result = (await upsert(sf, [(record_id, mapper.to_vendor(appointment))])).results[0]
    assert result.success and not result.created
    assert await sf.requests(UPDATE_ROUTE) == updates + 1
