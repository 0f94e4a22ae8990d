"""The shared adapter suite: every adapter passes these for every entity it syncs, against its own
sandbox over real HTTP, with the real registry and connection services over gRPC and the vendor's
real authentication (tests/adapters/conftest.py). Tests of an entity (paging, cursors, idempotent
writes, 429, 5xx, malformed records and pages) run per (vendor, entity); tests of the connection
(token refresh, revocation, health, refused requests) per vendor."""

from __future__ import annotations

import pytest
from temporalio.exceptions import ApplicationError

from libs.grpc_client import call
from libs.protos.concord.adapter.v1 import adapter_pb2 as pb
from libs.protos.concord.common.v1 import common_pb2
from libs.protos.concord.connection.v1 import connection_pb2 as cpb
from tests.adapters.conftest import (
    PATIENT,
    AdapterHarness,
    EntityCase,
    OpenCase,
    PatientCase,
    plain,
    response_statuses,
    write_calls,
)


async def fetch_all(case: EntityCase, cursor: str = "", page_size: int = 100) -> tuple[list[str], str, int]:
    """Pages until has_more is false: (ids in order, the cursor after the last page, pages)."""
    ids: list[str] = []
    pages = 0
    while True:
        page = await case.fetch(cursor, page_size)
        pages += 1
        assert len(page.records) <= page_size
        ids += [case.record_id(plain(r)) for r in page.records]
        cursor = page.next_cursor
        if not page.has_more:
            return ids, cursor, pages
        assert pages < 200, "has_more never turned false"


def assert_all_written(response: pb.UpsertBatchResponse, refs: list[str]) -> list[str]:
    assert [r.ref for r in response.results] == refs
    failed = [(r.ref, r.error_reason, r.error_message) for r in response.results if not r.success]
    assert failed == []
    ids = [r.external_id for r in response.results]
    assert all(ids) and len(set(ids)) == len(ids)
    return ids


# --- per (vendor, entity) -----------------------------------------------------------------------------


