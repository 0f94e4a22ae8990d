"""Zenoti guest memberships (ENTITY_TYPE_MEMBERSHIP) against the seeded sandbox over real HTTP: a
pass over the center's guests reads every membership they hold, an unchanged center returns nothing
the second time, a cancellation comes through alone, pushes are refused as READ_ONLY_ENTITY."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import pytest
from temporalio.exceptions import ApplicationError

from libs import fhir_membership
from libs.protos.concord.adapter.v1 import adapter_pb2 as pb
from libs.protos.concord.common.v1 import common_pb2
from libs.settings import Settings
from sandbox.zenoti.settings import OrgConfig
from services.adapters import AdapterContext
from services.adapters.zenoti import ZenotiAdapter
from services.adapters.zenoti.client import Pacer, Pacers
from services.mapping.mappers.zenoti_memberships import ZenotiMembershipMapper
from tests.adapters.conftest import plain, struct
from tests.adapters.harness_zenoti import ZenotiHarness
from tests.adapters.test_zenoti_adapter import ACCOUNT, FakeTime, _zenoti

MEMBERSHIP = common_pb2.ENTITY_TYPE_MEMBERSHIP


@pytest.fixture
async def zenoti(settings: Settings) -> AsyncIterator[ZenotiHarness]:
    """The seeded organisation on a fake clock shared by the sandbox's 60-a-minute bucket and the
    adapter's pacer: a pass over its guests costs more calls than a minute allows, and the pacer's
    waits move the clock instead of taking real minutes."""
    fake = FakeTime()
    async with _zenoti(settings, org=OrgConfig(account_name=ACCOUNT, seed=True), clock=fake.clock) as (harness, stack):
        adapter = ZenotiAdapter(
            AdapterContext(harness.settings, harness.connections),
            http=fake.http(),
            pacers=Pacers(factory=lambda: Pacer(clock=fake.clock, sleep=fake.sleep)),
        )
        stack.push_async_callback(adapter.aclose)
        yield dataclasses.replace(harness, adapter=adapter)


async def _pass(zenoti: ZenotiHarness, cursor: str, size: int) -> tuple[list[dict], str, int]:
    records: list[dict] = []
    calls = 0
    while True:
        request = pb.FetchChangesRequest(
            config_id=zenoti.config_id, entity_type=MEMBERSHIP, cursor=cursor, page_size=size
        )
        page = await zenoti.adapter.fetch_changes(request)
        records += [plain(r) for r in page.records]
        calls += page.vendor_requests
        cursor = page.next_cursor
        if not page.has_more:
            return records, cursor, calls


def _held_here(zenoti: ZenotiHarness) -> dict:
    org = zenoti.org
    return {m.id: m for m in org.guest_memberships.values() if org.guests[m.guest_id]["center_id"] == zenoti.center_id}


async def test_a_pass_reads_every_membership_of_the_centers_guests(zenoti: ZenotiHarness) -> None:
    held = _held_here(zenoti)
    assert len(held) >= 3
    records, _, _ = await _pass(zenoti, "", 10)
    assert sorted(r["id"] for r in records) == sorted(held)
    org = zenoti.org
    for record in records:
        expected = held[record["id"]]
        assert record["guest_id"] == expected.guest_id
        hub = ZenotiMembershipMapper().to_hub(record)
        projected = fhir_membership.project(hub.resource)
        plan = org.memberships[expected.membership_id]
        assert hub.external_id == expected.id
        assert projected["patient"] == f"external:{expected.guest_id}"
        assert projected["plan_id"] == plan.id and projected["plan_name"] == plan.name
        assert projected["plan_code"] == plan.code
        assert projected["start"] == expected.start.isoformat() and projected["end"] == expected.end.isoformat()
        assert projected["state"] == expected.status.lower()
        assert projected["status"] == ("cancelled" if expected.status == "Cancelled" else "active")
        assert projected["price"] == f"{plan.price:.2f}" and projected["currency"] == "USD"
        assert projected["center_id"] == zenoti.center_id


async def test_every_pass_returns_every_membership_and_a_cancellation_comes_through(zenoti: ZenotiHarness) -> None:
    # Nothing is dropped as "returned before": a membership the hub could not link yet comes again.
    first, cursor, _ = await _pass(zenoti, "", 100)
    again, cursor, _ = await _pass(zenoti, cursor, 100)
    assert again == first
    changed = next(m for m in _held_here(zenoti).values() if m.status == "Active")
    changed.status = "Cancelled"  # the front desk cancels it in Zenoti's web app
    records, _, _ = await _pass(zenoti, cursor, 100)
    assert sorted(r["id"] for r in records) == sorted(r["id"] for r in first)
    cancelled = next(r for r in records if r["id"] == changed.id)
    assert fhir_membership.project(ZenotiMembershipMapper().to_hub(cancelled).resource)["status"] == "cancelled"


async def test_a_pass_costs_one_call_per_guest_page_and_per_guest(zenoti: ZenotiHarness) -> None:
    guests = sum(1 for g in zenoti.org.guests.values() if g["center_id"] == zenoti.center_id)
    _, _, calls = await _pass(zenoti, "", 10)
    pages = -(-guests // 10)
    assert pages > 1
    # Page 1 gives the total, the pass reads back to front and page 1 again last (paging.py): each
    # guest page read costs its list call and one memberships call per guest on it.
    assert calls == (pages + 1) + guests + 10


async def test_a_push_is_refused_as_read_only(zenoti: ZenotiHarness) -> None:
    request = pb.UpsertBatchRequest(
        config_id=zenoti.config_id,
        entity_type=MEMBERSHIP,
        items=[pb.UpsertItem(ref="r1", record=struct({"status": "Active"}))],
    )
    with pytest.raises(ApplicationError) as failure:
        await zenoti.adapter.upsert_batch(request)
    assert failure.value.type == "FailedPrecondition" and failure.value.non_retryable
    assert "READ_ONLY_ENTITY" in str(failure.value)


async def test_a_malformed_cursor_is_invalid_argument(zenoti: ZenotiHarness) -> None:
    request = pb.FetchChangesRequest(config_id=zenoti.config_id, entity_type=MEMBERSHIP, cursor="{nope")
    with pytest.raises(ApplicationError) as failure:
        await zenoti.adapter.fetch_changes(request)
    assert failure.value.type == "InvalidArgument"
