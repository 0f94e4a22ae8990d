"""The Zenoti harness of the shared adapter suite: the Zenoti sandbox over real HTTP, the real
registry and connection services over gRPC, and a config connected with the organisation's API key
through ConnectWithCredentials (Zenoti has no OAuth redirect flow)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from temporalio.exceptions import ApplicationError

from libs.asgi import serve_asgi
from libs.grpc_client import call, open_channel
from libs.protos.concord.adapter.v1 import adapter_pb2 as pb
from libs.protos.concord.common.v1 import common_pb2
from libs.protos.concord.connection.v1 import connection_pb2 as cpb
from libs.protos.concord.connection.v1 import connection_pb2_grpc
from libs.protos.concord.registry.v1 import registry_pb2 as rpb
from libs.protos.concord.registry.v1 import registry_pb2_grpc
from libs.settings import Settings
from sandbox.zenoti import render
from sandbox.zenoti.app import create_app
from sandbox.zenoti.model import GuestMembership, Org, Service
from sandbox.zenoti.settings import OrgConfig, ZenotiSandboxSettings
from sandbox.zenoti.state import Sandbox
from services.adapters import AdapterContext
from services.adapters.zenoti import ZenotiAdapter
from services.adapters.zenoti.appointments import HORIZON_DAYS, LOOKBACK_DAYS, WINDOW_DAYS
from tests.adapters.conftest import PRACTICE_ID, AdapterHarness, EntityCase, _start_services

VENDOR = "zenoti"
# An API key is the whole credential: the suite's token-refresh test is not collected for it.
REFRESHES_TOKENS = False
ACCOUNT = "concordspa"
NO_TOKENS = "a Zenoti API key is the organisation's own credential: no access token expires, none is refreshed"


@dataclass
class ZenotiHarness(AdapterHarness):
    center_id: str = ""
    sandbox: Sandbox | None = field(default=None, repr=False)  # the simulator's memory

    @property
    def org(self) -> Org:
        org = self.sandbox.org(ACCOUNT)
        assert org is not None
        return org

    def record_id(self, record: dict) -> str:
        return record["id"]

    async def seed(self, count: int) -> list[str]:
        """Front-desk staff add guests: through the API with the limit lifted, so the suite's own
        calls still meet a full bucket."""
        await self._admin("POST", "/faults", json={"rate_limit_enabled": False})
        gate = asyncio.Semaphore(10)

        async def one(i: int) -> str:
            body = {
                "center_id": self.center_id,
                "personal_info": {
                    "first_name": f"Seeded{i}",
                    "last_name": "Guest",
                    "email": f"seeded.guest.{i}@example.com",
                    "mobile_phone": {"country_code": 225, "number": f"212555{i:04d}"},
                    "gender": i % 2,
                },
                "address_info": {"city": "New York", "country_id": 225, "state_id": 33, "zip_code": "10001"},
            }
            async with gate:
                response = await self.http.post(
                    f"{self.sandbox_url}/v1/guests", json=body, headers={"Authorization": f"apikey {self.org.api_key}"}
                )
            assert response.status_code == 200, response.text
            return response.json()["id"]

        try:
            return list(await asyncio.gather(*(one(i) for i in range(count))))
        finally:
            await self._admin("POST", "/faults", json={"rate_limit_enabled": True})

    async def edit(self, external_id: str) -> None:
        await self._admin("PATCH", f"/guests/{external_id}", json={"address_info": {"city": "Edited Springs"}})

    async def stored(self) -> dict[str, dict]:
        return {guest["id"]: render.guest(guest) for guest in self.org.guests.values()}

    def new_records(self, count: int) -> list[dict]:
        """What the Zenoti mapper makes of a hub patient: the fields Concord owns, no id or center."""
        return [
            {
                "personal_info": {
                    "first_name": f"Adapter{i}",
                    "middle_name": "",
                    "last_name": "Suite",
                    "email": f"adapter.suite.{i}@example.com",
                    "mobile_phone": {"country_code": 225, "number": f"617555{i:04d}"},
                    "gender": 0,
                    "date_of_birth": "1980-02-29T00:00:00",
                },
                "address_info": {
                    "address_1": f"{i + 1} Harbor St",
                    "address_2": "",
                    "city": "Boston",
                    "zip_code": "02110",
                    "country_id": 225,
                    "state_id": 22,
                    "state_other": "",
                },
            }
            for i in range(count)
        ]

    def changed(self, record: dict) -> dict:
        city = f"Moved {record['personal_info']['first_name']}"
        return {**record, "address_info": {**record["address_info"], "city": city}}

    def changed_value(self, stored: dict) -> Any:
        return stored["address_info"]["city"]

    def malformed(self, record: dict) -> list[tuple[dict, str]]:
        info = record["personal_info"]
        return [
            ({**record, "personal_info": {**info, "email": "not-an-email"}}, "not-an-email"),
            ({**record, "personal_info": {**info, "date_of_birth": "1980-02-30"}}, "1980-02-30"),
        ]

    async def expire_access_tokens(self) -> None:
        raise NotImplementedError(NO_TOKENS)

    async def revoke_tokens(self) -> None:
        """An admin regenerates the organisation's API key: the old one answers 401 at once."""
        await self._admin("POST", f"/orgs/{ACCOUNT}/api-key")

    async def live_refresh_tokens(self) -> set[str]:
        raise NotImplementedError(NO_TOKENS)

    async def token_requests(self) -> int:
        raise NotImplementedError(NO_TOKENS)


