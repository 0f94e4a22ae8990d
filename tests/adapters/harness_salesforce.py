"""The Salesforce harness of the shared adapter suite: the Salesforce sandbox over real HTTP (login
host 127.0.0.1, the org's instance on localhost, so the adapter must use the token's instance_url),
the registry and connection services over gRPC, and a config connected the way an integration user
is: ConnectWithCredentials with a username-password grant (password + security token)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette

from libs import fhir_appointment as fa
from libs.grpc_client import call, open_channel
from libs.protos.concord.common.v1 import common_pb2
from libs.protos.concord.connection.v1 import connection_pb2 as cpb
from libs.protos.concord.connection.v1 import connection_pb2_grpc
from libs.protos.concord.registry.v1 import registry_pb2 as rpb
from libs.protos.concord.registry.v1 import registry_pb2_grpc
from libs.settings import Settings
from sandbox.salesforce.app import create_app
from sandbox.salesforce.settings import ConnectedAppRegistration, SalesforceSandboxSettings, UserRegistration
from sandbox.salesforce.state import Sandbox
from services.adapters import AdapterContext
from services.adapters.salesforce import SalesforceAdapter
from services.adapters.salesforce.client import API_VERSION, AllowancePolicy
from services.mapping.mappers.salesforce_appointments import SalesforceAppointmentMapper
from services.mapping.mappers.salesforce_events import SalesforceEventMapper
from tests.adapters.conftest import (
    CLIENT_ID,
    CLIENT_SECRET,
    PRACTICE_ID,
    REDIRECT_URI,
    AdapterHarness,
    EntityCase,
    _start_services,
)

VENDOR = "salesforce"
# No per-window limit to wait out: its daily allowance (pacing, REQUEST_LIMIT_EXCEEDED) is tested
# in test_salesforce_adapter.py, so the suite's burst-limit test is not collected for it.
BURST_LIMIT = False
# sObject Collections write up to 200 records in one call.
RECORDS_PER_WRITE_CALL = 200
USERNAME = "concord.sync@harbor-clinic.sandbox"
PASSWORD = "Harbor-Sync-Passw0rd"
SECURITY_TOKEN = "HarborSyncToken01"
EXTERNAL_ID = "Concord_Patient_Id__c"
TOKEN_ROUTE = "POST /services/oauth2/token"
UPSERT_ROUTE = "PATCH /services/data/{version}/composite/sobjects/{sobject}/{field}"
UPDATE_ROUTE = "PATCH /services/data/{version}/composite/sobjects"
COMPOSITE_ROUTE = "POST /services/data/{version}/composite"
QUERY_ROUTE = "GET /services/data/{version}/query"
APPOINTMENT = common_pb2.ENTITY_TYPE_APPOINTMENT
APPOINTMENT_EXTERNAL_ID = "Concord_Appointment_Id__c"  # on ServiceAppointment and Event alike
NOTES = "Discuss Zyxwvut biopsy results"  # PHI canary


def hub_appointments(accounts: list[str], count: int, prefix: str = "hub-appt") -> list[dict]:
    """Hub appointments as MapToVendor gets them: the patient as a logical reference to its account."""
    return [
        {
            "resourceType": "Appointment",
            "id": f"{prefix}-{i:04d}",
            "status": "booked",
            "start": f"2026-03-{2 + i % 20:02d}T{9 + i % 8:02d}:00:00Z",
            "end": f"2026-03-{2 + i % 20:02d}T{9 + i % 8:02d}:30:00Z",
            "serviceType": [{"text": "Annual physical"}],
            "description": NOTES,
            "participant": [{"actor": fa.external_actor(accounts[i % len(accounts)]), "status": "accepted"}],
        }
        for i in range(count)
    ]


class OrgClock:
    """The org's clock: still, two minutes behind real time (so every record is settled by the
    server's Date header), moved on by a test; each user action happens one second later."""

    def __init__(self) -> None:
        self.now = float(int(time.time()) - 120)

    def __call__(self) -> float:
        return self.now

    def tick(self, seconds: float = 1.0) -> None:
        self.now += seconds


