"""The GoHighLevel harness of the shared adapter suite: the GHL sandbox over real HTTP, the real
registry and connection services over gRPC, and a config connected through GHL's OAuth code flow
(tests/adapters/conftest.py runs it as a user's browser would)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from libs import fhir_appointment as fa
from libs.asgi import RunningAsgi, serve_asgi
from libs.protos.concord.common.v1 import common_pb2
from libs.settings import Settings
from sandbox.ghl.app import create_app as create_ghl_sandbox
from sandbox.ghl.settings import AppRegistration, GhlSandboxSettings
from sandbox.ghl.state import Sandbox as GhlSandboxState
from services.adapters.ghl import GhlAdapter
from services.mapping.mappers.ghl_appointments import GhlAppointmentMapper
from tests.adapters.conftest import (
    CLIENT_ID,
    CLIENT_SECRET,
    REDIRECT_URI,
    AdapterHarness,
    EntityCase,
    _connect,
    _start_services,
)

VENDOR = "ghl"
RECORDS_PER_WRITE_CALL = 1  # GHL has no batch write for contacts


@dataclass
class GhlHarness(AdapterHarness):
    location_id: str = ""
    sandbox: GhlSandboxState | None = field(default=None, repr=False)  # the simulator's memory

    def record_id(self, record: dict) -> str:
        return record["id"]

    async def seed(self, count: int) -> list[str]:
        return (await self._admin("POST", "/seed", json={"locationId": self.location_id, "count": count}))["ids"]

    async def edit(self, external_id: str) -> None:
        await self._admin("PATCH", f"/contacts/{external_id}", json={"city": "Edited Springs"})

    async def stored(self) -> dict[str, dict]:
        listed = await self._admin("GET", "/contacts", params={"locationId": self.location_id})
        return {c["id"]: c for c in listed["contacts"]}

    def new_records(self, count: int) -> list[dict]:
        return [
            {
                "firstName": f"Adapter{i}",
                "lastName": "Suite",
                "email": f"adapter.suite.{i}@example.com",
                "phone": f"+1617555{i:04d}",
                "dateOfBirth": "1980-02-29",
                "gender": "female",
                "city": "Boston",
                "country": "US",
            }
            for i in range(count)
        ]

    def changed(self, record: dict) -> dict:
        return {**record, "city": f"Moved {record['firstName']}"}

    def changed_value(self, stored: dict) -> Any:
        return stored.get("city")

    def malformed(self, record: dict) -> list[tuple[dict, str]]:
        return [
            ({**record, "email": "not-an-email"}, "not-an-email"),
            ({**record, "favouriteColour": "teal-and-violet"}, "teal-and-violet"),
        ]

    async def expire_access_tokens(self) -> None:
        await self._admin("POST", "/faults", json={"expire_all_tokens": True})

    async def revoke_tokens(self) -> None:
        await self._admin("POST", "/faults", json={"revoke_tokens": True})

    async def live_refresh_tokens(self) -> set[str]:
        return set(self.sandbox.refresh_tokens)

    async def token_requests(self) -> int:
        return (await self._admin("GET", "/stats")).get("POST /oauth/token", 0)


async def open_harness(
    stack: contextlib.AsyncExitStack, settings: Settings, http: httpx.AsyncClient, rate_limit: tuple[int, float] | None
) -> GhlHarness:
    limits = {} if rate_limit is None else {"burst_limit": rate_limit[0], "burst_window_ms": int(rate_limit[1] * 1000)}
    app = create_ghl_sandbox(
        GhlSandboxSettings(apps=[AppRegistration(CLIENT_ID, CLIENT_SECRET, [REDIRECT_URI])], **limits)
    )
    served: RunningAsgi = await serve_asgi(app)
    stack.push_async_callback(served.stop)
    settings = await _start_services(stack, settings, "ghl", served.url)
    state: GhlSandboxState = app.state.sandbox
    # Retries after a 5xx back off 20 ms, not 0.5 s: the suite waits for retries, not for outages.
    adapter = functools.partial(GhlAdapter, backoff_seconds=0.02)
    return GhlHarness(
        **await _connect(stack, settings, "ghl", served.url, http, adapter),
        location_id=state.apps[CLIENT_ID].location_id,
        sandbox=state,
    )


# --- the suite's other entity: appointments (calendar events) -----------------------------------------

CALENDARS_VERSION = "2021-04-15"
SERVICE = "Annual physical"  # the one calendar the case's location runs


def _instant(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _slots(first_day: int, hours_utc: range) -> Iterator[datetime]:
    """Slot starts in the sandbox's open hours (Mon-Fri 9-17 New York), from ``first_day`` days ahead."""
    today = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    for day in itertools.count(first_day):
        moment = today + timedelta(days=day)
        if moment.weekday() < 5:
            for hour in hours_utc:
                yield moment.replace(hour=hour)


