"""GoHighLevel specifics beyond the shared suite (test_shared_suite.py): real sandbox over HTTP,
real registry and connection services over gRPC, real OAuth; the pacer; and one run of every
vendor through the generic Temporal worker."""

from __future__ import annotations

import asyncio
import base64
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

from libs.protos.concord.adapter.v1 import adapter_pb2 as pb
from libs.temporal import connect
from services.adapters import AdapterContext, task_queue
from services.adapters.ghl import GhlAdapter
from services.adapters.ghl.client import GhlPacer as Pacer
from services.adapters.worker import build_worker
from tests.adapters.conftest import PATIENT, AdapterHarness, plain, struct
from tests.adapters.harness_ghl import GhlHarness
from tests.adapters.test_shared_suite import assert_all_written

# --- GoHighLevel specifics -------------------------------------------------------------------------


async def test_ghl_update_by_id_leaves_out_fields_put_refuses(ghl: GhlHarness) -> None:
    record = ghl.new_records(1)[0]
    created = await ghl.upsert([("ref-0", "", record)])
    contact_id = assert_all_written(created, ["ref-0"])[0]

    # UpdateContactDto has no gender or companyName: GHL answers 422 if they are sent.
    changed = {**record, "city": "Salem", "gender": "male", "companyName": "Harbor Clinic"}
    updated = await ghl.upsert([("ref-0", contact_id, changed)])

    assert_all_written(updated, ["ref-0"])
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


# --- by id, deletes, webhooks (the inbox's capabilities) ---------------------------------------------


async def test_records_by_id_are_read_as_they_are_now_and_missing_ones_named(ghl: GhlHarness) -> None:
    seeded = await ghl.seed(3)
    await ghl.edit(seeded[1])
    gone = "zzzzzzzzzzzzzzzzzzzz"
    found = await ghl.adapter.get_records(
        pb.GetRecordsRequest(config_id=ghl.config_id, entity_type=PATIENT, external_ids=[*seeded, gone, seeded[0]])
    )
    records = {r["id"]: r for r in map(plain, found.records)}
    assert list(records) == seeded and list(found.missing_ids) == [gone]
    assert records[seeded[1]]["city"] == "Edited Springs"
    stored = await ghl.stored()
    assert all(records[i]["dateUpdated"] == stored[i]["dateUpdated"] for i in seeded)
    assert found.vendor_requests == 4  # one GET each, the repeated id once


async def test_deletes_remove_the_contact_and_a_retry_is_harmless(ghl: GhlHarness) -> None:
    seeded = await ghl.seed(2)
    request = pb.DeleteRecordsRequest(config_id=ghl.config_id, entity_type=PATIENT, external_ids=[seeded[0]])
    for _ in range(2):  # the second is the activity retried after its answer was lost
        deleted = await ghl.adapter.delete_records(request)
        assert [(r.external_id, r.success) for r in deleted.results] == [(seeded[0], True)]
    assert set(await ghl.stored()) == {seeded[1]}


async def test_a_webhook_is_verified_with_ghls_key_and_parsed_into_the_events_concord_syncs(ghl: GhlHarness) -> None:
    signer = ghl.sandbox.webhooks.signer
    settings = ghl.settings.model_copy(update={"ghl_webhook_public_key": signer.public_pem})
    adapter = GhlAdapter(AdapterContext(settings, ghl.connections))
    try:
        event = {"type": "ContactUpdate", "webhookId": "w-1", "locationId": ghl.location_id, "id": "c-1", "city": "X"}
        body = json.dumps(event, separators=(",", ":")).encode()
        genuine = await adapter.verify_webhook(
            pb.VerifyWebhookRequest(headers={"x-wh-signature": signer.sign(body)}, body=body)
        )
        assert genuine.valid and genuine.external_account_id == ghl.location_id
        assert [(e.event_id, e.external_id, e.entity_type, e.deleted) for e in genuine.events] == [
            ("w-1", "c-1", PATIENT, False)
        ]
        tampered = body.replace(b'"X"', b'"Y"')
        for headers, payload in (
            ({"x-wh-signature": signer.sign(body)}, tampered),  # the body changed after signing
            ({"x-wh-signature": base64.b64encode(b"\x00" * 256).decode()}, body),  # a forged signature
            ({"x-wh-signature": "not base64!"}, body),
            ({}, body),
        ):
            refused = await adapter.verify_webhook(pb.VerifyWebhookRequest(headers=headers, body=payload))
            assert (refused.valid, refused.reason, list(refused.events)) == (False, "BAD_SIGNATURE", [])
        # Not one of Concord's events: valid, nothing to do.
        other = json.dumps({"type": "INSTALL", "webhookId": "w-2", "locationId": ghl.location_id}).encode()
        ignored = await adapter.verify_webhook(
            pb.VerifyWebhookRequest(headers={"x-wh-signature": signer.sign(other)}, body=other)
        )
        assert ignored.valid and list(ignored.events) == []
    finally:
        await adapter.aclose()
    # Without GHL's key configured, nothing is believed.
    unconfigured = await ghl.adapter.verify_webhook(
        pb.VerifyWebhookRequest(headers={"x-wh-signature": signer.sign(body)}, body=body)
    )
    assert (unconfigured.valid, unconfigured.reason) == (False, "WEBHOOK_KEY_NOT_CONFIGURED")
