"""The harness of the shared adapter suite: a vendor sandbox over real HTTP, the real registry and
connection services over real gRPC, a config connected through the vendor's real OAuth flow, and
the adapter under test calling the connection service for its tokens.

The suite's tests (test_shared_suite.py) talk only to an `EntityCase`: one entity of one vendor,
on an `AdapterHarness` (the vendor, connected). A new vendor adds tests/adapters/harness_<vendor>.py
with a harness subclass and `open_harness`; its patients are a case at once, and each further
entity it syncs is one entry of its module's `ENTITIES`. Every generic test then runs against each
(vendor, entity). Zapier has no harness: it keeps no records to page or write back (its README says
where its deliveries are tested).
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from google.protobuf import json_format, struct_pb2

from libs.grpc_client import call, open_channel
from libs.protos.concord.adapter.v1 import adapter_pb2 as pb
from libs.protos.concord.common.v1 import common_pb2
from libs.protos.concord.connection.v1 import connection_pb2 as cpb
from libs.protos.concord.connection.v1 import connection_pb2_grpc
from libs.protos.concord.registry.v1 import registry_pb2 as rpb
from libs.protos.concord.registry.v1 import registry_pb2_grpc
from libs.settings import Settings
from services.adapters import Adapter, AdapterContext
from services.connection.server import start as start_connection
from services.connection.settings import ConnectionSettings
from services.registry.server import start as start_registry

CLIENT_ID = "concord-adapter-tests"
CLIENT_SECRET = "adapter-suite-client-secret-0123"
REDIRECT_URI = "http://127.0.0.1:8080/oauth/callback"
PRACTICE_ID = "p-adapter-suite"
PATIENT = common_pb2.ENTITY_TYPE_PATIENT


def struct(record: dict) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(record)
    return message


def plain(message: struct_pb2.Struct) -> dict:
    return json_format.MessageToDict(message)


def response_statuses(adapter: Any) -> list[int]:
    """The status of every HTTP answer the adapter receives from now on, in order."""
    statuses: list[int] = []

    async def seen(response: httpx.Response) -> None:
        statuses.append(response.status_code)

    adapter._http.event_hooks["response"].append(seen)
    return statuses


@dataclass
class AdapterHarness:
    """One vendor, connected: what the generic suite needs to drive and observe it."""

    vendor: str
    settings: Settings  # connection_address points at the running connection service
    sandbox_url: str
    config_id: str
    connections: connection_pb2_grpc.ConnectionServiceStub
    adapter: Adapter
    http: httpx.AsyncClient = field(repr=False)

    # --- the adapter's activities, as the sync workflows call them --------------------------------

    async def fetch(self, cursor: str = "", page_size: int = 100) -> pb.FetchChangesResponse:
        request = pb.FetchChangesRequest(
            config_id=self.config_id, entity_type=PATIENT, cursor=cursor, page_size=page_size
        )
        return await self.adapter.fetch_changes(request)

    async def upsert(
        self, items: list[tuple[str, str, dict]], options: rpb.VendorOptions | None = None
    ) -> pb.UpsertBatchResponse:
        """items: (ref, external_id or "", record); options: the config's, as the sync service sends them."""
        request = pb.UpsertBatchRequest(
            config_id=self.config_id,
            entity_type=PATIENT,
            items=[pb.UpsertItem(ref=ref, external_id=eid, record=struct(rec)) for ref, eid, rec in items],
            options=options,
        )
        return await self.adapter.upsert_batch(request)

    # --- vendor specifics, implemented per vendor --------------------------------------------------
    # Its patients: each harness implements EntityCase's hooks (record_id, seed, edit, stored,
    # new_records, changed, changed_value, malformed) for patients; PatientCase hands them on.
    # The connection, below: tokens and faults.

    async def expire_access_tokens(self) -> None:
        raise NotImplementedError

    async def revoke_tokens(self) -> None:
        raise NotImplementedError

    async def live_refresh_tokens(self) -> set[str]:
        raise NotImplementedError

    async def token_requests(self) -> int:
        """Requests made to the vendor's token endpoint so far."""
        raise NotImplementedError

    # --- the sandbox's admin API (every simulator serves one under /_sandbox) -----------------------

    async def _admin(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.http.request(method, f"{self.sandbox_url}/_sandbox{path}", **kwargs)
        assert response.status_code < 300, response.text
        return response.json() if response.content else None

    async def inject(self, *, server_error_rate: float = 0.0, malformed_pages: bool = False) -> None:
        """5xx answers at that rate; the next non-empty list page malformed in the vendor's way."""
        await self._admin(
            "POST", "/faults", json={"status_5xx_rate": server_error_rate, "malformed_page": malformed_pages}
        )

    async def clear_faults(self) -> None:
        await self._admin("DELETE", "/faults")

    # The status of the vendor's "slow down" answer (Salesforce says 403 REQUEST_LIMIT_EXCEEDED).
    rate_limited_status = 429

    async def storm(self, requests: int) -> None:
        """The vendor answers the next `requests` API calls with its rate-limit response."""
        await self._admin("POST", "/faults", json={"rate_limit_storm": requests})


@dataclass
class EntityCase:
    """One entity of one connected vendor, as the generic suite drives it: the sync service's
    requests for that entity (with the config's options) and the vendor-side hooks to seed, edit
    and read what the vendor holds. Subclasses implement the hooks for their entity."""

    harness: AdapterHarness
    entity: int = PATIENT
    options: rpb.VendorOptions | None = None
    writable: bool = True  # False: the vendor is the source of truth; pushes are refused
    # How many records the paging test seeds, and the page size it asks for.
    paging_records: int = 250
    paging_size: int = 100
    # How many records the fault tests (5xx, malformed pages) seed and read 10 a page.
    fault_records: int = 40
    # True where every pass returns every record (the vendor keeps no modification time for the
    # entity and a record left unlinked must come again, e.g. Zenoti memberships): a pass after
    # an edit returns everything, not only what changed.
    full_passes: bool = False

    @property
    def vendor(self) -> str:
        return self.harness.vendor

    async def fetch(self, cursor: str = "", page_size: int = 100) -> pb.FetchChangesResponse:
        request = pb.FetchChangesRequest(
            config_id=self.harness.config_id,
            entity_type=self.entity,
            cursor=cursor,
            page_size=page_size,
            options=self.options,
        )
        return await self.harness.adapter.fetch_changes(request)

    async def upsert(self, items: list[tuple[str, str, dict]]) -> pb.UpsertBatchResponse:
        """items: (ref, external_id or "", record), the record as the mapper made it."""
        request = pb.UpsertBatchRequest(
            config_id=self.harness.config_id,
            entity_type=self.entity,
            items=[pb.UpsertItem(ref=ref, external_id=eid, record=struct(rec)) for ref, eid, rec in items],
            options=self.options,
        )
        return await self.harness.adapter.upsert_batch(request)

    def expected_pages(self, records: int, page_size: int) -> int:
        """The pages a full read of `records` records takes (a window sweep says otherwise)."""
        return -(-records // page_size)

    # --- vendor-side hooks for this entity ---------------------------------------------------------

    def record_id(self, record: dict) -> str:
        raise NotImplementedError

    async def seed(self, count: int) -> list[str]:
        """Creates `count` records at the vendor, as its users would; returns their ids."""
        raise NotImplementedError

    async def edit(self, external_id: str) -> None:
        """A vendor user edits the record (its modification time moves on)."""
        raise NotImplementedError

    async def stored(self) -> dict[str, dict]:
        """Every record of this entity the vendor holds for this account, by id."""
        raise NotImplementedError

    def new_records(self, count: int) -> list[dict]:
        """Valid records the vendor has not seen, each with its own matching identifiers."""
        raise NotImplementedError

    def changed(self, record: dict) -> dict:
        """The same record with a field changed that updates by id accept."""
        raise NotImplementedError

    def changed_value(self, stored: dict) -> Any:
        """What `changed` changed, as the vendor stores it."""
        raise NotImplementedError

    def malformed(self, record: dict) -> list[tuple[dict, str]]:
        """Variants of `record` the vendor refuses, each with the offending value."""
        raise NotImplementedError


@dataclass
class PatientCase(EntityCase):
    """Patients: the harness's own hooks."""

    def record_id(self, record: dict) -> str:
        return self.harness.record_id(record)

    async def seed(self, count: int) -> list[str]:
        return await self.harness.seed(count)

    async def edit(self, external_id: str) -> None:
        await self.harness.edit(external_id)

    async def stored(self) -> dict[str, dict]:
        return await self.harness.stored()

    def new_records(self, count: int) -> list[dict]:
        return self.harness.new_records(count)

    def changed(self, record: dict) -> dict:
        return self.harness.changed(record)

    def changed_value(self, stored: dict) -> Any:
        return self.harness.changed_value(stored)

    def malformed(self, record: dict) -> list[tuple[dict, str]]:
        return self.harness.malformed(record)


async def patient_case(harness: AdapterHarness) -> EntityCase:
    return PatientCase(harness)


MakeCase = Callable[[AdapterHarness], Awaitable[EntityCase]]


async def _start_services(stack: contextlib.AsyncExitStack, settings: Settings, vendor: str, url: str) -> Settings:
    """The registry (pointing the vendor's endpoints at its sandbox) and the connection service."""
    registry = await start_registry(settings.model_copy(update={"vendor_base_urls": {vendor: url}}))
    stack.push_async_callback(registry.stop)
    settings = settings.model_copy(update={"registry_address": registry.address})
    connection = await start_connection(settings, options=ConnectionSettings(refresh_interval_seconds=3600))
    stack.push_async_callback(connection.stop)
    return settings.model_copy(update={"connection_address": connection.address})


async def _connect(
    stack: contextlib.AsyncExitStack,
    settings: Settings,
    vendor: str,
    url: str,
    http: httpx.AsyncClient,
    make_adapter: Callable[[AdapterContext], Adapter],
) -> dict[str, Any]:
    """Creates a practice and a config, then runs the OAuth code flow as a user's browser would."""
    registry_channel = open_channel(settings.registry_address)
    stack.push_async_callback(registry_channel.close)
    registry = registry_pb2_grpc.RegistryServiceStub(registry_channel)
    await call(registry.CreatePractice, rpb.CreatePracticeRequest(practice_id=PRACTICE_ID, name="Suite Clinic"))
    config = await call(
        registry.CreateIntegrationConfig,
        rpb.CreateIntegrationConfigRequest(
            config=rpb.IntegrationConfig(practice_id=PRACTICE_ID, integration_type=vendor)
        ),
    )
    config_id = config.config.config_id

    channel = open_channel(settings.connection_address)
    stack.push_async_callback(channel.close)
    connections = connection_pb2_grpc.ConnectionServiceStub(channel)
    await call(
        connections.SetOAuthClient,
        cpb.SetOAuthClientRequest(integration_type=vendor, client_id=CLIENT_ID, client_secret=CLIENT_SECRET),
    )
    started = await call(
        connections.StartAuthorization, cpb.StartAuthorizationRequest(config_id=config_id, redirect_uri=REDIRECT_URI)
    )
    consent = await http.get(started.authorization_url)
    assert consent.status_code == 302, consent.text
    code = parse_qs(urlsplit(consent.headers["location"]).query)["code"][0]
    await call(connections.CompleteAuthorization, cpb.CompleteAuthorizationRequest(state=started.state, code=code))

    adapter = make_adapter(AdapterContext(settings, connections))
    stack.push_async_callback(adapter.aclose)
    return {
        "vendor": vendor,
        "settings": settings,
        "sandbox_url": url,
        "config_id": config_id,
        "connections": connections,
        "adapter": adapter,
        "http": http,
    }


OpenHarness = Callable[..., Awaitable[AdapterHarness]]
OpenCase = Callable[..., Awaitable[EntityCase]]
# Vendors whose harness says BURST_LIMIT = False (no per-window limit to wait out) or
# REFRESHES_TOKENS = False (API-key vendors): the suite's tests of those are not collected for them.
WITHOUT_BURST_LIMIT: set[str] = set()
WITHOUT_TOKEN_REFRESH: set[str] = set()
# Records one vendor write call carries (1 where the vendor has no batch write).
RECORDS_PER_WRITE_CALL: dict[str, int] = {}
# "<vendor>-<entity>" -> (vendor, what makes the case on an opened harness); and which are pull-only.
CASES: dict[str, tuple[str, MakeCase]] = {}
PULL_ONLY: set[str] = set()
# Optional capabilities (services/adapters/__init__.py) by case: a harness module names the
# entities its adapter serves them for (GET_RECORDS, DELETE_RECORDS); tests marked with the
# capability run for those cases only.
CAPABLE: dict[str, set[str]] = {"get_records": set(), "delete_records": set()}


def _discover_harnesses() -> dict[str, Callable[..., Awaitable[AdapterHarness]]]:
    """Each vendor's harness lives in tests/adapters/harness_<vendor>.py, exposing VENDOR,
    open_harness(stack, settings, http, rate_limit) and optionally ENTITIES (entity name -> an
    async function making its EntityCase on the harness; patients are a case unless it says
    otherwise) and PULL_ONLY (entity names the vendor only gives); the generic suite runs against
    every (vendor, entity)."""
    found = {}
    for path in sorted(Path(__file__).parent.glob("harness_*.py")):
        module = importlib.import_module(f"tests.adapters.{path.stem}")
        vendor = module.VENDOR
        found[vendor] = module.open_harness
        if not getattr(module, "BURST_LIMIT", True):
            WITHOUT_BURST_LIMIT.add(vendor)
        if not getattr(module, "REFRESHES_TOKENS", True):
            WITHOUT_TOKEN_REFRESH.add(vendor)
        RECORDS_PER_WRITE_CALL[vendor] = getattr(module, "RECORDS_PER_WRITE_CALL", 1)
        for entity, make in {"patient": patient_case, **getattr(module, "ENTITIES", {})}.items():
            CASES[f"{vendor}-{entity}"] = (vendor, make)
        PULL_ONLY.update(f"{vendor}-{entity}" for entity in getattr(module, "PULL_ONLY", ()))
        for capability in CAPABLE:
            CAPABLE[capability].update(f"{vendor}-{e}" for e in getattr(module, capability.upper(), ()))
    return found


def write_calls(vendor: str, records: int) -> int:
    """Vendor calls needed to write `records` records once, without retries."""
    per_call = RECORDS_PER_WRITE_CALL.get(vendor, 1)
    return -(-records // per_call)


def _vendor_and_case(item: pytest.Item) -> tuple[str | None, str | None]:
    params = getattr(item, "callspec", None)
    if params is None:
        return None, None
    case_id = params.params.get("case_id")
    if case_id is not None:
        return CASES[case_id][0], case_id
    return params.params.get("vendor"), None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked for a capability a (vendor, entity) lacks are deselected for it, never skipped:
    burst_limit, token_refresh (per vendor), writable and pull_only (per entity)."""
    keep, drop = [], []
    for item in items:
        vendor, case_id = _vendor_and_case(item)
        marked = {mark.name for mark in item.iter_markers()}
        refused = (
            ("burst_limit" in marked and vendor in WITHOUT_BURST_LIMIT)
            or ("token_refresh" in marked and vendor in WITHOUT_TOKEN_REFRESH)
            or ("writable" in marked and case_id in PULL_ONLY)
            or ("pull_only" in marked and case_id is not None and case_id not in PULL_ONLY)
            or any(c in marked and case_id not in cases for c, cases in CAPABLE.items())
        )
        (drop if refused else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


VENDORS: dict[str, Callable[..., Awaitable[AdapterHarness]]] = _discover_harnesses()


@pytest.fixture(params=sorted(VENDORS))
def vendor(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(params=sorted(CASES))
def case_id(request: pytest.FixtureRequest) -> str:
    return request.param


@contextlib.asynccontextmanager
async def _harnesses(vendor: str, settings: Settings) -> AsyncIterator[OpenHarness]:
    async with contextlib.AsyncExitStack() as stack:
        http = await stack.enter_async_context(httpx.AsyncClient(timeout=10))

        async def open_one(rate_limit: tuple[int, float] | None = None) -> AdapterHarness:
            return await VENDORS[vendor](stack, settings, http, rate_limit)

        yield open_one


@pytest.fixture
async def open_harness(vendor: str, settings: Settings) -> AsyncIterator[OpenHarness]:
    """`await open_harness(rate_limit=(requests, per_seconds))`: a harness whose sandbox enforces
    that limit (the vendor's own by default)."""
    async with _harnesses(vendor, settings) as open_one:
        yield open_one


@pytest.fixture
async def harness(open_harness: OpenHarness) -> AdapterHarness:
    return await open_harness()


@pytest.fixture
async def open_case(case_id: str, settings: Settings) -> AsyncIterator[OpenCase]:
    """`await open_case(rate_limit=(requests, per_seconds))`: the case on a harness whose sandbox
    enforces that limit (the vendor's own by default)."""
    vendor, make = CASES[case_id]
    async with _harnesses(vendor, settings) as open_one:

        async def open_one_case(rate_limit: tuple[int, float] | None = None) -> EntityCase:
            return await make(await open_one(rate_limit))

        yield open_one_case


@pytest.fixture
async def case(open_case: OpenCase) -> EntityCase:
    return await open_case()


@pytest.fixture
async def ghl(settings: Settings) -> AsyncIterator[AdapterHarness]:
    """For the GoHighLevel-only tests, whatever vendors the shared suite runs: a harness_ghl.GhlHarness."""
    async with _harnesses("ghl", settings) as open_one:
        yield await open_one()
