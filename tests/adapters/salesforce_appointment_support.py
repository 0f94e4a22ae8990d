"""What the Salesforce appointment tests (ServiceAppointment and calendar Event) share: hub
appointments as MapToVendor gets them, and the adapter's write and read calls for APPOINTMENT."""

from __future__ import annotations

from libs import fhir_appointment as fa
from libs.protos.concord.adapter.v1 import adapter_pb2 as pb
from libs.protos.concord.common.v1 import common_pb2
from services.mapping.domain import Mapper
from tests.adapters.conftest import plain, struct
from tests.adapters.harness_salesforce import UPDATE_ROUTE, SalesforceHarness

APPOINTMENT = common_pb2.ENTITY_TYPE_APPOINTMENT
EXTERNAL_ID = "Concord_Appointment_Id__c"
NOTES = "Discuss Zyxwvut biopsy results"  # PHI canary


def hub_appointments(accounts: list[str], count: int, prefix: str = "hub-appt") -> list[dict]:
    """Hub appointments as MapToVendor gets them: the patient as a logical reference to its account."""
    return [
        {
            "resourceType": "Appointment",
            "id": f"{prefix}-{i:04d}",
            "status": "booked",
            "start": f"2026-03-{2 + i % 20:02d}T{9 + i % 8:02d}:00:00Z",
            "end": f"2026-03-{2 + i % 20:02d}T{9 + i % 8:02d}:30:00Z",
            "serviceType": [{"text": "Annual physical"}],
            "description": NOTES,
            "participant": [{"actor": fa.external_actor(accounts[i % len(accounts)]), "status": "accepted"}],
        }
        for i in range(count)
    ]


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