async def connect_api_key(
    stack: contextlib.AsyncExitStack, settings: Settings, api_key: str, center_id: str, practice_id: str = PRACTICE_ID
) -> tuple[str, connection_pb2_grpc.ConnectionServiceStub]:
    """A practice, a Zenoti config, and its connection made with the API key and center id."""
    registry_channel = open_channel(settings.registry_address)
    stack.push_async_callback(registry_channel.close)
    registry = registry_pb2_grpc.RegistryServiceStub(registry_channel)
    await call(registry.CreatePractice, rpb.CreatePracticeRequest(practice_id=practice_id, name="Suite Spa"))
    config = await call(
        registry.CreateIntegrationConfig,
        rpb.CreateIntegrationConfigRequest(
            config=rpb.IntegrationConfig(practice_id=practice_id, integration_type=VENDOR)
        ),
    )
    config_id = config.config.config_id
    channel = open_channel(settings.connection_address)
    stack.push_async_callback(channel.close)
    connections = connection_pb2_grpc.ConnectionServiceStub(channel)
    await call(
        connections.ConnectWithCredentials,
        cpb.ConnectWithCredentialsRequest(
            config_id=config_id, api_key=cpb.ApiKeyCredential(api_key=api_key), external_account_id=center_id
        ),
    )
    return config_id, connections


async def open_harness(
    stack: contextlib.AsyncExitStack,
    settings: Settings,
    http: httpx.AsyncClient,
    rate_limit: tuple[int, float] | None,
    *,
    org: OrgConfig | None = None,
    clock: Callable[[], float] | None = None,
) -> ZenotiHarness:
    """The suite's harness; Zenoti's own tests may change the org's settings and give the sandbox a clock."""
    # The suite's rate-limit test asks for a small bucket and a short window (e.g. 5 per 0.5 s).
    options: dict[str, Any] = {} if rate_limit is None else {"rate_limit": rate_limit[0], "rate_window": rate_limit[1]}
    if clock is not None:
        options["clock"] = clock
    org = org or OrgConfig(account_name=ACCOUNT, seed=False)
    app = create_app(ZenotiSandboxSettings(orgs=[org], **options))
    served = await serve_asgi(app)
    stack.push_async_callback(served.stop)
    settings = await _start_services(stack, settings, VENDOR, served.url)
    sandbox: Sandbox = app.state.sandbox
    center_id = next(c.id for c in sandbox.org(ACCOUNT).centers.values() if c.code == "BOS")
    config_id, connections = await connect_api_key(stack, settings, sandbox.org(ACCOUNT).api_key, center_id)
    # Retries after a 5xx back off 20 ms, not 0.5 s: the suite waits for retries, not for outages.
    adapter = ZenotiAdapter(AdapterContext(settings, connections), backoff_seconds=0.02)
    stack.push_async_callback(adapter.aclose)
    return ZenotiHarness(
        vendor=VENDOR,
        settings=settings,
        sandbox_url=served.url,
        config_id=config_id,
        connections=connections,
        adapter=adapter,
        http=http,
        center_id=center_id,
        sandbox=sandbox,
    )


