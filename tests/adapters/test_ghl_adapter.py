"""The shared adapter suite, run against the GoHighLevel adapter: real sandbox over HTTP, real
registry and connection services over gRPC, real OAuth; then GHL specifics, the pacer, and one
run through the generic Temporal worker."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta

import httpx
import pytest
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from libs.grpc_client import call
from libs.protos.concord.adapter.v1 import adapter_pb2 as pb
from libs.protos.concord.common.v1 import common_pb2
from libs.protos.concord.connection.v1 import connection_pb2 as cpb
from libs.temporal import connect
from services.adapters import AdapterContext, task_queue
from services.adapters.ghl import GhlAdapter
from services.adapters.ghl.client import GhlPacer as Pacer
from services.adapters.worker import build_worker
from tests.adapters.conftest import PATIENT, AdapterHarness, GhlHarness, OpenHarness, plain, struct, write_calls

# --- the shared suite: every adapter passes these ------------------------------------------------


async def _fetch_all(harness: AdapterHarness, cursor: str = "", page_size: int = 100) -> tuple[list[str], str, int]:
    """Pages until has_more is false: (ids in order, the cursor after the last page, pages)."""
    ids: list[str] = []
    pages = 0
    while True:
        page = await harness.fetch(cursor, page_size)
        pages += 1
        assert len(page.records) <= page_size
        ids += [harness.record_id(plain(r)) for r in page.records]
        cursor = page.next_cursor
        if not page.has_more:
            return ids, cursor, pages
        assert pages < 100, "has_more never turned false"


def _assert_all_written(response: pb.UpsertBatchResponse, refs: list[str]) -> list[str]:
    assert [r.ref for r in response.results] == refs
    failed = [(r.ref, r.error_reason, r.error_message) for r in response.results if not r.success]
    assert failed == []
    ids = [r.external_id for r in response.results]
    assert all(ids) and len(set(ids)) == len(ids)
    return ids


async def test_pages_every_record_once_then_only_what_changed(harness: AdapterHarness) -> None:
    seeded = await harness.seed(250)

    ids, cursor, pages = await _fetch_all(harness, page_size=100)

    assert pages == 3
    assert len(ids) == 250 and set(ids) == set(seeded)
    edited = [seeded[7], seeded[130], seeded[249]]
    for external_id in edited:
        await harness.edit(external_id)
    changed, cursor, _ = await _fetch_all(harness, cursor, page_size=100)
    assert sorted(changed) == sorted(edited)
    assert (await _fetch_all(harness, cursor))[0] == []  # nothing new: nothing returned


async def test_retried_upsert_batch_creates_nothing_twice_and_linked_records_update_by_id(
    harness: AdapterHarness,
) -> None:
    records = harness.new_records(6)
    items = [(f"ref-{i}", "", record) for i, record in enumerate(records)]
    refs = [ref for ref, _, _ in items]

    first = await harness.upsert(items)
    ids = _assert_all_written(first, refs)
    assert all(r.created for r in first.results)
    assert [harness.record_id(plain(r.record)) for r in first.results] == ids
    retried = await harness.upsert(items)  # the activity retried after its result was lost
    assert _assert_all_written(retried, refs) == ids
    assert not any(r.created for r in retried.results)
    stored = await harness.stored()
    assert set(stored) == set(ids)

    linked = [
        (ref, external_id, harness.changed(record))
        for ref, external_id, record in zip(refs[:3], ids[:3], records[:3], strict=True)
    ]
    updated = await harness.upsert(linked)
    assert _assert_all_written(updated, refs[:3]) == ids[:3]
    assert not any(r.created for r in updated.results)
    stored = await harness.stored()
    assert set(stored) == set(ids)
    for (_, external_id, record), result in zip(linked, updated.results, strict=True):
        assert harness.changed_value(stored[external_id]) == harness.changed_value(record)
        assert harness.changed_value(plain(result.record)) == harness.changed_value(record)


@pytest.mark.token_refresh
async def test_expired_access_token_is_refreshed_once_and_the_call_succeeds(harness: AdapterHarness) -> None:
    seeded = await harness.seed(5)
    before = await harness.live_refresh_tokens()
    token_requests = await harness.token_requests()
    await harness.expire_access_tokens()

    ids, _, _ = await _fetch_all(harness)

    assert set(ids) == set(seeded)
    after = await harness.live_refresh_tokens()
    assert after and not before & after  # the refresh token rotated; the old one is dead
    connection = await call(harness.connections.GetConnection, cpb.GetConnectionRequest(config_id=harness.config_id))
    assert connection.connection.status == cpb.CONNECTION_STATUS_CONNECTED
    assert connection.connection.last_refresh_time.seconds > 0

    # Ten writes in flight all meet the 401 at once: one refresh serves them all.
    await harness.expire_access_tokens()
    token_requests = await harness.token_requests()
    items = [(f"ref-{i}", "", r) for i, r in enumerate(harness.new_records(10))]
    _assert_all_written(await harness.upsert(items), [ref for ref, _, _ in items])
    assert await harness.token_requests() == token_requests + 1


async def test_revoked_connection_fails_the_activity_without_retry(harness: AdapterHarness) -> None:
    await harness.revoke_tokens()
    for attempt in (harness.fetch(), harness.upsert([("ref-0", "", harness.new_records(1)[0])])):
        with pytest.raises(ApplicationError) as failure:
            await attempt
        assert failure.value.type == "NotConnected"
        assert failure.value.non_retryable


@pytest.mark.burst_limit
async def test_rate_limited_batch_waits_and_writes_every_record(open_harness: OpenHarness) -> None:
    # The vendor allows 5 requests per 0.5 s; ten writes go out at once before the adapter has
    # seen the vendor's limit headers, so some meet a 429 and wait their turn.
    harness = await open_harness(rate_limit=(5, 0.5))
    items = [(f"ref-{i}", "", r) for i, r in enumerate(harness.new_records(10))]

    written = await harness.upsert(items)

    ids = _assert_all_written(written, [ref for ref, _, _ in items])
    assert written.vendor_requests > write_calls(harness.vendor, len(items))  # refused requests were sent again
    assert set(await harness.stored()) == set(ids)


async def test_server_errors_are_retried_until_every_record_is_written(harness: AdapterHarness) -> None:
    seeded = await harness.seed(40)
    await harness.inject(server_error_rate=0.3)

    ids, _, _ = await _fetch_all(harness, page_size=10)
    items = [(f"ref-{i}", "", r) for i, r in enumerate(harness.new_records(10))]
    written = await harness.upsert(items)

    assert sorted(ids) == sorted(seeded)
    created = _assert_all_written(written, [ref for ref, _, _ in items])
    assert written.vendor_requests > write_calls(harness.vendor, len(items))
    assert set(await harness.stored()) == set(seeded) | set(created)


async def test_malformed_record_fails_alone_without_echoing_its_value(harness: AdapterHarness) -> None:
    good = harness.new_records(4)
    bad = harness.malformed(good[1]) + harness.malformed(good[2])
    items = [("good-0", "", good[0]), ("good-3", "", good[3])]
    items += [(f"bad-{i}", "", record) for i, (record, _) in enumerate(bad)]

    written = await harness.upsert(items)

    results = {r.ref: r for r in written.results}
    assert results["good-0"].success and results["good-3"].success
    for i, (_, value) in enumerate(bad):
        failed = results[f"bad-{i}"]
        assert not failed.success
        assert failed.error_reason and failed.error_reason.isupper()
        assert failed.error_message
        assert value not in failed.error_message
        assert not failed.external_id
    assert set(await harness.stored()) == {results["good-0"].external_id, results["good-3"].external_id}


async def test_malformed_page_fails_the_activity_for_a_retry(harness: AdapterHarness) -> None:
    seeded = await harness.seed(30)
    await harness.inject(malformed_pages=True)

    with pytest.raises(ApplicationError) as failure:
        await harness.fetch(page_size=10)
    assert not failure.value.non_retryable

    await harness.clear_faults()  # the vendor recovers; Temporal's retry of the same request succeeds
    ids, _, _ = await _fetch_all(harness, page_size=10)
    assert sorted(ids) == sorted(seeded)


async def test_requests_the_adapter_cannot_serve_fail_without_retry(harness: AdapterHarness) -> None:
    bad_requests = [
        pb.FetchChangesRequest(config_id=harness.config_id, entity_type=common_pb2.ENTITY_TYPE_UNSPECIFIED),
        pb.FetchChangesRequest(config_id=harness.config_id, entity_type=PATIENT, cursor="{not json"),
    ]
    for request in bad_requests:
        with pytest.raises(ApplicationError) as failure:
            await harness.adapter.fetch_changes(request)
        assert failure.value.non_retryable
    with pytest.raises(ApplicationError) as failure:
        await harness.adapter.fetch_changes(pb.FetchChangesRequest(config_id="no-such-config", entity_type=PATIENT))
    assert failure.value.non_retryable


async def test_check_health(harness: AdapterHarness) -> None:
    healthy = await harness.adapter.check_health(pb.CheckHealthRequest(config_id=harness.config_id))
    assert healthy.healthy
    await harness.revoke_tokens()
    revoked = await harness.adapter.check_health(pb.CheckHealthRequest(config_id=harness.config_id))
    assert not revoked.healthy and revoked.detail


# --- GoHighLevel specifics -------------------------------------------------------------------------


async def test_ghl_update_by_id_leaves_out_fields_put_refuses(ghl: GhlHarness) -> None:
    record = ghl.new_records(1)[0]
    created = await ghl.upsert([("ref-0", "", record)])
    contact_id = _assert_all_written(created, ["ref-0"])[0]

    # UpdateContactDto has no gender or companyName: GHL answers 422 if they are sent.
    changed = {**record, "city": "Salem", "gender": "male", "companyName": "Harbor Clinic"}
    updated = await ghl.upsert([("ref-0", contact_id, changed)])

    _assert_all_written(updated, ["ref-0"])
    stored = (await ghl.stored())[contact_id]
    assert stored["city"] == "Salem"
    assert stored["gender"] == "female"
    # A field GHL does not know at all is still refused, not silently dropped.
    unknown = await ghl.upsert([("ref-0", contact_id, {**record, "favouriteColour": "teal"})])
    assert not unknown.results[0].success
    assert unknown.results[0].error_reason == "VENDOR_REJECTED"


async def test_ghl_error_messages_never_carry_record_values(ghl: GhlHarness) -> None:
    """GHL's validation messages name fields; should one ever quote a value, it is cut out."""
    record = ghl.new_records(1)[0]

    def echoing(request: httpx.Request) -> httpx.Response:
        return httpx.Response(422, json={"statusCode": 422, "message": [f"email {record['email']} is not valid"]})

    adapter = GhlAdapter(
        AdapterContext(ghl.settings, ghl.connections), http=httpx.AsyncClient(transport=httpx.MockTransport(echoing))
    )
    try:
        written = await adapter.upsert_batch(
            pb.UpsertBatchRequest(
                config_id=ghl.config_id, entity_type=PATIENT, items=[pb.UpsertItem(ref="r", record=struct(record))]
            )
        )
    finally:
        await adapter.aclose()

    result = written.results[0]
    assert not result.success and result.error_reason == "VENDOR_REJECTED"
    assert record["email"] not in result.error_message
    assert result.error_message.startswith("email ")


