"""Appointments (GHL calendar events, Version 2021-04-15) <-> the hub's appointments.

Reads walk a window of start times calendar by calendar (event_cursor.py has the rule). Writes
are one request per record: updates by event id; creates look first for the same booking
(contact, calendar, start) and adopt it, so a retried batch never books twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from google.protobuf import json_format
from temporalio.exceptions import ApplicationError

from libs.protos.concord.adapter.v1 import adapter_pb2 as pb
from services.adapters.common import struct
from services.adapters.ghl import marketing, schemas
from services.adapters.ghl.calendars import CalendarDirectory, Unresolved
from services.adapters.ghl.client import CALENDARS_VERSION, GhlClient, GhlError, WriteOutcomeUnknown
from services.adapters.ghl.event_cursor import EventCursor, Pass
from services.adapters.ghl.resource import malformed, refused, write_all

MAX_PAGE = 500
# Event lists one fetch may make before it returns (has_more): activities stay short.
MAX_LIST_CALLS = 40
# Creates whose outcome was unknown (5xx, dropped connection), looked up and sent again at most this often.
CREATE_ATTEMPTS = 4
EVENTS = "/calendars/events"
APPOINTMENTS = "/calendars/events/appointments"


def _checked(event: Any) -> tuple[str, int, int]:
    """(id, dateUpdated ms, start ms) of one listed event; the cursor is built from them."""
    if not isinstance(event, dict) or not isinstance(event.get("id"), str) or not event["id"]:
        raise malformed("an event without an id")
    updated, start = schemas.epoch_ms(event.get("dateUpdated")), schemas.epoch_ms(event.get("startTime"))
    if updated is None:
        raise malformed("an event without dateUpdated")
    if start is None:
        raise malformed("an event without a startTime with an offset")
    return event["id"], updated, start


def _booking(record: dict, calendar_id: str) -> tuple[str, str, int | None]:
    return calendar_id, str(record.get("contactId", "")), schemas.epoch_ms(record.get("startTime"))


def _adoptable(existing: dict | None, body: dict) -> dict | None:
    """The same booking, unless it is cancelled and this one is not: then it is a new booking."""
    if existing is None:
        return None
    freed = existing.get("appointmentStatus") in schemas.FREEING_STATUSES
    return None if freed and body.get("appointmentStatus") not in schemas.FREEING_STATUSES else existing


class Appointments:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock

    # --- reads -----------------------------------------------------------------------------------

    async def _events(self, client: GhlClient, location_id: str, calendar_id: str, start: int, end: int) -> list:
        body = await client.request(
            "GET",
            EVENTS,
            params={"locationId": location_id, "calendarId": calendar_id, "startTime": start, "endTime": end},
            version=CALENDARS_VERSION,
        )
        events = body.get("events") if isinstance(body, dict) else None
        if not isinstance(events, list):
            raise malformed("no event list")
        return events

    async def fetch(self, client: GhlClient, request: pb.FetchChangesRequest) -> pb.FetchChangesResponse:
        """Events changed since the cursor, one `GET /calendars/events` per calendar per window page."""
        cursor = EventCursor.parse(request.cursor)
        creds = await client.credentials()
        directory = await CalendarDirectory.load(client, creds.location_id)
        current = cursor.begin(int(self._clock() * 1000))
        pages = current.pages()
        room = min(request.page_size or 100, MAX_PAGE)
        records: list[dict] = []
        calls = 0
        _enter(current, directory.ids)
        while current.calendar and room > 0 and calls < MAX_LIST_CALLS:
            start, end = pages[current.page]
            events = await self._events(client, creds.location_id, current.calendar, start, end)
            calls += 1
            changed = []
            for event in events:
                event_id, updated, begins = _checked(event)
                after = current.after is None or [updated, event_id] > current.after
                if after and cursor.wants(event_id, updated, begins, current.calendar):
                    changed.append((updated, event_id, event))
            changed.sort(key=lambda found: found[:2])
            for updated, event_id, event in changed[:room]:
                records.append({**event, schemas.CALENDAR_NAME: directory.names.get(current.calendar, "")})
                cursor.delivered(current, event_id, updated)
            if len(changed) > room:
                current.after = list(changed[room - 1][:2])  # the page resumes after the last one returned
                room = 0
                break
            room -= len(changed)
            _advance(current, directory.ids, len(pages))
        done = not current.calendar
        if done:
            cursor.finish(current)
        return pb.FetchChangesResponse(
            records=[struct(r) for r in records],
            next_cursor=cursor.dump(),
            has_more=not done,
            vendor_requests=client.requests,
        )

    # --- writes ----------------------------------------------------------------------------------

    async def _booked(self, client: GhlClient, location_id: str, wanted: list[tuple[str, str, int | None]]) -> dict:
        """GHL's events for the bookings about to be created, by (calendar, contact, start): one
        list per calendar over the span of the batch's start times."""
        spans: dict[str, list[int]] = {}
        for calendar_id, _, start in wanted:
            if start is not None:
                spans.setdefault(calendar_id, []).append(start)
        found: dict[tuple[str, str, int | None], dict] = {}
        for calendar_id, starts in spans.items():
            for event in await self._events(client, location_id, calendar_id, min(starts), max(starts)):
                if isinstance(event, dict) and isinstance(event.get("id"), str):
                    key = (calendar_id, str(event.get("contactId", "")), schemas.epoch_ms(event.get("startTime")))
                    # A live booking is the better match than a cancelled one of the same slot.
                    if key not in found or found[key].get("appointmentStatus") in schemas.FREEING_STATUSES:
                        found[key] = event
        return found

    async def _create(self, client: GhlClient, location_id: str, body: dict) -> tuple[dict, bool]:
        """(GHL's answer, created). A refused slot or an unknown outcome is looked up first: our
        own booking (a concurrent or half-answered try) is adopted, not booked again."""
        key = _booking(body, body["calendarId"])
        for attempt in range(CREATE_ATTEMPTS):
            try:
                return await client.request(
                    "POST", APPOINTMENTS, json=body, version=CALENDARS_VERSION, replay=False
                ), True
            except WriteOutcomeUnknown:
                slot_taken = None
            except GhlError as error:
                if error.status != 400 or schemas.SLOT_TAKEN not in error.message.casefold():
                    raise
                slot_taken = error
            existing = _adoptable((await self._booked(client, location_id, [key])).get(key), body)
            if existing is not None:
                # After an unknown outcome the booking found is, all but surely, the one just made.
                return await self._update(client, existing["id"], body), slot_taken is None
            if slot_taken is not None:
                raise slot_taken
            await client.back_off(attempt)
        raise ApplicationError("GoHighLevel did not answer the booking", type="VendorUnavailable")

    async def _update(self, client: GhlClient, event_id: str, body: dict) -> dict:
        return await client.request(
            "PUT", f"{APPOINTMENTS}/{event_id}", json=schemas.edit_body(body), version=CALENDARS_VERSION
        )

    async def upsert(self, client: GhlClient, request: pb.UpsertBatchRequest) -> pb.UpsertBatchResponse:
        creds = await client.credentials()
        directory = await CalendarDirectory.load(client, creds.location_id)
        records = [json_format.MessageToDict(item.record) for item in request.items]
        calendars: list[str | Unresolved] = []
        for record in records:
            try:
                calendars.append(directory.resolve(record.get("calendarId"), record.get(schemas.SERVICE_HINT)))
            except Unresolved as unresolved:
                calendars.append(unresolved)
        new = [
            _booking(record, calendar)
            for item, record, calendar in zip(request.items, records, calendars, strict=True)
            if not item.external_id and isinstance(calendar, str)
        ]
        booked = await self._booked(client, creds.location_id, new) if new else {}
        switches = request.options.marketing
        score_field = (
            await marketing.ScoreField.load(client, creds.location_id, switches.lead_score_field)
            if switches.lead_scoring and request.items
            else None
        )

        async def write(job: tuple[pb.UpsertItem, dict, str | Unresolved]) -> pb.UpsertResult:
            item, record, calendar = job
            if isinstance(calendar, Unresolved):
                return pb.UpsertResult(
                    ref=item.ref, success=False, error_reason=calendar.reason, error_message=calendar.message
                )
            body = schemas.appointment_body(record, calendar, creds.location_id)
            existing = None if item.external_id else _adoptable(booked.get(_booking(record, calendar)), body)
            event_id = item.external_id or (existing or {}).get("id", "")
            try:
                if event_id:
                    saved, created = await self._update(client, event_id, body), False
                else:
                    saved, created = await self._create(client, creds.location_id, body)
            except GhlError as error:
                if not error.about_the_record:
                    raise
                taken = schemas.SLOT_TAKEN in error.message.casefold()
                return refused(item, error, record, "SLOT_UNAVAILABLE" if taken else "")
            if saved.get("contactId") not in (None, record.get("contactId")):
                return pb.UpsertResult(
                    ref=item.ref,
                    success=False,
                    error_reason="CONTACT_NOT_EDITABLE",
                    error_message="GoHighLevel cannot move an appointment to another contact",
                )
            # GHL's answer lacks some fields it stored (description): the snapshot takes them from the write.
            written = {k: v for k, v in schemas.edit_body(body).items() if not k.startswith("ignore")}
            event = {**written, **saved}
            event[schemas.CALENDAR_NAME] = directory.names.get(event["calendarId"], "")
            try:
                await marketing.apply_to_appointment(client, switches, event, score_field, self._clock())
            except marketing.MarketingRefused as refusal:
                return pb.UpsertResult(
                    ref=item.ref, success=False, error_reason=refusal.reason, error_message=refusal.message
                )
            except GhlError as error:
                if not error.about_the_record:
                    raise
                # The booking is written (a retry adopts it); its marketing step failed: the record fails.
                return refused(item, error, record, "MARKETING_FAILED")
            return pb.UpsertResult(
                ref=item.ref,
                external_id=str(saved.get("id") or event_id),
                success=True,
                created=created,
                record=struct(event),
            )

        results = await write_all(list(zip(request.items, records, calendars, strict=True)), write)
        return pb.UpsertBatchResponse(results=results, vendor_requests=client.requests)


def _enter(current: Pass, ids: list[str]) -> None:
    """Points the pass at a calendar that exists: the one it was reading, else the next in id
    order ("" when none is left: the pass is over)."""
    if current.calendar not in ids:
        current.calendar, current.page, current.after = _following(ids, current.calendar), 0, None


def _following(ids: list[str], calendar: str) -> str:
    return next((i for i in ids if i > calendar), "")


def _advance(current: Pass, ids: list[str], pages: int) -> None:
    """The page is read through: the next page, else the next calendar, else the pass is over."""
    current.after = None
    current.page += 1
    if current.page < pages:
        return
    current.walked.append(current.calendar)
    current.calendar, current.page = _following(ids, current.calendar), 0