class BrokenQueryLocators(httpx.AsyncBaseTransport):
    """Salesforce's malformed page is a nextRecordsUrl naming a query locator the org never issued
    (the sandbox's `malformed_page` fault). The sandbox gives one only on results longer than a
    batch (200+ rows); when armed, this turns the next smaller query answer into that shape."""

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self.armed = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        if not (self.armed and request.method == "GET" and request.url.path.endswith("/query")):
            return response
        body = json.loads(await response.aread())
        if response.status_code != 200 or not body.get("records"):
            return httpx.Response(response.status_code, headers=response.headers, content=response.content)
        self.armed = False
        kept = body["records"][: max(1, len(body["records"]) // 2)]
        never_issued = f"/services/data/v{API_VERSION}/query/01g000000000000AAA-{len(kept)}"
        body.update(done=False, records=kept, nextRecordsUrl=never_issued)
        headers = {k: v for k, v in response.headers.items() if k.lower() not in ("content-length", "content-encoding")}
        return httpx.Response(200, headers=headers, json=body)

    async def aclose(self) -> None:
        await self._inner.aclose()


@dataclass
class SalesforceHarness(AdapterHarness):
    sandbox: Sandbox | None = field(default=None, repr=False)  # the simulator's memory
    clock: OrgClock = field(default_factory=OrgClock)
    locators: BrokenQueryLocators | None = field(default=None, repr=False)
    # The config's options as the sync service sends them with each request (its appointment object).
    options: rpb.VendorOptions = field(default_factory=rpb.VendorOptions)
    _seeded: itertools.count = field(default_factory=itertools.count, repr=False)
    rate_limited_status = 403  # REQUEST_LIMIT_EXCEEDED

    @property
    def org_id(self) -> str:
        return self.sandbox.default_org_id

    def record_id(self, record: dict) -> str:
        return record["Id"]

    async def seed(self, count: int) -> list[str]:
        """Person Accounts made by a user in the UI, all in one second (so they share a SystemModstamp)."""
        self.clock.tick()
        ids = []
        for n in itertools.islice(self._seeded, count):
            account = {
                "FirstName": f"Seeded{n}",
                "LastName": "Patient",
                "PersonEmail": f"seeded.{n}@example.com",
                "PersonBirthdate": "1975-06-01",
                "PersonMobilePhone": f"+1508555{n:04d}",
                "PersonMailingCity": "Worcester",
            }
            ids.append((await self._admin("POST", "/records/Account", json=account))["Id"])
        return ids

    async def edit(self, external_id: str) -> None:
        self.clock.tick()
        await self._admin("PATCH", f"/records/Account/{external_id}", json={"PersonMailingCity": "Edited Springs"})

    async def stored(self) -> dict[str, dict]:
        accounts = await self._admin("GET", "/records/Account")
        return {a["Id"]: a for a in accounts if a["IsPersonAccount"]}

    def new_records(self, count: int) -> list[dict]:
        return [
            {
                "FirstName": f"Adapter{i}",
                "LastName": "Suite",
                "PersonEmail": f"adapter.suite.{i}@example.com",
                "PersonMobilePhone": f"+1617555{i:04d}",
                "PersonBirthdate": "1980-02-29",
                "PersonGenderIdentity": "Female",
                "PersonMailingCity": "Boston",
                "PersonMailingCountry": "US",
                EXTERNAL_ID: f"suite-patient-{i:04d}",
            }
            for i in range(count)
        ]

    def changed(self, record: dict) -> dict:
        return {**record, "PersonMailingCity": f"Moved {record['FirstName']}"}

    def changed_value(self, stored: dict) -> Any:
        return stored.get("PersonMailingCity")

    def malformed(self, record: dict) -> list[tuple[dict, str]]:
        # Each variant is its own patient: variants sharing an external id would fail as duplicates.
        own = record[EXTERNAL_ID]
        return [
            ({**record, "PersonEmail": "not-an-email", EXTERNAL_ID: f"{own}-email"}, "not-an-email"),
            ({**record, "Favourite_Colour__c": "teal-and-violet", EXTERNAL_ID: f"{own}-field"}, "teal-and-violet"),
            ({**record, "LastName": "Zebulon" * 12, EXTERNAL_ID: f"{own}-long"}, "Zebulon" * 12),
        ]

    async def expire_access_tokens(self) -> None:
        await self._admin("POST", "/faults", json={"expire_all_tokens": True})

    async def revoke_tokens(self) -> None:
        """Sessions and refresh tokens revoked, and the integration user's security token reset by an
        admin: what cuts a username-password connection off."""
        await self._admin("POST", "/faults", json={"revoke_tokens": True})
        self.sandbox.user_by_name(USERNAME).security_token = "ResetByAnAdmin"  # noqa: S105

    async def live_refresh_tokens(self) -> set[str]:
        """Salesforce's renewable credential here is the session: the password grant issues no refresh
        token, and refresh tokens it does issue never rotate."""
        return {token for token in self.sandbox.sessions if self.sandbox.live_session(token)}

    async def token_requests(self) -> int:
        return await self.requests(TOKEN_ROUTE)

    async def requests(self, route: str) -> int:
        return (await self._admin("GET", "/stats")).get(route, 0)

    async def inject(self, *, server_error_rate: float = 0.0, malformed_pages: bool = False) -> None:
        await self._admin("POST", "/faults", json={"status_5xx_rate": server_error_rate})
        self.locators.armed = malformed_pages

    async def inject_storm(self, requests: int) -> None:
        """The next `requests` API calls are refused with 403 REQUEST_LIMIT_EXCEEDED."""
        await self._admin("POST", "/faults", json={"rate_limit_storm": requests})

    async def clear_faults(self) -> None:
        await self._admin("DELETE", "/faults")
        self.locators.armed = False

    async def set_daily_limit(self, limit: int) -> None:
        await self._admin("PATCH", f"/orgs/{self.org_id}", json={"daily_api_limit": limit})

    def use_allowance(self, calls: int) -> None:
        """Other integrations and the org's users spend `calls` API calls of today's allowance."""
        self.sandbox.orgs[self.org_id].api_calls.extend([self.clock()] * calls)


@contextlib.asynccontextmanager
async def _serve(make_app: Callable[[int], Starlette]):  # noqa: ANN202
    """Serves the app on a loopback port bound first, so the app can be told its own URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # asyncio sets TCP_NODELAY only on sockets made with proto=IPPROTO_TCP; without it every
    # request on a kept-alive connection waits ~40 ms for a delayed ACK (Nagle).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app = make_app(port)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off"))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if serving.done():
            await serving
            raise RuntimeError("the Salesforce sandbox did not start")
        await asyncio.sleep(0.005)
    try:
        yield port, app
    finally:
        server.should_exit = True
        await serving
        sock.close()


async def open_harness(
    stack: contextlib.AsyncExitStack,
    settings: Settings,
    http: httpx.AsyncClient,
    rate_limit: tuple[int, float] | None,
    *,
    appointment_object: int = rpb.SALESFORCE_APPOINTMENT_OBJECT_UNSPECIFIED,
) -> SalesforceHarness:
    clock = OrgClock()
    port, app = await stack.enter_async_context(
        _serve(
            lambda port: create_app(
                SalesforceSandboxSettings(
                    base_url=f"http://localhost:{port}",
                    login_url=f"http://127.0.0.1:{port}",
                    clock=clock,
                    users=[UserRegistration(USERNAME, PASSWORD, SECURITY_TOKEN)],
                    apps=[ConnectedAppRegistration(CLIENT_ID, CLIENT_SECRET, redirect_uris=[REDIRECT_URI])],
                )
            )
        )
    )
    login_url = f"http://127.0.0.1:{port}"
    settings = await _start_services(stack, settings, VENDOR, login_url)

    registry_channel = open_channel(settings.registry_address)
    stack.push_async_callback(registry_channel.close)
    registry = registry_pb2_grpc.RegistryServiceStub(registry_channel)
    await call(registry.CreatePractice, rpb.CreatePracticeRequest(practice_id=PRACTICE_ID, name="Suite Clinic"))
    options = rpb.VendorOptions(salesforce=rpb.SalesforceOptions(appointment_object=appointment_object))
    config = await call(
        registry.CreateIntegrationConfig,
        rpb.CreateIntegrationConfigRequest(
            config=rpb.IntegrationConfig(practice_id=PRACTICE_ID, integration_type=VENDOR, options=options)
        ),
    )
    config_id = config.config.config_id
    channel = open_channel(settings.connection_address)
    stack.push_async_callback(channel.close)
    connections = connection_pb2_grpc.ConnectionServiceStub(channel)
    await call(
        connections.SetOAuthClient,
        cpb.SetOAuthClientRequest(integration_type=VENDOR, client_id=CLIENT_ID, client_secret=CLIENT_SECRET),
    )
    await call(
        connections.ConnectWithCredentials,
        cpb.ConnectWithCredentialsRequest(
            config_id=config_id,
            password=cpb.PasswordGrant(username=USERNAME, password=PASSWORD, security_token=SECURITY_TOKEN),
        ),
    )

    locators = BrokenQueryLocators()
    # Retries after a 5xx back off 20 ms, not 0.5 s: the suite waits for retries, not for outages.
    # Salesforce's limit is a daily allowance, not a window (rate_limit has nothing to shape); the
    # suite's rate-limit tests retry a deferred batch at once where Temporal would wait the backoff.
    allowance = None if rate_limit is None else AllowancePolicy(backoff=timedelta(0))
    adapter = SalesforceAdapter(
        AdapterContext(settings, connections),
        http=httpx.AsyncClient(transport=locators, timeout=30),
        backoff_seconds=0.02,
        allowance=allowance,
    )
    stack.push_async_callback(adapter.aclose)
    return SalesforceHarness(
        vendor=VENDOR,
        settings=settings,
        sandbox_url=login_url,
        config_id=config_id,
        connections=connections,
        adapter=adapter,
        http=http,
        sandbox=app.state.sandbox,
        clock=clock,
        locators=locators,
        options=config.config.options,
    )


# --- the suite's other entities: appointments, as ServiceAppointments or calendar Events -------------


@dataclass
class SalesforceAppointmentCase(EntityCase):
    """Appointments under the Person Accounts the case seeds first: made and edited by the org's
    users through the UI routes (the org's clock a second on, so SystemModstamps move), written by
    the adapter as the config's mapper writes them (the hub's id in Concord_Appointment_Id__c)."""

    sobject: str = ""
    accounts: list[str] = field(default_factory=list)
    edit_patch: dict = field(default_factory=dict)
    _seeded: itertools.count = field(default_factory=itertools.count, repr=False)
    _batches: itertools.count = field(default_factory=itertools.count, repr=False)

    @property
    def sf(self) -> SalesforceHarness:
        assert isinstance(self.harness, SalesforceHarness)
        return self.harness

    def record_id(self, record: dict) -> str:
        return record["Id"]

    def ui_record(self, n: int, start: str, end: str) -> dict:
        """What a user enters in the UI for the n-th seeded appointment (no Concord id)."""
        raise NotImplementedError

    def to_vendor(self, appointment: dict) -> dict:
        raise NotImplementedError

    async def seed(self, count: int) -> list[str]:
        """Appointments a scheduler books in one second, a quarter-hour apart, over the accounts."""
        self.sf.clock.tick()
        ids = []
        for n in itertools.islice(self._seeded, count):
            start = datetime(2026, 4, 6, 8, tzinfo=UTC) + timedelta(minutes=15 * n)
            start_text, end_text = (_rest_datetime(t) for t in (start, start + timedelta(minutes=15)))
            record = self.ui_record(n, start_text, end_text)
            ids.append((await self.sf._admin("POST", f"/records/{self.sobject}", json=record))["Id"])
        return ids

    async def edit(self, external_id: str) -> None:
        self.sf.clock.tick()
        await self.sf._admin("PATCH", f"/records/{self.sobject}/{external_id}", json=self.edit_patch)

    async def stored(self) -> dict[str, dict]:
        return {r["Id"]: r for r in await self.sf._admin("GET", f"/records/{self.sobject}")}

    def new_records(self, count: int) -> list[dict]:
        prefix = f"suite-{self.sobject.lower()}-{next(self._batches)}"
        return [self.to_vendor(a) for a in hub_appointments(self.accounts, count, prefix)]

    def _own(self, record: dict, suffix: str, **changes: Any) -> dict:
        # Each variant is its own appointment: variants sharing an external id would fail as duplicates.
        return {**record, **changes, APPOINTMENT_EXTERNAL_ID: f"{record[APPOINTMENT_EXTERNAL_ID]}-{suffix}"}


def _rest_datetime(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000+0000")


# Not a date: the sandbox refuses it with JSON_PARSER_ERROR, whose message quotes it.
NOT_AN_INSTANT = "2026-13-45T09:00:00Z"
# Longer than Subject's 255 characters (STRING_TOO_LONG quotes it), and PHI.
TOO_LONG_SUBJECT = "Zyxwvut biopsy follow-up " * 11


@dataclass
class ServiceAppointmentCase(SalesforceAppointmentCase):
    """Salesforce Scheduler's ServiceAppointment, a config's default appointment object."""

    def ui_record(self, n: int, start: str, end: str) -> dict:
        return {
            "ParentRecordId": self.accounts[n % len(self.accounts)],
            "Status": "Scheduled",
            "SchedStartTime": start,
            "SchedEndTime": end,
            "Subject": "Annual physical",
            "AppointmentType": "In Person",
        }

    def to_vendor(self, appointment: dict) -> dict:
        return SalesforceAppointmentMapper().to_vendor(appointment)

    def changed(self, record: dict) -> dict:
        return {**record, "Status": "Completed"}  # the hub marks it fulfilled

    def changed_value(self, stored: dict) -> Any:
        return stored.get("Status")

    def malformed(self, record: dict) -> list[tuple[dict, str]]:
        return [
            # Status is a restricted picklist: INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST.
            (self._own(record, "status", Status="teal-and-violet"), "teal-and-violet"),
            (self._own(record, "start", SchedStartTime=NOT_AN_INSTANT), NOT_AN_INSTANT),
            (self._own(record, "subject", Subject=TOO_LONG_SUBJECT), TOO_LONG_SUBJECT),
            # Scheduled End before Scheduled Start: FIELD_INTEGRITY_EXCEPTION.
            (self._own(record, "end", SchedEndTime="2026-02-01T07:15:00Z"), "2026-02-01T07:15:00Z"),
        ]


@dataclass
class CalendarEventCase(SalesforceAppointmentCase):
    """Lightning calendar Events, for a config whose options choose SALESFORCE_APPOINTMENT_OBJECT_EVENT."""

    def ui_record(self, n: int, start: str, end: str) -> dict:
        return {
            "WhatId": self.accounts[n % len(self.accounts)],
            "Subject": "Meeting",
            "StartDateTime": start,
            "EndDateTime": end,
            "IsAllDayEvent": False,
        }

    def to_vendor(self, appointment: dict) -> dict:
        return SalesforceEventMapper().to_vendor(appointment)

    def changed(self, record: dict) -> dict:
        return {**record, "Subject": f"Follow-up {record[APPOINTMENT_EXTERNAL_ID]}"}

    def changed_value(self, stored: dict) -> Any:
        return stored.get("Subject")

    def malformed(self, record: dict) -> list[tuple[dict, str]]:
        return [
            # Show Time As is a restricted picklist: INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST.
            (self._own(record, "show-as", ShowAs="teal-and-violet"), "teal-and-violet"),
            (self._own(record, "start", StartDateTime=NOT_AN_INSTANT), NOT_AN_INSTANT),
            (self._own(record, "subject", Subject=TOO_LONG_SUBJECT), TOO_LONG_SUBJECT),
            # Ends before it starts: FIELD_INTEGRITY_EXCEPTION.
            (self._own(record, "end", EndDateTime="2026-02-01T07:15:00Z"), "2026-02-01T07:15:00Z"),
        ]


async def _accounts(harness: AdapterHarness) -> list[str]:
    assert isinstance(harness, SalesforceHarness)
    return await harness.seed(3)  # the patients the appointments belong to


async def _service_appointment_case(harness: AdapterHarness) -> EntityCase:
    default = rpb.SalesforceOptions(appointment_object=rpb.SALESFORCE_APPOINTMENT_OBJECT_UNSPECIFIED)
    return ServiceAppointmentCase(
        harness,
        entity=APPOINTMENT,
        options=rpb.VendorOptions(salesforce=default),
        sobject="ServiceAppointment",
        accounts=await _accounts(harness),
        edit_patch={"Status": "Dispatched"},  # a dispatcher sends the clinician
    )


async def _calendar_event_case(harness: AdapterHarness) -> EntityCase:
    events = rpb.SalesforceOptions(appointment_object=rpb.SALESFORCE_APPOINTMENT_OBJECT_EVENT)
    return CalendarEventCase(
        harness,
        entity=APPOINTMENT,
        options=rpb.VendorOptions(salesforce=events),
        sobject="Event",
        accounts=await _accounts(harness),
        # The front desk drags it in the Lightning calendar; the sandbox keeps its duration.
        edit_patch={"StartDateTime": "2026-05-04T13:00:00.000+0000"},
    )


ENTITIES = {"appointment": _service_appointment_case, "event": _calendar_event_case}
GET_RECORDS = DELETE_RECORDS = ("patient", "appointment", "event")
