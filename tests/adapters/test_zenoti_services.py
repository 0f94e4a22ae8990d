"""Zenoti's service catalog (ENTITY_TYPE_SERVICE) against the sandbox over real HTTP: full passes
paged back to front, nothing unchanged returned twice, a price change comes through, pushes refused
as READ_ONLY_ENTITY, malformed lists retried, malformed records rejected alone by the mapper."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from temporalio.exceptions import ApplicationError

from libs import fhir_service
from libs.protos.concord.adapter.v1 import adapter_pb2 as pb
from libs.protos.concord.common.v1 import common_pb2
from libs.settings import Settings
from services.mapping.domain import RecordInvalid
from services.mapping.mappers.zenoti_services import ZenotiServiceMapper
from tests.adapters.conftest import plain, response_statuses, struct
from tests.adapters.harness_zenoti import ZenotiHarness, fetch_failure, open_harness

SERVICE = common_pb2.ENTITY_TYPE_SERVICE


@pytest.fixture
async def zenoti(settings: Settings) -> AsyncIterator[ZenotiHarness]:
    async with contextlib.AsyncExitStack() as stack:
        http = await stack.enter_async_context(httpx.AsyncClient(timeout=10))
        yield await open_harness(stack, settings, http, None)


async def _fetch(zenoti: ZenotiHarness, cursor: str, size: int) -> pb.FetchChangesResponse:
    request = pb.FetchChangesRequest(config_id=zenoti.config_id, entity_type=SERVICE, cursor=cursor, page_size=size)
    return await zenoti.adapter.fetch_changes(request)


async def _pass(zenoti: ZenotiHarness, cursor: str, size: int) -> tuple[list[dict], str, int]:
    records: list[dict] = []
    calls = 0
    while True:
        page = await _fetch(zenoti, cursor, size)
        records += [plain(r) for r in page.records]
        calls += page.vendor_requests
        cursor = page.next_cursor
        if not page.has_more:
            return records, cursor, calls


async def test_a_pass_reads_the_whole_catalog_page_by_page_with_the_centers_prices(zenoti: ZenotiHarness) -> None:
    org = zenoti.org
    center = org.centers[zenoti.center_id]
    assert len(org.services) > 3
    records, cursor, calls = await _pass(zenoti, "", 3)
    assert sorted(r["id"] for r in records) == sorted(org.services)
    pages = -(-len(org.services) // 3)
    assert calls == pages + 1  # page 1 for the total, then back to front, page 1 again last
    assert json.loads(cursor)["since"]
    for record in records:
        service = org.services[record["id"]]
        expected = service.price(center)[0]
        assert record["price_info"]["sale_price"] == pytest.approx(expected)
        hub = ZenotiServiceMapper().to_hub(record)
        projected = fhir_service.project(hub.resource)
        assert hub.external_id == record["id"]
        # What a hub appointment names in serviceType to be booked at Zenoti.
        assert hub.resource["identifier"] == [{"system": "https://zenoti.com/service-id", "value": record["id"]}]
        assert projected["name"] == service.name and projected["service_code"] == service.code
        assert projected["category_code"] == service.category_id
        assert projected["category_name"] == org.categories[service.category_id].name
        assert projected["duration_minutes"] == str(service.duration)
        assert projected["price"] == f"{expected:.2f}" and projected["currency"] == "USD"


async def test_an_unchanged_catalog_returns_nothing_and_a_price_change_returns_that_service(
    zenoti: ZenotiHarness,
) -> None:
    _, cursor, _ = await _pass(zenoti, "", 100)
    again, cursor, calls = await _pass(zenoti, cursor, 100)
    assert again == [] and calls == 1
    # The spa changes a price in Zenoti's web app (the API has no catalog writes; the sandbox's memory
    # stands in for the web app).
    changed = sorted(zenoti.org.services)[0]
    zenoti.org.services[changed].base_price += 10
    records, _, _ = await _pass(zenoti, cursor, 100)
    assert [r["id"] for r in records] == [changed]


async def test_a_push_is_refused_as_read_only_without_a_vendor_call(zenoti: ZenotiHarness) -> None:
    record = {"name": "Peel", "code": "P1"}
    request = pb.UpsertBatchRequest(
        config_id=zenoti.config_id, entity_type=SERVICE, items=[pb.UpsertItem(ref="r1", record=struct(record))]
    )
    await zenoti._admin("POST", "/stats/reset")
    with pytest.raises(ApplicationError) as failure:
        await zenoti.adapter.upsert_batch(request)
    assert failure.value.type == "FailedPrecondition" and failure.value.non_retryable
    assert "READ_ONLY_ENTITY" in str(failure.value)
    stats = await zenoti._admin("GET", "/stats")
    assert [route for route in stats if "/services" in route] == []
    with pytest.raises(RecordInvalid) as refused:
        ZenotiServiceMapper().to_vendor(
            fhir_service.catalog_item(
                name="Peel",
                service_code="P1",
                category_code=None,
                category_name=None,
                duration_minutes=30,
                price=10,
                currency="USD",
            )
        )
    assert refused.value.errors[0].reason == "READ_ONLY_ENTITY"


MALFORMED = {
    "no page_info": {"services": []},
    "service without id": {"services": [{"name": "x"}], "page_info": {"total": 1, "page": 1, "size": 2}},
    "guests, not services": {"guests": [{"id": "a"}], "page_info": {"total": 1, "page": 1, "size": 2}},
}


async def test_malformed_service_lists_fail_the_activity_for_a_retry(zenoti: ZenotiHarness) -> None:
    for name, page in MALFORMED.items():
        failure = await fetch_failure(zenoti, json.dumps(page).encode(), SERVICE)
        assert failure.type == "VendorMalformedPage" and not failure.non_retryable, name


async def test_server_errors_are_retried_and_the_pass_completes(zenoti: ZenotiHarness) -> None:
    await zenoti.inject(server_error_rate=0.3)
    records, _, _ = await _pass(zenoti, "", 5)
    await zenoti.clear_faults()
    assert sorted(r["id"] for r in records) == sorted(zenoti.org.services)


async def test_a_pass_is_paced_under_the_organisations_limit(settings: Settings) -> None:
    """An organisation allowed 3 calls a second (the sandbox's Organization-RateLimit-Limit says so):
    the pacer adopts it and spreads a 5-call pass over more than one window, with no 429."""
    async with contextlib.AsyncExitStack() as stack:
        http = await stack.enter_async_context(httpx.AsyncClient(timeout=10))
        zenoti = await open_harness(stack, settings, http, (3, 1.0))
        statuses = response_statuses(zenoti.adapter)
        began = time.monotonic()
        records, _, calls = await _pass(zenoti, "", 2)
        assert calls > 3 and time.monotonic() - began >= 0.9  # the 4th call waited for the next window
        assert set(statuses) == {200}
        assert sorted(r["id"] for r in records) == sorted(zenoti.org.services)


async def test_a_rotated_api_key_fails_the_catalog_pull_as_not_connected(zenoti: ZenotiHarness) -> None:
    await zenoti.revoke_tokens()
    with pytest.raises(ApplicationError) as failure:
        await _fetch(zenoti, "", 10)
    assert failure.value.type == "NotConnected" and failure.value.non_retryable


async def test_a_429_storm_is_waited_out_and_the_pass_completes(settings: Settings) -> None:
    """Zenoti answers 429 (Retry-After: the window's reset, 1 s here) to the next two calls: the
    adapter waits them out and the pass still returns the whole catalog, once."""
    async with contextlib.AsyncExitStack() as stack:
        http = await stack.enter_async_context(httpx.AsyncClient(timeout=10))
        zenoti = await open_harness(stack, settings, http, (50, 1.0))
        statuses = response_statuses(zenoti.adapter)
        storm = await http.post(f"{zenoti.sandbox_url}/_sandbox/faults", json={"rate_limit_storm": 2})
        assert storm.status_code < 300, storm.text
        records, _, _ = await _pass(zenoti, "", 5)
        assert statuses.count(429) == 2 and statuses[-1] == 200
        assert sorted(r["id"] for r in records) == sorted(zenoti.org.services)
