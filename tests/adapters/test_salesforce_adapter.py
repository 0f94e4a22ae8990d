"""Salesforce specifics, beyond the shared suite: sObject Collections (one call per 200 records),
the (SystemModstamp, Id) cursor with whole-second ties, the settle horizon, the daily API allowance
(slow down, stop, REQUEST_LIMIT_EXCEEDED), INVALID_SESSION_ID, and what Salesforce's answers may
carry into results (field names, never values)."""

from __future__ import annotations

import asyncio
import email.utils
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from temporalio.exceptions import ApplicationError

from libs.protos.concord.adapter.v1 import adapter_pb2 as pb
from libs.settings import Settings
from services.adapters import AdapterContext
from services.adapters.salesforce import SalesforceAdapter
from services.adapters.salesforce.client import Allowance, AllowancePolicy
from tests.adapters.conftest import PATIENT, _harnesses, plain, struct
from tests.adapters.harness_salesforce import (
    COMPOSITE_ROUTE,
    EXTERNAL_ID,
    QUERY_ROUTE,
    UPDATE_ROUTE,
    UPSERT_ROUTE,
    SalesforceHarness,
)

T0 = datetime(2024, 5, 20, 20, 49, 32, tzinfo=UTC)


@pytest.fixture
async def sf(settings: Settings) -> AsyncIterator[SalesforceHarness]:
    async with _harnesses("salesforce", settings) as open_one:
        harness = await open_one()
        assert isinstance(harness, SalesforceHarness)
        yield harness


@pytest.fixture
async def adapters(sf: SalesforceHarness) -> AsyncIterator[Callable[..., SalesforceAdapter]]:
    """Adapters with their own options (or HTTP transport), on the harness's connection."""
    made: list[SalesforceAdapter] = []

    def make(**options: object) -> SalesforceAdapter:
        adapter = SalesforceAdapter(AdapterContext(sf.settings, sf.connections), **{"backoff_seconds": 0.01, **options})
        made.append(adapter)
        return adapter

    yield make
    for adapter in made:
        await adapter.aclose()


def _items(records: list[dict], linked: list[str] | None = None, prefix: str = "ref") -> list[pb.UpsertItem]:
    ids = linked or [""] * len(records)
    return [
        pb.UpsertItem(ref=f"{prefix}-{i}", external_id=eid, record=struct(r))
        for i, (r, eid) in enumerate(zip(records, ids, strict=True))
    ]


async def _upsert(
    adapter: SalesforceAdapter, sf: SalesforceHarness, items: list[pb.UpsertItem]
) -> pb.UpsertBatchResponse:
    return await adapter.upsert_batch(pb.UpsertBatchRequest(config_id=sf.config_id, entity_type=PATIENT, items=items))


async def _fetch(adapter: SalesforceAdapter, sf: SalesforceHarness, cursor: str = "", page_size: int = 100):  # noqa: ANN202
    return await adapter.fetch_changes(
        pb.FetchChangesRequest(config_id=sf.config_id, entity_type=PATIENT, cursor=cursor, page_size=page_size)
    )


# --- writes: sObject Collections ---------------------------------------------------------------------


async def test_450_records_are_written_in_three_collection_calls_and_a_retry_duplicates_none(
    sf: SalesforceHarness,
) -> None:
    items = _items(sf.new_records(450))
    calls = await sf.requests(UPSERT_ROUTE)

    written = await sf.upsert([(i.ref, "", plain(i.record)) for i in items])

    assert await sf.requests(UPSERT_ROUTE) == calls + 3
    assert written.vendor_requests == 3
    assert [r.ref for r in written.results] == [i.ref for i in items]
    assert all(r.success and r.created for r in written.results)
    ids = [r.external_id for r in written.results]
    assert len(set(ids)) == 450
    retried = await sf.upsert([(i.ref, "", plain(i.record)) for i in items])
    assert [r.external_id for r in retried.results] == ids
    assert not any(r.created for r in retried.results)
    assert await sf.requests(UPSERT_ROUTE) == calls + 6
    stored = await sf.stored()
    assert set(stored) == set(ids)
    assert {a[EXTERNAL_ID] for a in stored.values()} == {plain(i.record)[EXTERNAL_ID] for i in items}