def _contact(contact_id: str, updated: str) -> dict:
    return {"id": contact_id, "dateUpdated": updated, "searchAfter": [1, contact_id]}


MALFORMED_PAGES = {
    "no list": {"contacts": "none"},
    "no id": {"contacts": [{"dateUpdated": "2024-01-01T00:00:00.000Z", "searchAfter": [1, "x"]}]},
    "no cursor": {"contacts": [{**_contact("a", "2024-01-01T00:00:00.000Z"), "searchAfter": None}]},
    "null in cursor": {"contacts": [{**_contact("a", "2024-01-01T00:00:00.000Z"), "searchAfter": [None, "a"]}]},
    "bad date": {"contacts": [{**_contact("a", "2024-01-01T00:00:00.000Z"), "dateUpdated": "yesterday"}]},
    "out of order": {"contacts": [_contact("a", "2024-01-02T00:00:00.000Z"), _contact("b", "2024-01-01T00:00:00Z")]},
    "more than asked": {"contacts": [_contact(str(i), "2024-01-01T00:00:00.000Z") for i in range(3)]},
    "not an object": ["contacts"],
}


async def test_ghl_malformed_search_pages_fail_the_activity_for_a_retry(ghl: GhlHarness) -> None:
    for name, page in MALFORMED_PAGES.items():
        answer = httpx.MockTransport(lambda request, page=page: httpx.Response(200, json=page))
        adapter = GhlAdapter(AdapterContext(ghl.settings, ghl.connections), http=httpx.AsyncClient(transport=answer))
        try:
            with pytest.raises(ApplicationError) as failure:
                await adapter.fetch_changes(
                    pb.FetchChangesRequest(config_id=ghl.config_id, entity_type=PATIENT, page_size=2)
                )
        finally:
            await adapter.aclose()
        assert failure.value.type == "VendorMalformedPage", name
        assert not failure.value.non_retryable, name