async def test_pages_every_record_once_then_only_what_changed(case: EntityCase) -> None:
    count, size = case.paging_records, case.paging_size
    seeded = await case.seed(count)

    ids, cursor, pages = await fetch_all(case, page_size=size)

    assert pages == case.expected_pages(count, size)
    assert len(ids) == count and set(ids) == set(seeded)
    edited = [seeded[i] for i in sorted({1, count // 2, count - 1})]
    for external_id in edited:
        await case.edit(external_id)
    changed, cursor, _ = await fetch_all(case, cursor, page_size=size)
    if case.full_passes:  # every pass returns every record, the edited ones as they are now
        assert sorted(changed) == sorted(seeded)
        assert sorted((await fetch_all(case, cursor, page_size=size))[0]) == sorted(seeded)
        return
    assert sorted(changed) == sorted(edited)
    assert (await fetch_all(case, cursor, page_size=size))[0] == []  # nothing new: nothing returned


@pytest.mark.writable
async def test_retried_upsert_batch_creates_nothing_twice_and_linked_records_update_by_id(case: EntityCase) -> None:
    records = case.new_records(6)
    items = [(f"ref-{i}", "", record) for i, record in enumerate(records)]
    refs = [ref for ref, _, _ in items]
    before = set(await case.stored())

    first = await case.upsert(items)
    ids = assert_all_written(first, refs)
    assert all(r.created for r in first.results)
    assert [case.record_id(plain(r.record)) for r in first.results] == ids
    retried = await case.upsert(items)  # the activity retried after its result was lost
    assert assert_all_written(retried, refs) == ids
    assert not any(r.created for r in retried.results)
    assert set(await case.stored()) == before | set(ids)

    linked = [
        (ref, external_id, case.changed(record))
        for ref, external_id, record in zip(refs[:3], ids[:3], records[:3], strict=True)
    ]
    updated = await case.upsert(linked)
    assert assert_all_written(updated, refs[:3]) == ids[:3]
    assert not any(r.created for r in updated.results)
    stored = await case.stored()
    assert set(stored) == before | set(ids)
    for (_, external_id, record), result in zip(linked, updated.results, strict=True):
        assert case.changed_value(stored[external_id]) == case.changed_value(record)
        assert case.changed_value(plain(result.record)) == case.changed_value(record)


@pytest.mark.writable
@pytest.mark.burst_limit
async def test_rate_limited_batch_waits_and_writes_every_record(open_case: OpenCase) -> None:
    # The vendor allows 5 requests per 0.5 s; ten writes go out at once before the adapter has
    # seen the vendor's limit headers, so some meet a 429 and wait their turn.
    case = await open_case(rate_limit=(5, 0.5))
    before = set(await case.stored())
    items = [(f"ref-{i}", "", r) for i, r in enumerate(case.new_records(10))]

    written = await case.upsert(items)

    ids = assert_all_written(written, [ref for ref, _, _ in items])
    assert written.vendor_requests > write_calls(case.vendor, len(items))  # refused requests were sent again
    assert set(await case.stored()) == before | set(ids)


@pytest.mark.writable
async def test_a_rate_limit_storm_is_waited_out_and_every_record_written_once(open_case: OpenCase) -> None:
    # A roomy limit with a one-second window: the vendor's Retry-After stays short.
    case = await open_case(rate_limit=(200, 1.0))
    before = set(await case.stored())
    items = [(f"ref-{i}", "", r) for i, r in enumerate(case.new_records(10))]
    statuses = response_statuses(case.harness.adapter)
    await case.harness.storm(3)

    # An adapter waits a short Retry-After itself, or defers the batch to Temporal's retry (a
    # retryable failure, as Salesforce's daily allowance does); Temporal sends the same batch again.
    for _attempt in range(4):
        try:
            written = await case.upsert(items)
            break
        except ApplicationError as deferred:
            assert not deferred.non_retryable
            assert deferred.type == "VendorRateLimited"
    else:
        raise AssertionError("the storm was never waited out")

    ids = assert_all_written(written, [ref for ref, _, _ in items])
    assert statuses.count(case.harness.rate_limited_status) == 3  # deferred, never a failed record
    assert set(await case.stored()) == before | set(ids)


async def test_server_errors_are_retried_until_every_record_is_read_and_written(case: EntityCase) -> None:
    seeded = await case.seed(case.fault_records)
    before = set(await case.stored())
    await case.harness.inject(server_error_rate=0.3)
    statuses = response_statuses(case.harness.adapter)

    ids, _, _ = await fetch_all(case, page_size=10)
    assert sorted(ids) == sorted(seeded)
    if case.writable:
        items = [(f"ref-{i}", "", r) for i, r in enumerate(case.new_records(10))]
        written = await case.upsert(items)
        created = assert_all_written(written, [ref for ref, _, _ in items])
        assert written.vendor_requests > write_calls(case.vendor, len(items))
        assert set(await case.stored()) == before | set(created)
    assert any(status >= 500 for status in statuses)


@pytest.mark.writable
async def test_malformed_record_fails_alone_without_echoing_its_value(case: EntityCase) -> None:
    good = case.new_records(4)
    bad = case.malformed(good[1]) + case.malformed(good[2])
    assert bad, "the case names records its vendor refuses"
    items = [("good-0", "", good[0]), ("good-3", "", good[3])]
    items += [(f"bad-{i}", "", record) for i, (record, _) in enumerate(bad)]
    before = set(await case.stored())

    written = await case.upsert(items)

    results = {r.ref: r for r in written.results}
    assert results["good-0"].success and results["good-3"].success
    for i, (_, value) in enumerate(bad):
        failed = results[f"bad-{i}"]
        assert not failed.success
        assert failed.error_reason and failed.error_reason.isupper()
        assert failed.error_message
        assert value not in failed.error_message
        assert not failed.external_id
    assert set(await case.stored()) == before | {results["good-0"].external_id, results["good-3"].external_id}


@pytest.mark.pull_only
async def test_pushes_to_a_pull_only_entity_are_refused_before_any_vendor_call(case: EntityCase) -> None:
    seeded = await case.seed(3)
    before = await case.stored()
    statuses = response_statuses(case.harness.adapter)
    pulled = (await case.fetch()).records
    assert pulled
    items = [("ref-0", "", plain(pulled[0])), ("ref-1", seeded[0], plain(pulled[0]))]
    statuses.clear()

    with pytest.raises(ApplicationError) as refused:
        await case.upsert(items)

    assert refused.value.non_retryable
    assert "READ_ONLY_ENTITY" in str(refused.value) or refused.value.type == "FailedPrecondition"
    assert statuses == []  # refused before any vendor call
    assert await case.stored() == before


async def test_malformed_page_fails_the_activity_for_a_retry(case: EntityCase) -> None:
    seeded = await case.seed(case.fault_records)
    await case.harness.inject(malformed_pages=True)

    with pytest.raises(ApplicationError) as failure:
        await case.fetch(page_size=10)
    assert not failure.value.non_retryable

    await case.harness.clear_faults()  # the vendor recovers; Temporal's retry of the same request succeeds
    ids, _, _ = await fetch_all(case, page_size=10)
    assert sorted(ids) == sorted(seeded)


async def test_a_cursor_the_adapter_did_not_write_fails_without_retry(case: EntityCase) -> None:
    with pytest.raises(ApplicationError) as failure:
        await case.fetch(cursor="{not json")
    assert failure.value.non_retryable


# --- per vendor: the connection ------------------------------------------------------------------------


def patients(harness: AdapterHarness) -> PatientCase:
    return PatientCase(harness)


@pytest.mark.token_refresh
async def test_expired_access_token_is_refreshed_once_and_the_call_succeeds(harness: AdapterHarness) -> None:
    case = patients(harness)
    seeded = await case.seed(5)
    before = await harness.live_refresh_tokens()
    await harness.expire_access_tokens()

    ids, _, _ = await fetch_all(case)

    assert set(ids) == set(seeded)
    after = await harness.live_refresh_tokens()
    assert after and not before & after  # the refresh token rotated; the old one is dead
    connection = await call(harness.connections.GetConnection, cpb.GetConnectionRequest(config_id=harness.config_id))
    assert connection.connection.status == cpb.CONNECTION_STATUS_CONNECTED
    assert connection.connection.last_refresh_time.seconds > 0

    # Ten writes in flight all meet the 401 at once: one refresh serves them all.
    await harness.expire_access_tokens()
    token_requests = await harness.token_requests()
    items = [(f"ref-{i}", "", r) for i, r in enumerate(case.new_records(10))]
    assert_all_written(await case.upsert(items), [ref for ref, _, _ in items])
    assert await harness.token_requests() == token_requests + 1


async def test_revoked_connection_fails_the_activity_without_retry(harness: AdapterHarness) -> None:
    case = patients(harness)
    await harness.revoke_tokens()
    for attempt in (case.fetch(), case.upsert([("ref-0", "", case.new_records(1)[0])])):
        with pytest.raises(ApplicationError) as failure:
            await attempt
        assert failure.value.type == "NotConnected"
        assert failure.value.non_retryable


async def test_requests_the_adapter_cannot_serve_fail_without_retry(harness: AdapterHarness) -> None:
    bad_requests = [
        pb.FetchChangesRequest(config_id=harness.config_id, entity_type=common_pb2.ENTITY_TYPE_UNSPECIFIED),
        pb.FetchChangesRequest(config_id="no-such-config", entity_type=PATIENT),
    ]
    for request in bad_requests:
        with pytest.raises(ApplicationError) as failure:
            await harness.adapter.fetch_changes(request)
        assert failure.value.non_retryable


async def test_check_health(harness: AdapterHarness) -> None:
    healthy = await harness.adapter.check_health(pb.CheckHealthRequest(config_id=harness.config_id))
    assert healthy.healthy
    await harness.revoke_tokens()
    revoked = await harness.adapter.check_health(pb.CheckHealthRequest(config_id=harness.config_id))
    assert not revoked.healthy and revoked.detail


# --- optional capabilities: records by id, deletes ----------------------------------------------------


@pytest.mark.writable
@pytest.mark.get_records
async def test_records_by_id_are_what_a_pull_returns_and_missing_ones_are_named(case: EntityCase) -> None:
    written = await case.upsert([(f"ref-{i}", "", r) for i, r in enumerate(case.new_records(3))])
    ids = assert_all_written(written, ["ref-0", "ref-1", "ref-2"])
    pulled: dict[str, dict] = {}
    cursor = ""
    for _page in range(200):  # a full pull, every page (a window sweep finds them late)
        page = await case.fetch(cursor, page_size=100)
        pulled.update((case.record_id(plain(r)), plain(r)) for r in page.records)
        cursor = page.next_cursor
        if not page.has_more:
            break
    assert set(ids) <= set(pulled)
    found = await case.harness.adapter.get_records(
        pb.GetRecordsRequest(
            config_id=case.harness.config_id,
            entity_type=case.entity,
            external_ids=[*ids, ids[0], "no-such-record-0000"],
            options=case.options,
        )
    )
    by_id = {case.record_id(plain(r)): plain(r) for r in found.records}
    assert sorted(by_id) == sorted(ids)  # each once
    assert list(found.missing_ids) == ["no-such-record-0000"]
    for external_id in ids:
        assert case.changed_value(by_id[external_id]) == case.changed_value(pulled[external_id])


@pytest.mark.writable
@pytest.mark.delete_records
async def test_deleted_records_are_gone_and_a_retried_delete_is_harmless(case: EntityCase) -> None:
    written = await case.upsert([(f"ref-{i}", "", r) for i, r in enumerate(case.new_records(2))])
    ids = assert_all_written(written, ["ref-0", "ref-1"])
    request = pb.DeleteRecordsRequest(
        config_id=case.harness.config_id, entity_type=case.entity, external_ids=[ids[0]], options=case.options
    )
    for _attempt in range(2):
        deleted = await case.harness.adapter.delete_records(request)
        assert [(r.external_id, r.success) for r in deleted.results] == [(ids[0], True)]
    stored = await case.stored()
    assert ids[0] not in stored and ids[1] in stored