async def test_new_and_linked_records_share_calls_and_linked_ones_get_the_hub_id(sf: SalesforceHarness) -> None:
    seeded = await sf.seed(150)  # made in Salesforce, linked by the hub after a pull: no hub id there yet
    linked = [
        {**r, "FirstName": f"Linked{i}", EXTERNAL_ID: f"hub-linked-{i}"} for i, r in enumerate(sf.new_records(150))
    ]
    new = sf.new_records(250)[150:]
    # Interleaved, as the outbox hands them over.
    entries = [(f"l{i}", seeded[i], linked[i]) for i in range(150)] + [(f"n{i}", "", r) for i, r in enumerate(new)]
    entries = [e for pair in zip(entries[:100], entries[150:], strict=True) for e in pair] + entries[100:150]
    before = {route: await sf.requests(route) for route in (UPSERT_ROUTE, UPDATE_ROUTE, COMPOSITE_ROUTE)}

    written = await sf.upsert(entries)

    # 250 records: a Composite call with 100 upserts and 100 updates, then a collection of 50 updates.
    assert written.vendor_requests == 2
    assert {route: await sf.requests(route) - n for route, n in before.items()} == {
        UPSERT_ROUTE: 0,
        COMPOSITE_ROUTE: 1,
        UPDATE_ROUTE: 1,
    }
    results = {r.ref: r for r in written.results}
    assert [r.ref for r in written.results] == [ref for ref, _, _ in entries]
    assert all(r.success for r in written.results)
    assert [results[f"l{i}"].external_id for i in range(150)] == seeded
    assert not any(results[f"l{i}"].created for i in range(150))
    assert all(results[f"n{i}"].created for i in range(100))
    stored = await sf.stored()
    assert len(stored) == 250
    assert stored[seeded[7]][EXTERNAL_ID] == "hub-linked-7" and stored[seeded[7]]["FirstName"] == "Linked7"
    # The hub id now on the record makes a later upsert of it (a link lost and rebuilt) idempotent.
    again = await sf.upsert([("again", "", linked[7])])
    assert again.results[0].external_id == seeded[7] and not again.results[0].created


async def test_a_record_without_the_hub_id_fails_alone_and_costs_no_call(sf: SalesforceHarness) -> None:
    good, orphan = sf.new_records(2)
    orphan.pop(EXTERNAL_ID)

    written = await sf.upsert([("good", "", good), ("orphan", "", orphan)])

    assert written.vendor_requests == 1
    assert written.results[0].success
    assert (written.results[1].success, written.results[1].error_reason) == (False, "MISSING_EXTERNAL_ID")
    assert len(await sf.stored()) == 1


async def test_refusals_carry_salesforce_codes_and_field_names_never_values(
    sf: SalesforceHarness, adapters: Callable[..., SalesforceAdapter]
) -> None:
    records = sf.new_records(3)
    answers = {
        "records": [
            {
                "success": False,
                "errors": [
                    {
                        "statusCode": "INVALID_EMAIL_ADDRESS",
                        "message": f"Email: invalid email address: {records[0]['PersonEmail']}",
                        "fields": ["PersonEmail"],
                    }
                ],
            },
            {
                "success": False,
                "errors": [
                    {
                        "statusCode": "INVALID_FIELD",
                        "message": f"No such column 'PersonMailingCity' on sobject of type Account: {records[1]['LastName']}",
                        "fields": [],
                    }
                ],
            },
            {"id": "001000000000003AAA", "success": True, "errors": [], "created": True},
        ]
    }

    def collections(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=answers["records"])

    adapter = adapters(http=httpx.AsyncClient(transport=httpx.MockTransport(collections)))
    written = await _upsert(adapter, sf, _items(records))

    first, second, third = written.results
    assert (first.error_reason, first.error_message) == (
        "INVALID_EMAIL_ADDRESS",
        "Salesforce refused the record: INVALID_EMAIL_ADDRESS on PersonEmail",
    )
    assert (second.error_reason, second.error_message) == (
        "INVALID_FIELD",
        "Salesforce refused the record: INVALID_FIELD on PersonMailingCity",
    )
    assert third.success and third.created and plain(third.record)["Id"] == "001000000000003AAA"

    def refused(request: httpx.Request) -> httpx.Response:
        body = [{"errorCode": "JSON_PARSER_ERROR", "message": f"Cannot deserialize {records[2]['PersonEmail']}"}]
        return httpx.Response(400, json=body)

    adapter = adapters(http=httpx.AsyncClient(transport=httpx.MockTransport(refused)))
    written = await _upsert(adapter, sf, _items(records))
    assert {(r.success, r.error_reason) for r in written.results} == {(False, "JSON_PARSER_ERROR")}
    assert not any(records[2]["PersonEmail"] in r.error_message for r in written.results)