@dataclass
class GhlAppointmentCase(EntityCase):
    """Calendar events a GHL user books and edits with their own API token, in a location that
    runs one calendar (a pass walks calendars x 30-day window pages, at most 40 lists an
    activity: test_ghl_appointments.py covers many calendars). A pass is by start-time window,
    so the case books within the next weeks; every record is written as the appointment mapper
    writes it."""

    token: str = ""
    contacts: list[str] = field(default_factory=list)
    _new: itertools.count = field(default_factory=itertools.count, repr=False)

    @property
    def ghl(self) -> GhlHarness:
        assert isinstance(self.harness, GhlHarness)
        return self.harness

    def record_id(self, record: dict) -> str:
        return record["id"]

    async def api(self, method: str, path: str, **kwargs: Any) -> dict:
        """A GHL user's call; a 429 (the suite's adapter shares the location's bucket) waits its Retry-After."""
        headers = {"Authorization": f"Bearer {self.token}", "Version": CALENDARS_VERSION}
        while True:
            response = await self.ghl.http.request(method, f"{self.ghl.sandbox_url}{path}", headers=headers, **kwargs)
            if response.status_code != 429:
                assert response.status_code < 300, response.text
                return response.json()
            await asyncio.sleep(float(response.headers.get("Retry-After", "1")))

    async def seed(self, count: int) -> list[str]:
        slots = _slots(1, range(15, 18))  # 10:00-12:00 in New York
        made = []
        for i, start in zip(range(count), slots, strict=False):
            body = {
                "calendarId": self.calendar_id,
                "locationId": self.ghl.location_id,
                "contactId": self.contacts[i % len(self.contacts)],
                "startTime": start.isoformat(),
                "ignoreDateRange": True,
            }
            made.append((await self.api("POST", "/calendars/events/appointments", json=body))["id"])
        return made

    @property
    def calendar_id(self) -> str:
        location = self.ghl.sandbox.locations[self.ghl.location_id]
        return next(iter(location.calendars))

    async def edit(self, external_id: str) -> None:
        await self.api("PUT", f"/calendars/events/appointments/{external_id}", json={"title": "Bring referral"})

    async def stored(self) -> dict[str, dict]:
        listed = await self.ghl._admin("GET", "/appointments", params={"locationId": self.ghl.location_id})
        return {e["id"]: e for e in listed["appointments"]}

    def new_records(self, count: int) -> list[dict]:
        """Hub appointments as the mapper writes them, in the afternoons (the seeded ones are mornings)."""
        batch = next(self._new)
        slots = _slots(1 + 7 * batch, range(19, 22))
        records = []
        for i, start in zip(range(count), slots, strict=False):
            appointment = {
                "resourceType": "Appointment",
                "status": "booked",
                "start": _instant(start),
                "end": _instant(start + timedelta(minutes=45)),
                "serviceType": [{"coding": [{"system": "urn:practice:services", "code": "physical"}], "text": SERVICE}],
                "participant": [
                    {"actor": fa.external_actor(self.contacts[i % len(self.contacts)]), "status": "accepted"}
                ],
            }
            records.append(GhlAppointmentMapper().to_vendor(appointment))
        return records

    def changed(self, record: dict) -> dict:
        return {**record, "description": f"Fasting from {record['startTime']}"}

    def changed_value(self, stored: dict) -> Any:
        return stored.get("description")

    def malformed(self, record: dict) -> list[tuple[dict, str]]:
        return [
            ({**record, "service": {"code": "cryo", "name": "Cryotherapy Zyxw"}}, "Cryotherapy Zyxw"),  # no calendar
            ({**record, "startTime": "2026-13-45T09:00:00Z"}, "2026-13-45T09:00:00Z"),
        ]


async def _appointment_case(harness: AdapterHarness) -> EntityCase:
    assert isinstance(harness, GhlHarness) and harness.sandbox is not None
    location = harness.sandbox.locations[harness.location_id]
    kept = next(i for i, c in location.calendars.items() if c["name"] == SERVICE)
    location.calendars = {kept: location.calendars[kept]}
    location.calendar_by_service = {k: v for k, v in location.calendar_by_service.items() if v == kept}
    contacts = await harness._admin(
        "POST", "/seed", json={"locationId": harness.location_id, "count": 3, "appointments": False}
    )
    token = (await harness._admin("POST", "/tokens", json={"client_id": CLIENT_ID}))["access_token"]
    return GhlAppointmentCase(
        harness,
        entity=common_pb2.ENTITY_TYPE_APPOINTMENT,
        paging_records=25,
        paging_size=10,
        token=token,
        contacts=contacts["ids"],
    )


ENTITIES = {"appointment": _appointment_case}
GET_RECORDS = DELETE_RECORDS = ("patient",)
