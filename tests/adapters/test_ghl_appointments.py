"""GoHighLevel appointments through the adapter: the real sandbox over HTTP on a clock the test
moves, the real registry and connection services over gRPC, real OAuth. Paging windows, the
incremental rule (dateUpdated, events entering the window), idempotent creates, updates,
cancellations and slot conflicts."""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from temporalio.exceptions import ApplicationError

from libs import fhir_appointment as fa
from libs.asgi import serve_asgi
from libs.protos.concord.adapter.v1 import adapter_pb2 as pb
from libs.protos.concord.common.v1 import common_pb2
from libs.protos.concord.registry.v1 import registry_pb2 as rpb
from libs.settings import Settings
from sandbox.ghl.app import create_app as create_ghl_sandbox
from sandbox.ghl.settings import AppRegistration, GhlSandboxSettings
from services.adapters import AdapterContext
from services.adapters.ghl import GhlAdapter
from services.adapters.ghl.event_cursor import WINDOW_AHEAD, WINDOW_BACK, WINDOW_PAGE
from services.mapping.mappers.ghl_appointments import CALENDAR_ID_SYSTEM, USER_ID_SYSTEM, GhlAppointmentMapper
from tests.adapters.conftest import (
    CLIENT_ID,
    CLIENT_SECRET,
    REDIRECT_URI,
    _connect,
    _start_services,
    plain,
    struct,
)
from tests.adapters.harness_ghl import GhlHarness
from tests.sandbox.support import FakeClock

APPOINTMENT = common_pb2.ENTITY_TYPE_APPOINTMENT
CALENDARS = "2021-04-15"
MONDAY = datetime(2026, 3, 2, 13, 0, tzinfo=UTC)  # 8:00 in New York, the sandbox locations' zone
MAPPER = GhlAppointmentMapper()
NOTES = "Discuss Zyxwvut biopsy results"  # PHI canary


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _slot(days: int, hour_utc: int) -> datetime:
    """A slot start of the sandbox's open hours (Mon-Fri 9-17 New York = 14-22 UTC in March)."""
    return MONDAY.replace(hour=hour_utc) + timedelta(days=days)


@dataclass
class Calendars:
    """The harness, a GHL user's own API token, and the clock both the sandbox and adapter read."""

    ghl: GhlHarness
    clock: FakeClock
    token: str
    by_name: dict[str, str]

    async def api(self, method: str, path: str, **kwargs: Any) -> dict:
        headers = {"Authorization": f"Bearer {self.token}", "Version": CALENDARS}
        response = await self.ghl.http.request(method, f"{self.ghl.sandbox_url}{path}", headers=headers, **kwargs)
        assert response.status_code < 300, response.text
        return response.json()

    async def admin(self, method: str, path: str, **kwargs: Any) -> Any:
        return await self.ghl._admin(method, path, **kwargs)

    async def events(self) -> dict[str, dict]:
        listed = await self.admin("GET", "/appointments", params={"locationId": self.ghl.location_id})
        return {e["id"]: e for e in listed["appointments"]}

    async def book(self, contact_id: str, calendar: str, start: datetime, **fields: Any) -> dict:
        """A GHL user books in GHL."""
        body = {
            "calendarId": self.by_name[calendar],
            "locationId": self.ghl.location_id,
            "contactId": contact_id,
            "startTime": start.isoformat(),
            "ignoreDateRange": True,
            **fields,
        }
        return await self.api("POST", "/calendars/events/appointments", json=body)

    async def contacts(self, count: int) -> list[str]:
        """Contacts without seeded appointments."""
        body = {"locationId": self.ghl.location_id, "count": count, "appointments": False}
        return (await self.admin("POST", "/seed", json=body))["ids"]

    async def calls(self, route: str) -> int:
        return (await self.admin("GET", "/stats")).get(route, 0)

    async def fetch(self, cursor: str = "", page_size: int = 100) -> pb.FetchChangesResponse:
        request = pb.FetchChangesRequest(
            config_id=self.ghl.config_id, entity_type=APPOINTMENT, cursor=cursor, page_size=page_size
        )
        return await self.ghl.adapter.fetch_changes(request)

    async def fetch_all(self, cursor: str = "", page_size: int = 100) -> tuple[list[dict], str, int]:
        """Pages until has_more is false: (events in order, the cursor after, pages)."""
        records: list[dict] = []
        for pages in range(1, 200):
            page = await self.fetch(cursor, page_size)
            assert len(page.records) <= page_size
            records += [plain(r) for r in page.records]
            cursor = page.next_cursor
            if not page.has_more:
                return records, cursor, pages
        raise AssertionError("has_more never turned false")

    async def upsert(
        self, items: list[tuple[str, str, dict]], options: rpb.VendorOptions | None = None
    ) -> pb.UpsertBatchResponse:
        request = pb.UpsertBatchRequest(
            config_id=self.ghl.config_id,
            entity_type=APPOINTMENT,
            items=[pb.UpsertItem(ref=ref, external_id=eid, record=struct(rec)) for ref, eid, rec in items],
            options=options,
        )
        return await self.ghl.adapter.upsert_batch(request)