# --- reads: the (SystemModstamp, Id) cursor ----------------------------------------------------------


async def test_records_sharing_a_systemmodstamp_are_paged_without_loss_or_repeat(sf: SalesforceHarness) -> None:
    seeded = await sf.seed(23)  # one second: 23 records with one SystemModstamp
    pages, ids, cursor = 0, [], ""
    while True:
        page = await sf.fetch(cursor, page_size=5)
        pages += 1
        records = [plain(r) for r in page.records]
        ids += [r["Id"] for r in records]
        assert len({r["SystemModstamp"] for r in records}) <= 1
        cursor = page.next_cursor
        if not page.has_more:
            break

    assert pages == 5
    assert ids == sorted(seeded)  # every one once, in Id order within the second
    assert json.loads(cursor)["after"]["Id"] == max(seeded)

    # The next second: new records, and an old one edited (its Id sorts before the cursor's).
    newer = await sf.seed(4)
    await sf.edit(min(seeded))
    changed = await sf.fetch(cursor, page_size=10)
    assert sorted(plain(r)["Id"] for r in changed.records) == sorted([*newer, min(seeded)])
    assert not changed.has_more
    assert list((await sf.fetch(changed.next_cursor)).records) == []


def _record(record_id: str, modstamp: datetime) -> dict:
    stamp = modstamp.strftime("%Y-%m-%dT%H:%M:%S.000+0000")
    return {
        "attributes": {"type": "Account", "url": f"/services/data/v60.0/sobjects/Account/{record_id}"},
        "Id": record_id,
        "LastName": "Settled",
        "SystemModstamp": stamp,
    }


def _query_page(records: list[dict], now: datetime, **extra: object) -> httpx.Response:
    body = {"totalSize": len(records), "done": True, "records": records, **extra}
    return httpx.Response(200, json=body, headers={"Date": email.utils.format_datetime(now, usegmt=True)})


async def test_records_of_a_second_not_yet_settled_wait_for_the_next_page(
    sf: SalesforceHarness, adapters: Callable[..., SalesforceAdapter]
) -> None:
    a, b, c = "001000000000001AAA", "001000000000002AAA", "001000000000003AAA"
    answers = [
        # The server's clock says T0: records of T0 - 1 s and T0 may still be joined by others.
        _query_page(
            [_record(a, T0 - timedelta(seconds=10)), _record(b, T0 - timedelta(seconds=1)), _record(c, T0)], T0
        ),
        _query_page([_record(b, T0 - timedelta(seconds=1)), _record(c, T0)], T0 + timedelta(seconds=5)),
    ]
    queries: list[str] = []

    def query(request: httpx.Request) -> httpx.Response:
        queries.append(parse_qs(urlsplit(str(request.url)).query)["q"][0])
        return answers.pop(0)

    adapter = adapters(http=httpx.AsyncClient(transport=httpx.MockTransport(query)))
    first = await _fetch(adapter, sf, page_size=3)
    assert [plain(r)["Id"] for r in first.records] == [a]
    assert not first.has_more  # what is left is not settled yet: this run is done
    assert "attributes" not in plain(first.records[0])
    second = await _fetch(adapter, sf, first.next_cursor, page_size=3)
    assert [plain(r)["Id"] for r in second.records] == [b, c]
    assert queries[0] == (
        "SELECT Id, FirstName, LastName, PersonEmail, PersonBirthdate, PersonMobilePhone, PersonHomePhone, "
        "PersonMailingStreet, PersonMailingCity, PersonMailingState, PersonMailingPostalCode, PersonMailingCountry, "
        "PersonGenderIdentity, Concord_Patient_Id__c, LastModifiedDate, SystemModstamp FROM Account "
        "WHERE IsPersonAccount = true ORDER BY SystemModstamp, Id LIMIT 3"
    )
    assert queries[1].endswith(
        "WHERE IsPersonAccount = true AND (SystemModstamp > 2024-05-20T20:49:22Z OR "
        f"(SystemModstamp = 2024-05-20T20:49:22Z AND Id > '{a}')) ORDER BY SystemModstamp, Id LIMIT 3"
    )