async def fetch_failure(harness: ZenotiHarness, content: bytes, entity_type: int) -> ApplicationError:
    """The ApplicationError a pull raises when every Zenoti answer is a 200 with ``content``."""
    answer = httpx.MockTransport(lambda request: httpx.Response(200, content=content))
    adapter = ZenotiAdapter(
        AdapterContext(harness.settings, harness.connections), http=httpx.AsyncClient(transport=answer)
    )
    request = pb.FetchChangesRequest(config_id=harness.config_id, entity_type=entity_type, page_size=2)
    try:
        await adapter.fetch_changes(request)
    except ApplicationError as error:
        return error
    finally:
        await adapter.aclose()
    raise AssertionError("the pull accepted the answer")


# --- the suite's other entities: the service catalog and guest memberships, both pull only ---------


@dataclass
class ZenotiBackOfficeCase(EntityCase):
    """An entity Zenoti's back office or front desk keeps and its public API only lists."""

    @property
    def zenoti(self) -> ZenotiHarness:
        assert isinstance(self.harness, ZenotiHarness)
        return self.harness

    def record_id(self, record: dict) -> str:
        return record["id"]


@dataclass
class ZenotiCatalogCase(ZenotiBackOfficeCase):
    """The center's service catalog. The case starts from an empty catalog so that the suite's
    counts are its own."""

    def __post_init__(self) -> None:
        self.zenoti.org.services.clear()

    async def seed(self, count: int) -> list[str]:
        org = self.zenoti.org
        category = next(iter(org.categories.values()))
        made = [
            Service(str(uuid.uuid4()), f"S{i:04d}", f"Treatment {i}", 30 + i % 4 * 15, category.id, 100.0 + i, True)
            for i in range(count)
        ]
        org.services.update((service.id, service) for service in made)
        return [service.id for service in made]

    async def edit(self, external_id: str) -> None:
        self.zenoti.org.services[external_id].base_price += 10  # the back office changes a price

    async def stored(self) -> dict[str, dict]:
        org = self.zenoti.org
        center = org.centers[self.zenoti.center_id]
        return {s.id: render.service(org, s, center) for s in org.services.values()}


@dataclass
class ZenotiMembershipCase(ZenotiBackOfficeCase):
    """Memberships the center's guests hold, one each (the pass pages by guests, and the suite
    holds each page to its size). Every pass is a full pass (services/adapters/zenoti/memberships.py),
    and each costs one call per guest under the 60-a-minute pacer: the case keeps its counts small."""

    async def seed(self, count: int) -> list[str]:
        org = self.zenoti.org
        plan = next(iter(org.memberships.values()))
        guests = await self.zenoti.seed(count)
        today = datetime.now(UTC).date()
        made = [
            GuestMembership(
                str(uuid.uuid4()),
                guest,
                plan.id,
                self.zenoti.center_id,
                today,
                today + timedelta(days=365),
                "Active",
                str(uuid.uuid4()),
            )
            for guest in guests
        ]
        org.guest_memberships.update((membership.id, membership) for membership in made)
        return [membership.id for membership in made]

    async def edit(self, external_id: str) -> None:
        self.zenoti.org.guest_memberships[external_id].status = "Cancelled"  # cancelled at the front desk

    async def stored(self) -> dict[str, dict]:
        org = self.zenoti.org
        return {m.id: render.guest_membership(org, m) for m in org.guest_memberships.values()}


async def _service_case(harness: AdapterHarness) -> EntityCase:
    return ZenotiCatalogCase(
        harness, entity=common_pb2.ENTITY_TYPE_SERVICE, writable=False, paging_records=40, paging_size=15
    )


async def _membership_case(harness: AdapterHarness) -> EntityCase:
    # A pass over n guests costs about n + page size + pages calls; each test stays under 57 a minute.
    return ZenotiMembershipCase(
        harness,
        entity=common_pb2.ENTITY_TYPE_MEMBERSHIP,
        writable=False,
        paging_records=6,
        paging_size=4,
        fault_records=8,
        full_passes=True,
    )


ENTITIES = {"service": _service_case, "membership": _membership_case}
PULL_ONLY = ("service", "membership")


BOSTON = ZoneInfo("America/New_York")  # the BOS center's zone, as its config names it for bookings


def center_time(days: int, hour: int) -> datetime:
    """A wall-clock hour at the Boston center, ``days`` from today, as a UTC instant."""
    day = datetime.now(BOSTON).date() + timedelta(days=days)
    return datetime(day.year, day.month, day.day, hour, tzinfo=BOSTON).astimezone(UTC)


