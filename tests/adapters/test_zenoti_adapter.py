"""Zenoti specifics: full-replace updates, duplicate creates, back-to-front passes, the organisation's
60-a-minute pacer. The shared suite (test_ghl_adapter.py) runs against Zenoti through
harness_zenoti.py; these run against the same sandbox, services and API-key connection."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from temporalio.exceptions import ApplicationError

from libs.grpc_client import call
from libs.protos.concord.adapter.v1 import adapter_pb2 as pb
from libs.protos.concord.connection.v1 import connection_pb2 as cpb
from libs.settings import Settings
from sandbox.zenoti.settings import OrgConfig
from services.adapters import AdapterContext
from services.adapters.zenoti import ZenotiAdapter
from services.adapters.zenoti.client import Pacer, Pacers
from tests.adapters.conftest import PATIENT, plain, struct
from tests.adapters.harness_zenoti import ACCOUNT, ZenotiHarness, connect_api_key, open_harness


class FakeTime:
    """Epoch seconds that move only when someone sleeps: the sandbox's clock and the pacer's. A sleep
    first lets requests already on the wire land, as a real wait of seconds would."""

    def __init__(self) -> None:
        self.now = time.time()
        self.slept: list[float] = []
        self._in_flight = 0
        self._landed = asyncio.Condition()

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        async with self._landed:
            await self._landed.wait_for(lambda: self._in_flight == 0)
        self.slept.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)

    def http(self) -> httpx.AsyncClient:
        async def sent(request: httpx.Request) -> None:
            self._in_flight += 1

        async def landed(response: httpx.Response) -> None:
            async with self._landed:
                self._in_flight -= 1
                self._landed.notify_all()

        return httpx.AsyncClient(timeout=10, event_hooks={"request": [sent], "response": [landed]})


@contextlib.asynccontextmanager
async def _zenoti(
    settings: Settings, **options: object
) -> AsyncIterator[tuple[ZenotiHarness, contextlib.AsyncExitStack]]:
    async with contextlib.AsyncExitStack() as stack:
        http = await stack.enter_async_context(httpx.AsyncClient(timeout=10))
        yield await open_harness(stack, settings, http, None, **options), stack


@pytest.fixture
async def zenoti(settings: Settings) -> AsyncIterator[ZenotiHarness]:
    async with _zenoti(settings) as (harness, _):
        yield harness


def _written(response: pb.UpsertBatchResponse) -> list[str]:
    failed = [(r.ref, r.error_reason, r.error_message) for r in response.results if not r.success]
    assert failed == []
    return [r.external_id for r in response.results]


# --- writes ------------------------------------------------------------------------------------------


async def test_full_replace_update_keeps_every_field_concord_does_not_own(zenoti: ZenotiHarness) -> None:
    record = zenoti.new_records(1)[0]
    [guest_id] = _written(await zenoti.upsert([("ref-0", "", record)]))
    # A Zenoti user fills in what only Zenoti knows, and splits the given name their own way.
    await zenoti._admin(
        "PATCH",
        f"/guests/{guest_id}",
        json={
            "code": "G-1001",
            "personal_info": {
                "first_name": "Adapter0 Marie",
                "middle_name": "",
                "home_phone": {"country_code": 225, "number": "6175559999"},
                "is_minor": True,
                "anniversary_date": "2015-06-20",
            },
            "address_info": {"address_1": "1 Harbor St, Suite 9", "address_2": ""},
            "preferences": {"receive_marketing_email": True, "receive_transactional_sms": True},
            "tags": ["vip", "botox"],
        },
    )
    before = (await zenoti.stored())[guest_id]
    # The hub's record: its given name in two words, its address as one line, and a new city.
    hub = zenoti.changed(record)
    hub["personal_info"] = {**hub["personal_info"], "first_name": "Adapter0", "middle_name": "Marie"}
    hub["address_info"] = {**hub["address_info"], "address_1": "1 Harbor St", "address_2": "Suite 9"}

    updated = await zenoti.upsert([("ref-0", guest_id, hub)])

    assert _written(updated) == [guest_id]
    assert updated.vendor_requests == 2  # GET, then PUT with every field
    after = (await zenoti.stored())[guest_id]
    assert after["address_info"]["city"] == hub["address_info"]["city"]
    assert after == {**before, "address_info": {**before["address_info"], "city": hub["address_info"]["city"]}}
    assert after["tags"] == ["vip", "botox"] and after["code"] == "G-1001"
    assert after["personal_info"]["home_phone"] == {"country_code": 225, "number": "6175559999"}
    assert after["preferences"]["receive_marketing_email"] is True
    assert (after["personal_info"]["first_name"], after["personal_info"]["middle_name"]) == ("Adapter0 Marie", "")
    assert plain(updated.results[0].record)["tags"] == ["vip", "botox"]

    again = await zenoti.upsert([("ref-0", guest_id, hub)])
    assert _written(again) == [guest_id]
    assert again.vendor_requests == 1  # nothing to change: no PUT


async def test_update_of_a_guest_deleted_in_zenoti_fails_that_record_only(zenoti: ZenotiHarness) -> None:
    first, second = zenoti.new_records(2)
    ids = _written(await zenoti.upsert([("a", "", first), ("b", "", second)]))
    await zenoti._admin("DELETE", f"/guests/{ids[0]}")

    written = await zenoti.upsert([("a", ids[0], zenoti.changed(first)), ("b", ids[1], zenoti.changed(second))])

    gone, kept = written.results
    assert not gone.success and gone.error_reason == "VENDOR_NOT_FOUND" and not gone.external_id
    assert kept.success and kept.external_id == ids[1]


async def test_duplicate_create_adopts_the_guest_zenoti_already_holds(settings: Settings) -> None:
    # Guest search limited to the center: a guest of the other center is only found after Zenoti
    # refuses the duplicate.
    org = OrgConfig(account_name=ACCOUNT, seed=False, search_across_centers=False)
    async with _zenoti(settings, org=org) as (zenoti, _):
        other = next(c.id for c in zenoti.org.centers.values() if c.id != zenoti.center_id)
        same_email, same_mobile = zenoti.new_records(2)
        existing = {}
        for key, record in (("email", same_email), ("mobile", same_mobile)):
            body = {**record, "center_id": other}
            if key == "mobile":  # another email, the same mobile number
                body["personal_info"] = {**record["personal_info"], "email": "front.desk.typo@example.com"}
            response = await zenoti.http.post(
                f"{zenoti.sandbox_url}/v1/guests", json=body, headers={"Authorization": f"apikey {zenoti.org.api_key}"}
            )
            assert response.status_code == 200, response.text
            existing[key] = response.json()["id"]

        written = await zenoti.upsert([("by-email", "", same_email), ("by-mobile", "", same_mobile)])

        assert _written(written) == [existing["email"], existing["mobile"]]
        assert not any(r.created for r in written.results)
        stored = await zenoti.stored()
        assert set(stored) == set(existing.values())  # nothing created
        assert all(stored[i]["center_id"] == other for i in existing.values())  # home center kept
        # The hub's fields were written over the adopted guest; Zenoti's email for it changed to the hub's.
        assert stored[existing["mobile"]]["personal_info"]["email"] == same_mobile["personal_info"]["email"]


async def test_create_finds_the_guest_by_search_before_posting(zenoti: ZenotiHarness) -> None:
    record = zenoti.new_records(1)[0]
    [guest_id] = _written(await zenoti.upsert([("ref", "", record)]))
    stats = await zenoti._admin("GET", "/stats")

    retried = await zenoti.upsert([("ref", "", record)])

    assert _written(retried) == [guest_id] and not retried.results[0].created
    assert retried.vendor_requests == 1  # the search; the guest already says what the hub says
    after = await zenoti._admin("GET", "/stats")
    assert after.get("POST /v1/guests", 0) == stats.get("POST /v1/guests", 0)


async def test_vendor_messages_never_carry_record_values(zenoti: ZenotiHarness) -> None:
    record = zenoti.new_records(1)[0]
    email = record["personal_info"]["email"]
    seen: list[httpx.Request] = []

    def echoing(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/v1/guests/search":
            return httpx.Response(200, json={"guests": [], "page_Info": {"total": 0, "page": 1, "size": 100}})
        return httpx.Response(400, json={"error": {"code": 400, "message": f"Email {email} is not allowed."}})

    adapter = ZenotiAdapter(
        AdapterContext(zenoti.settings, zenoti.connections),
        http=httpx.AsyncClient(transport=httpx.MockTransport(echoing)),
    )
    try:
        written = await adapter.upsert_batch(
            pb.UpsertBatchRequest(
                config_id=zenoti.config_id, entity_type=PATIENT, items=[pb.UpsertItem(ref="r", record=struct(record))]
            )
        )
    finally:
        await adapter.aclose()
    result = written.results[0]
    assert not result.success and result.error_reason == "VENDOR_REJECTED"
    assert email not in result.error_message and result.error_message.startswith("Email ")
    assert {r.headers["Authorization"] for r in seen} == {f"apikey {zenoti.org.api_key}"}
    posted = json.loads(seen[-1].content)
    assert posted["center_id"] == zenoti.center_id
    assert posted["personal_info"]["gender"] == 0 and isinstance(posted["personal_info"]["gender"], int)


# --- reads -------------------------------------------------------------------------------------------


async def _pass(harness: ZenotiHarness, cursor: str, page_size: int) -> tuple[list[str], str]:
    ids: list[str] = []
    while True:
        page = await harness.fetch(cursor, page_size)
        ids += [plain(r)["id"] for r in page.records]
        cursor = page.next_cursor
        if not page.has_more:
            return ids, cursor


async def test_a_pass_skips_nothing_when_guests_move_while_it_reads(zenoti: ZenotiHarness) -> None:
    """An edit moves a guest to the end of the last_updated list and a deletion closes its gap: read
    front to back, either would shift an unread guest into a page already read, never to be seen."""
    seeded = await zenoti.seed(30)
    first = await zenoti.fetch("", page_size=10)
    assert first.has_more and first.vendor_requests == 2  # page 1 for the total, then the last page
    read = [plain(r)["id"] for r in first.records]
    unread = [i for i in seeded if i not in read]
    # While the hub reconciles that page, staff edit and delete guests, read and unread alike.
    edited = unread[:3] + read[:2]
    for guest_id in edited:
        await zenoti.edit(guest_id)
    deleted = [unread[5], read[5]]
    for guest_id in deleted:
        await zenoti._admin("DELETE", f"/guests/{guest_id}")

    rest, cursor = await _pass(zenoti, first.next_cursor, 10)
    changed, _ = await _pass(zenoti, cursor, 10)

    this_pass = read + rest
    assert len(this_pass) == len(set(this_pass))  # what slid into a page read again is not repeated
    assert set(this_pass) >= set(seeded) - set(edited) - set(deleted)  # nothing unchanged was skipped
    assert sorted(changed) == sorted(set(edited) - set(deleted))  # the next pass has every edit


async def test_cursor_carries_since_and_the_overlap_is_not_returned_twice(zenoti: ZenotiHarness) -> None:
    await zenoti.seed(12)
    page = await zenoti.fetch("", page_size=100)
    assert len(page.records) == 12 and not page.has_more and page.vendor_requests == 1
    cursor = json.loads(page.next_cursor)
    assert cursor["since"] and "pass" not in cursor
    again = await zenoti.fetch(page.next_cursor, page_size=100)
    assert list(again.records) == [] and not again.has_more  # re-read through the overlap, recognised


MALFORMED_PAGES = {
    "no page_info": {"guests": []},
    "guest without id": {"guests": [{"personal_info": {}}], "page_info": {"total": 1, "page": 1, "size": 2}},
    "total not a number": {"guests": [], "page_info": {"total": "many", "page": 1, "size": 2}},
    "more than asked": {"guests": [{"id": str(i)} for i in range(3)], "page_info": {"total": 3, "page": 1, "size": 2}},
    "not an object": ["guests"],
}


async def test_malformed_guest_lists_fail_the_activity_for_a_retry(zenoti: ZenotiHarness) -> None:
    pages = {**MALFORMED_PAGES, "cut off": b'{"guests": [{"id": "a", "personal_info": {"first_na'}
    for name, page in pages.items():
        content = page if isinstance(page, bytes) else json.dumps(page).encode()
        answer = httpx.MockTransport(lambda request, content=content: httpx.Response(200, content=content))
        adapter = ZenotiAdapter(
            AdapterContext(zenoti.settings, zenoti.connections), http=httpx.AsyncClient(transport=answer)
        )
        try:
            with pytest.raises(ApplicationError) as failure:
                await adapter.fetch_changes(
                    pb.FetchChangesRequest(config_id=zenoti.config_id, entity_type=PATIENT, page_size=2)
                )
        finally:
            await adapter.aclose()
        assert failure.value.type == "VendorMalformedPage", name
        assert not failure.value.non_retryable, name


async def test_a_connection_without_a_center_fails_without_retry(zenoti: ZenotiHarness) -> None:
    async with contextlib.AsyncExitStack() as stack:
        config_id, _ = await connect_api_key(stack, zenoti.settings, zenoti.org.api_key, "", practice_id="p-no-center")
    with pytest.raises(ApplicationError) as failure:
        await zenoti.adapter.fetch_changes(pb.FetchChangesRequest(config_id=config_id, entity_type=PATIENT))
    assert failure.value.type == "NotConnected" and failure.value.non_retryable
    health = await zenoti.adapter.check_health(pb.CheckHealthRequest(config_id=config_id))
    assert not health.healthy and health.detail == "CENTER_ID_MISSING"


async def test_a_rotated_api_key_expires_the_connection(zenoti: ZenotiHarness) -> None:
    await zenoti.revoke_tokens()
    with pytest.raises(ApplicationError) as failure:
        await zenoti.fetch()
    assert failure.value.type == "NotConnected" and failure.value.non_retryable
    connection = await call(zenoti.connections.GetConnection, cpb.GetConnectionRequest(config_id=zenoti.config_id))
    assert connection.connection.status == cpb.CONNECTION_STATUS_EXPIRED


# --- the pacer ---------------------------------------------------------------------------------------


async def test_pacer_admits_57_calls_in_any_minute_and_waits_no_longer_than_needed() -> None:
    fake = FakeTime()
    pacer = Pacer(clock=fake.clock, sleep=fake.sleep)  # Zenoti's 60 a minute, less a 5 % margin
    admitted: list[float] = []

    async def one() -> None:
        await pacer.acquire()
        admitted.append(fake.now)

    await asyncio.gather(*(one() for _ in range(150)))

    assert (pacer.limit, pacer.window) == (57, 60.0)
    for start in admitted:
        assert sum(1 for t in admitted if start <= t < start + 60.0) <= 57
    assert admitted[-1] - admitted[0] == pytest.approx(120.0)  # 57 + 57 + 36
    assert pacer.waited_seconds == pytest.approx(sum(fake.slept))


async def test_pacer_follows_zenoti_rate_limit_headers() -> None:
    fake = FakeTime()
    pacer = Pacer(clock=fake.clock, sleep=fake.sleep)
    pacer.follow(httpx.Headers({"Organization-RateLimit-Limit": "5;w=0.5;b=5"}))
    assert (pacer.limit, pacer.window) == (4, 0.5)
    pacer.follow(httpx.Headers({"Organization-RateLimit-Limit": "garbage", "RateLimit-Remaining": "x"}))
    assert (pacer.limit, pacer.window) == (4, 0.5)
    pacer.follow(httpx.Headers({"Organization-RateLimit-Limit": "60;w=60;b=60", "RateLimit-Remaining": "3"}))
    assert (pacer.limit, pacer.window) == (57, 60.0)
    start = fake.now
    await pacer.acquire()
    assert fake.now == start  # room left: no wait
    # Other clients of the organisation emptied the bucket: nothing goes out until its refill.
    pacer.follow(httpx.Headers({"RateLimit-Remaining": "0", "RateLimit-Reset": "30"}))
    await pacer.acquire()
    assert fake.now - start == pytest.approx(30.0)


async def test_429_waits_retry_after_then_the_call_succeeds(zenoti: ZenotiHarness) -> None:
    fake = FakeTime()
    answers = [
        httpx.Response(
            429,
            json={"statusCode": 429, "message": "Rate limit is exceeded. Try again in 7 seconds."},
            headers={"Retry-After": "7", "RateLimit-Remaining": "0", "RateLimit-Reset": "7"},
        ),
        httpx.Response(200, json={"guests": [], "page_info": {"total": 0, "page": 1, "size": 100}}),
    ]
    adapter = ZenotiAdapter(
        AdapterContext(zenoti.settings, zenoti.connections),
        http=httpx.AsyncClient(transport=httpx.MockTransport(lambda request: answers.pop(0))),
        pacers=Pacers(factory=lambda: Pacer(clock=fake.clock, sleep=fake.sleep)),
    )
    try:
        page = await adapter.fetch_changes(pb.FetchChangesRequest(config_id=zenoti.config_id, entity_type=PATIENT))
    finally:
        await adapter.aclose()
    assert page.vendor_requests == 2 and not page.has_more
    assert fake.slept == [pytest.approx(7.0)]


async def test_every_activity_for_the_organisation_shares_one_window_of_60_a_minute(settings: Settings) -> None:
    """Against the sandbox's real 60-a-minute bucket on a shared fake clock: two configs (two
    centers, one organisation key) read and write at once, 121 calls, and Zenoti never says 429."""
    fake = FakeTime()
    async with _zenoti(settings, clock=fake.clock) as (zenoti, stack):
        other = next(c.id for c in zenoti.org.centers.values() if c.id != zenoti.center_id)
        second, _ = await connect_api_key(stack, zenoti.settings, zenoti.org.api_key, other, practice_id="p-second")
        adapter = ZenotiAdapter(
            AdapterContext(zenoti.settings, zenoti.connections),
            http=fake.http(),
            pacers=Pacers(factory=lambda: Pacer(clock=fake.clock, sleep=fake.sleep)),
        )
        stack.push_async_callback(adapter.aclose)
        records = zenoti.new_records(60)

        async def upsert(config_id: str, batch: list[dict], base: int) -> pb.UpsertBatchResponse:
            items = [pb.UpsertItem(ref=f"r{base + i}", record=struct(r)) for i, r in enumerate(batch)]
            return await adapter.upsert_batch(
                pb.UpsertBatchRequest(config_id=config_id, entity_type=PATIENT, items=items)
            )

        started = fake.now
        first, other_center, page = await asyncio.gather(
            upsert(zenoti.config_id, records[:30], 0),
            upsert(second, records[30:], 30),
            adapter.fetch_changes(pb.FetchChangesRequest(config_id=zenoti.config_id, entity_type=PATIENT)),
        )

        assert _written(first) and _written(other_center)
        # Two calls a create (search, POST) and one fetch: any 429 would have added a retry.
        assert first.vendor_requests + other_center.vendor_requests + page.vendor_requests == 121
        assert fake.now - started == pytest.approx(120.0)  # 121 calls at 57 a minute: three windows
        assert len(await zenoti.stored()) == 60