async def test_a_short_batch_is_completed_through_next_records_url(
    sf: SalesforceHarness, adapters: Callable[..., SalesforceAdapter]
) -> None:
    old = T0 - timedelta(hours=1)
    records = [_record(f"00100000000000{i}AAA", old) for i in range(1, 4)]
    paths: list[str] = []

    def query(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.path)
        if request.url.path.endswith("/query"):
            return _query_page(records[:2], T0, done=False, nextRecordsUrl="/services/data/v60.0/query/01gXX-2")
        return _query_page(records[2:], T0)

    adapter = adapters(http=httpx.AsyncClient(transport=httpx.MockTransport(query)))
    page = await _fetch(adapter, sf, page_size=3)
    assert [plain(r)["Id"] for r in page.records] == [r["Id"] for r in records]
    assert page.has_more and page.vendor_requests == 2
    assert paths[1] == "/services/data/v60.0/query/01gXX-2"


MALFORMED = {
    "no records": {"done": True},
    "not an object": [],
    "no id": {"done": True, "records": [{"SystemModstamp": "2024-01-01T00:00:00.000+0000"}]},
    "no modstamp": {"done": True, "records": [{"Id": "001000000000001AAA"}]},
    "out of order": {
        "done": True,
        "records": [
            _record("001000000000002AAA", T0 - timedelta(hours=1)),
            _record("001000000000001AAA", T0 - timedelta(hours=1)),
        ],
    },
    "more than the limit": {"done": True, "records": [_record(f"00100000000000{i}AAA", T0) for i in range(1, 4)]},
    "more without a link": {"done": False, "records": []},
    "not json": b"<html>Service Unavailable</html>",
}


async def test_malformed_query_answers_fail_the_activity_for_a_retry(
    sf: SalesforceHarness, adapters: Callable[..., SalesforceAdapter]
) -> None:
    for name, body in MALFORMED.items():
        answer = httpx.MockTransport(
            lambda request, body=body: httpx.Response(200, **{"content" if isinstance(body, bytes) else "json": body})
        )
        adapter = adapters(http=httpx.AsyncClient(transport=answer))
        with pytest.raises(ApplicationError) as failure:
            await _fetch(adapter, sf, page_size=2)
        assert failure.value.type == "VendorMalformedPage", name
        assert not failure.value.non_retryable, name
    # A record at or before the cursor means the query was not what we asked for.
    cursor = json.dumps({"after": {"SystemModstamp": "2023-01-01T00:00:00Z", "Id": "001000000000005AAA"}})
    behind = httpx.MockTransport(
        lambda r: _query_page([_record("001000000000004AAA", datetime(2023, 1, 1, tzinfo=UTC))], T0)
    )
    with pytest.raises(ApplicationError) as failure:
        await _fetch(adapters(http=httpx.AsyncClient(transport=behind)), sf, cursor)
    assert failure.value.type == "VendorMalformedPage"
    for bad in ('{"after": {"SystemModstamp": "2024-01-01T00:00:00Z", "Id": "x\' OR Id != \'"}}', '{"after": 1}', "[]"):
        with pytest.raises(ApplicationError) as failure:
            await sf.fetch(bad)
        assert failure.value.non_retryable and failure.value.type == "InvalidArgument"


# --- the daily API allowance --------------------------------------------------------------------------


async def test_near_the_daily_allowance_the_adapter_slows_down_then_stops_before_it_runs_out(
    sf: SalesforceHarness, adapters: Callable[..., SalesforceAdapter]
) -> None:
    await sf.seed(20)
    await sf.set_daily_limit(100)
    sf.use_allowance(80)  # the org's users and other integrations have spent 80 of 100 calls today
    # Over a 2-second window instead of 24 hours: with 14 calls left before 95 %, one every ~0.14 s.
    policy = AllowancePolicy(window_seconds=2.0)
    adapter = adapters(allowance=policy)
    allowance = adapter.allowances(sf.sandbox.orgs[sf.org_id].instance_url)

    ids, cursor, calls = [], "", 0
    while True:
        page = await _fetch(adapter, sf, cursor, page_size=5)
        ids += [plain(r)["Id"] for r in page.records]
        calls += page.vendor_requests
        cursor = page.next_cursor
        if not page.has_more:
            break
    assert len(ids) == 20 and calls == 5
    assert allowance.used == 85 and allowance.max == 100
    # The calls after the first two waited their turn: one window spread over what is left before 95 %.
    assert allowance.waited_seconds > 0.25

    sf.use_allowance(9)  # 94 used: the next call still goes, and its answer says 95
    assert list((await _fetch(adapter, sf, cursor)).records) == []
    queries = await sf.requests(QUERY_ROUTE)
    for attempt in (_fetch(adapter, sf, cursor), _upsert(adapter, sf, _items(sf.new_records(2)))):
        with pytest.raises(ApplicationError) as failure:
            await attempt
        assert failure.value.type == "VendorAllowanceLow" and not failure.value.non_retryable
        assert failure.value.next_retry_delay is not None
        assert timedelta(minutes=14) < failure.value.next_retry_delay <= policy.backoff
    assert await sf.requests(QUERY_ROUTE) == queries  # nothing was sent
    assert len(await sf.stored()) == 20  # and no record was failed or written