def _write(contact_id: str, start: datetime, service: str = "Annual physical", **changes: Any) -> dict:
    """What the sync service hands the adapter: a hub appointment mapped for GHL."""
    appointment = {
        "resourceType": "Appointment",
        "status": "booked",
        "start": start.isoformat().replace("+00:00", "Z"),
        "end": (start + timedelta(minutes=45)).isoformat().replace("+00:00", "Z"),
        "serviceType": [{"coding": [{"system": "urn:practice:services", "code": "physical"}], "text": service}],
        "participant": [{"actor": fa.external_actor(contact_id), "status": "accepted"}],
        **changes,
    }
    return MAPPER.to_vendor(appointment)


@contextlib.asynccontextmanager
async def _open(settings: Settings, transport: httpx.AsyncBaseTransport | None = None) -> AsyncIterator[Calendars]:
    clock = FakeClock(MONDAY.timestamp())
    async with contextlib.AsyncExitStack() as stack:
        http = await stack.enter_async_context(httpx.AsyncClient(timeout=10))
        # The sandbox's rate-limit windows follow its clock, which only moves when the test says so.
        app = create_ghl_sandbox(
            GhlSandboxSettings(
                clock=clock, rate_limit_enabled=False, apps=[AppRegistration(CLIENT_ID, CLIENT_SECRET, [REDIRECT_URI])]
            )
        )
        served = await serve_asgi(app)
        stack.push_async_callback(served.stop)
        settings = await _start_services(stack, settings.model_copy(update={"vendor_pacing": False}), "ghl", served.url)
        adapter = functools.partial(
            GhlAdapter, backoff_seconds=0.01, clock=clock, http=httpx.AsyncClient(transport=transport, timeout=10)
        )
        ghl = GhlHarness(
            **await _connect(stack, settings, "ghl", served.url, http, adapter),
            location_id=app.state.sandbox.apps[CLIENT_ID].location_id,
            sandbox=app.state.sandbox,
        )
        token = (await ghl._admin("POST", "/tokens", json={"client_id": CLIENT_ID}))["access_token"]
        calendars = Calendars(ghl, clock, token, {})
        listed = await calendars.api("GET", "/calendars/", params={"locationId": ghl.location_id})
        calendars.by_name = {c["name"]: c["id"] for c in listed["calendars"]}
        yield calendars


@pytest.fixture
async def cal(settings: Settings) -> AsyncIterator[Calendars]:
    async with _open(settings) as opened:
        yield opened


def _in_window(event: dict, now: datetime) -> bool:
    start = datetime.fromisoformat(event["startTime"])
    return now - WINDOW_BACK <= start < now + WINDOW_AHEAD