async def test_ghl_network_errors_are_retried_within_the_activity(ghl: GhlHarness) -> None:
    calls = 0

    def flaky(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls <= 2:
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(200, json={"contacts": [_contact("a", "2024-01-01T00:00:00.000Z")], "total": 1})

    adapter = GhlAdapter(
        AdapterContext(ghl.settings, ghl.connections),
        http=httpx.AsyncClient(transport=httpx.MockTransport(flaky)),
        backoff_seconds=0.001,
    )
    try:
        page = await adapter.fetch_changes(pb.FetchChangesRequest(config_id=ghl.config_id, entity_type=PATIENT))
    finally:
        await adapter.aclose()
    assert [plain(r)["id"] for r in page.records] == ["a"]
    assert page.vendor_requests == 3
    assert json.loads(page.next_cursor) == {"search_after": [1, "a"]}


# --- the pacer --------------------------------------------------------------------------------------


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


async def test_pacer_admits_at_most_limit_per_interval_and_waits_no_longer_than_needed() -> None:
    time = FakeTime()
    pacer = Pacer(limit=5, interval=1.0, clock=time.clock, sleep=time.sleep)
    admitted: list[float] = []

    async def one() -> None:
        await pacer.acquire()
        admitted.append(time.now)

    await asyncio.gather(*(one() for _ in range(23)))

    assert len(admitted) == 23
    for start in admitted:
        assert sum(1 for t in admitted if start <= t < start + pacer.interval) <= pacer.limit
    assert admitted[-1] - admitted[0] == pytest.approx(4.0)  # 23 at 5 a second: 0, 1, 2, 3, 4
    assert pacer.waited_seconds == pytest.approx(sum(time.slept))


def test_pacer_follows_the_limit_the_vendor_announces() -> None:
    pacer = Pacer(limit=95, interval=10.0)
    pacer.follow(httpx.Headers({"X-RateLimit-Max": "100", "X-RateLimit-Interval-Milliseconds": "10000"}))
    assert (pacer.limit, pacer.interval) == (95, 10.0)
    pacer.follow(httpx.Headers({"X-RateLimit-Max": "5", "X-RateLimit-Interval-Milliseconds": "500"}))
    assert (pacer.limit, pacer.interval) == (4, 0.5)
    pacer.follow(httpx.Headers({"X-RateLimit-Max": "garbage"}))
    assert (pacer.limit, pacer.interval) == (4, 0.5)


# --- through the generic Temporal worker ------------------------------------------------------------


@workflow.defn(name="AdapterSuiteWorkflow")
class AdapterSuiteWorkflow:
    """Calls the adapter's activities by name on its task queue, as the sync workflows do."""

    @workflow.run
    async def run(self, args: list[str]) -> list[dict]:
        vendor, config_id = args
        options = {
            "task_queue": task_queue(vendor),
            "start_to_close_timeout": timedelta(seconds=30),
            "retry_policy": RetryPolicy(initial_interval=timedelta(milliseconds=50), maximum_attempts=3),
        }
        health = await workflow.execute_activity(
            "check_health", pb.CheckHealthRequest(config_id=config_id), result_type=pb.CheckHealthResponse, **options
        )
        if not health.healthy:
            raise ApplicationError(f"unhealthy: {health.detail}", non_retryable=True)
        records: list[dict] = []
        cursor = ""
        while True:
            page = await workflow.execute_activity(
                "fetch_changes",
                pb.FetchChangesRequest(config_id=config_id, entity_type=PATIENT, cursor=cursor, page_size=20),
                result_type=pb.FetchChangesResponse,
                **options,
            )
            records += [plain(r) for r in page.records]
            cursor = page.next_cursor
            if not page.has_more:
                return records


async def test_generic_worker_serves_the_adapter_on_its_task_queue(
    harness: AdapterHarness, temporal_binary: str
) -> None:
    seeded = await harness.seed(45)
    async with await WorkflowEnvironment.start_local(dev_server_existing_path=temporal_binary, ui=False) as env:
        # The production client: encrypted payloads and tracing, as `python -m services.adapters` uses.
        target = env.client.service_client.config.target_host
        client = await connect(harness.settings.model_copy(update={"temporal_address": target}))
        adapter_worker = build_worker(harness.vendor, harness.settings, client)
        serving = asyncio.create_task(adapter_worker.run())
        suite_queue = f"adapter-suite-{uuid.uuid4().hex}"
        try:
            async with Worker(
                client,
                task_queue=suite_queue,
                workflows=[AdapterSuiteWorkflow],
                workflow_runner=UnsandboxedWorkflowRunner(),
            ):
                records = await client.execute_workflow(
                    AdapterSuiteWorkflow.run,
                    [harness.vendor, harness.config_id],
                    id=f"adapter-suite-{uuid.uuid4().hex}",
                    task_queue=suite_queue,
                    execution_timeout=timedelta(seconds=60),
                )
        finally:
            await adapter_worker.shutdown()
            await serving
    ids = [harness.record_id(r) for r in records]
    assert len(ids) == 45 and set(ids) == set(seeded)