async def test_request_limit_exceeded_fails_the_activity_for_a_much_later_retry(
    sf: SalesforceHarness, adapters: Callable[..., SalesforceAdapter]
) -> None:
    await sf.seed(3)
    await sf.inject_storm(1)
    with pytest.raises(ApplicationError) as failure:
        await sf.fetch()
    assert failure.value.type == "VendorRateLimited" and not failure.value.non_retryable
    assert failure.value.next_retry_delay == AllowancePolicy().backoff

    # The org's real allowance spent: a write fails as a whole, never record by record.
    adapter = adapters(allowance=AllowancePolicy(backoff=timedelta(0)))
    await sf.set_daily_limit(len(sf.sandbox.orgs[sf.org_id].api_calls))
    with pytest.raises(ApplicationError) as failure:
        await _upsert(adapter, sf, _items(sf.new_records(3)))
    assert failure.value.type == "VendorRateLimited"
    assert len(await sf.stored()) == 3
    # Once Salesforce has room again, Temporal's retry of the same activity goes through.
    await sf.set_daily_limit(100_000)
    written = await _upsert(adapter, sf, _items(sf.new_records(3)))
    assert all(r.success for r in written.results)


async def test_allowance_spreads_what_is_left_and_hands_long_waits_back_to_temporal() -> None:
    now = [1000.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds
        await asyncio.sleep(0)

    policy = AllowancePolicy(window_seconds=86_400.0, max_pause_seconds=30.0)
    allowance = Allowance(policy, clock=lambda: now[0], sleep=sleep)
    allowance.observe(httpx.Headers({"Sforce-Limit-Info": "api-usage=70000/100000"}))
    assert allowance.gap() == 0.0
    await allowance.admit()
    allowance.observe(
        httpx.Headers({"Sforce-Limit-Info": "api-usage=85000/100000; per-app-api-usage=17/250(appName=x)"})
    )
    assert allowance.gap() == pytest.approx(86_400 / 10_000)  # 10 000 calls left before 95 %: one every 8.64 s
    for _ in range(3):
        await allowance.admit()
    assert slept == pytest.approx([8.64, 8.64])
    allowance.observe(httpx.Headers({"Sforce-Limit-Info": "api-usage=94000/100000"}))  # one call every 86.4 s
    await allowance.admit()
    with pytest.raises(ApplicationError) as failure:
        await allowance.admit()
    assert failure.value.type == "VendorAllowanceLow"
    assert failure.value.next_retry_delay.total_seconds() == pytest.approx(86.4)


# --- sessions ---------------------------------------------------------------------------------------


async def test_invalid_session_id_refreshes_the_session_once_and_retries(
    sf: SalesforceHarness, adapters: Callable[..., SalesforceAdapter]
) -> None:
    await sf.seed(3)
    await sf.expire_access_tokens()
    tokens = await sf.token_requests()

    page = await sf.fetch()

    assert len(page.records) == 3 and page.vendor_requests == 2
    assert await sf.token_requests() == tokens + 1

    def always_expired(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json=[{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}])

    adapter = adapters(http=httpx.AsyncClient(transport=httpx.MockTransport(always_expired)))
    with pytest.raises(ApplicationError) as failure:
        await _fetch(adapter, sf)
    assert failure.value.type == "VendorUnauthorized" and not failure.value.non_retryable
    assert await sf.token_requests() == tokens + 2  # one forced refresh, not a loop


async def test_check_health_reports_the_daily_allowance(sf: SalesforceHarness) -> None:
    health = await sf.adapter.check_health(pb.CheckHealthRequest(config_id=sf.config_id))
    assert health.healthy and health.detail.startswith("ok; daily API usage 1/100000")