@dataclass
class ZenotiAppointmentCase(ZenotiBackOfficeCase):
    """Appointments: seeded and edited in the Appointment Book (the front desk), written through the
    booking flow. A pull is a sweep of 7-day windows from the lookback to the horizon, and every
    sweep re-reads all of it (services/adapters/zenoti/appointments.py): full passes of a fixed
    number of pages. One appointment a day keeps each window within the suite's page size."""

    guest_id: str = ""
    service_id: str = ""

    def expected_pages(self, records: int, page_size: int) -> int:
        return -(-(LOOKBACK_DAYS + HORIZON_DAYS + 1) // WINDOW_DAYS)

    def record_id(self, record: dict) -> str:
        return record["appointment_id"]

    async def seed(self, count: int) -> list[str]:
        made = []
        for day in range(1, count + 1):
            start = center_time(day, 10).astimezone(BOSTON).strftime("%Y-%m-%dT%H:%M:%S")
            body = {
                "account_name": ACCOUNT,
                "center_id": self.zenoti.center_id,
                "guest_id": self.guest_id,
                "service_id": self.service_id,
                "start_time": start,
            }
            made.append((await self.zenoti._admin("POST", "/appointments", json=body))["appointment_id"])
        return made

    async def edit(self, external_id: str) -> None:
        """The front desk drags it an hour later (Zenoti sends no webhook for that)."""
        start = self.zenoti.org.appointments[external_id].start + timedelta(hours=1)
        local = start.astimezone(BOSTON).strftime("%Y-%m-%dT%H:%M:%S")
        await self.zenoti._admin("PATCH", f"/appointments/{external_id}", json={"start_time": local})

    async def stored(self) -> dict[str, dict]:
        org = self.zenoti.org
        return {a.id: render.appointment(org, a) for a in org.appointments.values()}

    def new_records(self, count: int) -> list[dict]:
        """What the mapper's to_vendor hands the adapter: at 14:00, a day apart."""
        return [
            {
                "guest_id": self.guest_id,
                "service_id": self.service_id,
                "therapist_id": None,
                "start_time_utc": center_time(1 + i, 14).strftime("%Y-%m-%dT%H:%M:%S"),
                "status": 0,
                "notes": "Suite booking",
            }
            for i in range(count)
        ]

    def changed(self, record: dict) -> dict:
        """Rescheduled an hour later: the booking flow moves the same appointment."""
        start = datetime.fromisoformat(record["start_time_utc"]) + timedelta(hours=1)
        return {**record, "start_time_utc": start.strftime("%Y-%m-%dT%H:%M:%S")}

    def changed_value(self, stored: dict) -> Any:
        return stored["start_time_utc"]

    def malformed(self, record: dict) -> list[tuple[dict, str]]:
        unknown = "0d4c3b2a-1f0e-4d9c-8b7a-6f5e4d3c2b1a"
        return [
            ({**record, "start_time_utc": "2026-13-45T09:00:00"}, "2026-13-45T09:00:00"),
            ({**record, "service_id": unknown}, unknown),
        ]


async def _appointment_case(harness: AdapterHarness) -> EntityCase:
    assert isinstance(harness, ZenotiHarness)
    limiter = harness.sandbox.limiter
    if (limiter.limit, limiter.window) == (60, 60.0):
        # A booking costs four calls: at Zenoti's default 60 a minute the suite's write tests would
        # each wait out a minute. This organisation's plan allows 600 (the pacer follows Zenoti's
        # Organization-RateLimit-Limit header); pacing at 60 a minute has its own tests in
        # test_zenoti_adapter.py, and the suite's rate-limit tests ask for their own small limits.
        limiter.limit = 600
    (guest_id,) = await harness.seed(1)
    service = next(s for s in harness.org.services.values() if s.duration <= 60)
    return ZenotiAppointmentCase(
        harness,
        entity=common_pb2.ENTITY_TYPE_APPOINTMENT,
        options=rpb.VendorOptions(booking=rpb.BookingOptions(center_time_zone=BOSTON.key)),
        paging_records=20,
        paging_size=10,
        full_passes=True,
        guest_id=guest_id,
        service_id=service.id,
    )


ENTITIES["appointment"] = _appointment_case
GET_RECORDS = ("patient", "appointment")