async def test_a_pass_reads_each_calendar_window_page_once_and_then_only_what_changed(cal: Calendars) -> None:
    contacts = await cal.ghl.seed(12)
    far_past = await cal.book(contacts[0], "Annual physical", _slot(-95, 15))  # before the window
    expected = {i for i, e in (await cal.events()).items() if _in_window(e, MONDAY)}
    assert len(expected) >= 10 and far_past["id"] not in expected
    await cal.admin("POST", "/stats/reset")

    records, cursor, pages = await cal.fetch_all(page_size=500)

    assert {r["id"] for r in records} == expected and len(records) == len(expected)
    calendars, window_pages = len(cal.by_name), -(-(WINDOW_BACK + WINDOW_AHEAD) // WINDOW_PAGE)
    # The documented cost: one list per calendar per window page, and the calendars once per activity.
    assert await cal.calls("GET /calendars/events") == calendars * window_pages
    assert await cal.calls("GET /calendars/") == pages
    by_id = {r["id"]: r for r in records}
    assert all(r["calendarName"] == next(n for n, i in cal.by_name.items() if i == r["calendarId"]) for r in records)
    assert all(MAPPER.to_hub(r).resource for r in records)
    assert all(by_id[i]["dateUpdated"] for i in expected)

    # GHL users change two events and book a third; nothing else comes back.
    cal.clock.advance(3600)
    changed = sorted(expected)[:2]
    await cal.api("PUT", f"/calendars/events/appointments/{changed[0]}", json={"appointmentStatus": "cancelled"})
    await cal.api("PUT", f"/calendars/events/appointments/{changed[1]}", json={"title": "Bring referral"})
    booked = await cal.book(contacts[1], "Hydrating facial", _slot(2, 15))
    records, cursor, _ = await cal.fetch_all(cursor, page_size=2)
    assert sorted(r["id"] for r in records) == sorted([*changed, booked["id"]])
    assert {r["id"]: r["appointmentStatus"] for r in records}[changed[0]] == "cancelled"

    records, cursor, _ = await cal.fetch_all(cursor)
    assert records == []  # nothing changed since: nothing returned
    cal.clock.advance(3600)
    records, cursor, _ = await cal.fetch_all(cursor)
    assert records == []
    assert json.loads(cursor)["seen"] == {}  # what the floor covers is not kept


async def test_events_entering_the_window_come_once_though_unchanged(cal: Calendars) -> None:
    contact = (await cal.contacts(1))[0]
    ahead = await cal.book(contact, "Botox treatment", _slot(190, 15))  # after the window
    records, cursor, _ = await cal.fetch_all()
    assert ahead["id"] not in {r["id"] for r in records}

    token_requests = await cal.ghl.token_requests()
    cal.clock.advance(timedelta(days=12).total_seconds())  # the window's front passes the booking
    records, cursor, _ = await cal.fetch_all(cursor)
    assert [r["id"] for r in records] == [ahead["id"]]
    # The sandbox's day-long access token expired meanwhile: one refresh, as for contacts.
    assert await cal.ghl.token_requests() == token_requests + 1
    cal.clock.advance(60)
    assert (await cal.fetch_all(cursor))[0] == []


async def test_a_page_that_does_not_fit_resumes_where_it_stopped_even_if_events_change_between(
    cal: Calendars,
) -> None:
    contacts = await cal.contacts(4)
    made = [(await cal.book(c, "Therapeutic massage", _slot(1 + i, 15)))["id"] for i, c in enumerate(contacts)]
    first = pb.FetchChangesResponse(has_more=True)
    while not first.records:  # the calendars before this one hold nothing
        first = await cal.fetch(first.next_cursor, page_size=1)
    assert [plain(r)["id"] for r in first.records] == made[:1] and first.has_more
    # The event already returned changes before the page resumes: it comes again, after the others.
    await cal.api("PUT", f"/calendars/events/appointments/{made[0]}", json={"appointmentStatus": "showed"})
    rest, _, _ = await cal.fetch_all(first.next_cursor, page_size=1)
    assert [r["id"] for r in rest] == [*made[1:], made[0]]


async def test_a_retried_create_books_once_and_updates_and_cancellations_go_by_id(cal: Calendars) -> None:
    contacts = await cal.contacts(2)
    start = _slot(1, 15)
    items = [
        ("ref-0", "", _write(contacts[0], start, description=NOTES)),
        ("ref-1", "", _write(contacts[1], start, service="hydrating  FACIAL")),  # names match, case and spacing aside
    ]
    first = await cal.upsert(items)
    assert [(r.success, r.created) for r in first.results] == [(True, True), (True, True)]
    ids = [r.external_id for r in first.results]
    await cal.admin("POST", "/stats/reset")

    retried = await cal.upsert(items)  # the activity retried after its result was lost
    assert [(r.success, r.created, r.external_id) for r in retried.results] == [(True, False, i) for i in ids]
    assert await cal.calls("POST /calendars/events/appointments") == 0
    assert await cal.calls("GET /calendars/") == 1  # the calendars, once for the whole batch
    stored = await cal.events()
    assert set(stored) == set(ids)
    assert stored[ids[0]]["calendarId"] == cal.by_name["Annual physical"]
    assert stored[ids[1]]["calendarId"] == cal.by_name["Hydrating facial"]
    assert stored[ids[0]]["startTime"] == _local(start)

    # The answer is the event as GHL holds it, ready for the synced snapshot.
    snapshot = fa.project(MAPPER.to_hub(plain(first.results[0].record)).resource)
    assert (snapshot["service_name"], snapshot["description"]) == ("Annual physical", NOTES)
    assert snapshot["patient"] == f"external:{contacts[0]}"

    moved = _slot(1, 17)
    updated = await cal.upsert([("ref-0", ids[0], _write(contacts[0], moved, description="Fasting"))])
    cancel = _write(contacts[1], start, service="Hydrating facial", status="cancelled")
    cancelled = await cal.upsert([("ref-1", ids[1], cancel)])
    assert [(r.success, r.created) for r in (*updated.results, *cancelled.results)] == [(True, False), (True, False)]
    stored = await cal.events()
    assert set(stored) == set(ids)
    assert (stored[ids[0]]["startTime"], stored[ids[0]]["description"]) == (_local(moved), "Fasting")
    assert stored[ids[1]]["appointmentStatus"] == "cancelled"
    assert fa.project(MAPPER.to_hub(plain(cancelled.results[0].record)).resource)["status"] == "cancelled"

    # Booking the freed slot again is a new booking, not the cancelled one brought back.
    rebooked = await cal.upsert([("ref-2", "", _write(contacts[1], start, service="Hydrating facial"))])
    assert (rebooked.results[0].success, rebooked.results[0].created) == (True, True)
    assert rebooked.results[0].external_id not in ids


def _local(moment: datetime) -> str:
    """How GHL renders a time: in the location's zone, with its offset."""
    return moment.astimezone(ZoneInfo("America/New_York")).isoformat()


def _with_user(contact_id: str, user_id: str) -> dict:
    practitioner = {"type": "Practitioner", "identifier": {"system": USER_ID_SYSTEM, "value": user_id}}
    return {
        "participant": [
            {"actor": fa.external_actor(contact_id), "status": "accepted"},
            {"actor": practitioner, "status": "accepted"},
        ]
    }


async def test_a_taken_slot_fails_that_record_alone_and_a_cancelled_one_frees_it(cal: Calendars) -> None:
    contacts = await cal.contacts(3)
    calendar = await cal.api("GET", f"/calendars/{cal.by_name['Annual physical']}")
    user = calendar["calendar"]["teamMembers"][0]["userId"]
    start = _slot(3, 16)
    first = _write(contacts[0], start, **_with_user(contacts[0], user))
    second = {**first, "contactId": contacts[1], "description": NOTES}  # the same practitioner, the same time
    other = _write(contacts[2], _slot(3, 18))
    written = await cal.upsert([("ref-a", "", first), ("ref-b", "", second), ("ref-c", "", other)])

    assert [r.success for r in written.results] == [True, False, True]
    refused = written.results[1]
    assert refused.error_reason == "SLOT_UNAVAILABLE"
    assert NOTES not in refused.error_message and contacts[1] not in refused.error_message
    booked = [e["contactId"] for e in (await cal.events()).values() if e["startTime"] == _local(start)]
    assert booked == [contacts[0]]

    cancel = await cal.upsert([("ref-a", written.results[0].external_id, {**first, "appointmentStatus": "cancelled"})])
    assert cancel.results[0].success
    again = await cal.upsert([("ref-b", "", second)])
    assert (again.results[0].success, again.results[0].created) == (True, True)


async def test_a_service_no_calendar_stands_for_fails_that_record(cal: Calendars) -> None:
    contact = (await cal.contacts(1))[0]
    by_id = _write(
        contact,
        _slot(1, 15),
        serviceType=[{"coding": [{"system": CALENDAR_ID_SYSTEM, "code": cal.by_name["Chemical peel"]}]}],
    )
    unknown = _write(contact, _slot(1, 19), service="Cryotherapy")
    written = await cal.upsert([("ref-0", "", by_id), ("ref-1", "", unknown)])
    assert written.results[0].success
    assert plain(written.results[0].record)["calendarName"] == "Chemical peel"
    assert (written.results[1].success, written.results[1].error_reason) == (False, "SERVICE_NOT_FOUND")


class AnswerLost(httpx.AsyncBaseTransport):
    """Forwards to the sandbox, but the first booking's answer is lost (GHL applied it, the
    client sees a 502), as a proxy or a dropped connection would make it."""

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self.lost = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        if request.method == "POST" and request.url.path == "/calendars/events/appointments" and not self.lost:
            self.lost += 1
            await response.aread()
            return httpx.Response(502, json={"statusCode": 502, "message": "Bad Gateway"})
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


async def test_a_booking_whose_answer_was_lost_is_looked_up_and_adopted_not_booked_again(settings: Settings) -> None:
    transport = AnswerLost()
    async with _open(settings, transport) as cal:
        contact = (await cal.contacts(1))[0]
        written = await cal.upsert([("ref-0", "", _write(contact, _slot(2, 15)))])
        assert transport.lost == 1
        assert (written.results[0].success, written.results[0].created) == (True, True)
        assert set(await cal.events()) == {written.results[0].external_id}


async def test_requests_the_appointments_resource_cannot_serve_fail_without_retry(cal: Calendars) -> None:
    bad_cursors = (
        "{not json",
        "[]",
        '{"floor": "yesterday"}',
        '{"current": {"window": [1], "started": 0}}',
        '{"current": {"window": [0, 1000000000000000], "started": 0}}',
        '{"current": {"window": [0, 1000], "started": 0, "after": {"a": 1}}}',
        '{"current": {"window": [0, 1000], "started": 0, "page": 3}}',
    )
    for cursor in bad_cursors:
        with pytest.raises(ApplicationError) as failure:
            await cal.fetch(cursor)
        assert failure.value.type == "InvalidArgument" and failure.value.non_retryable
    with pytest.raises(ApplicationError) as failure:
        await cal.ghl.adapter.fetch_changes(
            pb.FetchChangesRequest(config_id=cal.ghl.config_id, entity_type=common_pb2.ENTITY_TYPE_SERVICE)
        )
    assert failure.value.non_retryable


MALFORMED = {
    "no list": {"events": None},
    "no id": {"events": [{"dateUpdated": "2026-03-01T00:00:00.000Z", "startTime": "2026-03-03T10:00:00-05:00"}]},
    "no dateUpdated": {"events": [{"id": "e", "startTime": "2026-03-03T10:00:00-05:00"}]},
    "no offset": {
        "events": [{"id": "e", "dateUpdated": "2026-03-01T00:00:00.000Z", "startTime": "2026-03-03T10:00:00"}]
    },
}


async def test_malformed_event_lists_fail_the_activity_for_a_retry(cal: Calendars) -> None:
    for name, page in MALFORMED.items():

        def answer(request: httpx.Request, page: dict = page) -> httpx.Response:
            if request.url.path == "/calendars/":
                return httpx.Response(200, json={"calendars": [{"id": "c1", "name": "Consult"}]})
            return httpx.Response(200, json=page)

        adapter = GhlAdapter(
            AdapterContext(cal.ghl.settings, cal.ghl.connections),
            http=httpx.AsyncClient(transport=httpx.MockTransport(answer)),
            clock=cal.clock,
        )
        try:
            with pytest.raises(ApplicationError) as failure:
                await adapter.fetch_changes(
                    pb.FetchChangesRequest(config_id=cal.ghl.config_id, entity_type=APPOINTMENT)
                )
        finally:
            await adapter.aclose()
        assert failure.value.type == "VendorMalformedPage", name
        assert not failure.value.non_retryable, name
