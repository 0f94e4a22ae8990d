"""The declarative adapter beyond the shared suite (which runs it as PlainREST): definitions
validated by the registry, discovery's fallback, cursors over shared update times, the one forced
refresh, vendor faults, and a patient push and pull for PlainREST through the whole stack."""

from __future__ import annotations

import asyncio
import copy
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from temporalio.exceptions import ApplicationError

from libs.asgi import serve_asgi
from libs.errors import InvalidArgument, NotFound
from libs.grpc_client import call, open_channel
from libs.protos.concord.adapter.v1 import adapter_pb2 as pb
from libs.protos.concord.connection.v1 import connection_pb2 as cpb
from libs.protos.concord.registry.v1 import registry_pb2 as rpb
from libs.protos.concord.registry.v1 import registry_pb2_grpc
from libs.settings import Settings
from libs.temporal import connect
from sandbox.plainrest import AccountConfig, PlainRestSandboxSettings, create_app
from sandbox.plainrest.seed import add_patients
from services.adapters import AdapterContext, load_adapter
from services.adapters.declarative import definition
from services.adapters.declarative.adapter import DeclarativeAdapter, RestResource
from services.adapters.declarative.client import Credentials, DeclarativeClient, Unpaced
from services.adapters.declarative.pagination import PullCursor
from services.adapters.ghl import GhlAdapter
from services.adapters.worker import build_worker
from services.demo import synthetic_patients_bundle
from services.registry.server import start as start_registry
from services.supervisor import start_stack
from tests.adapters.conftest import PATIENT, PRACTICE_ID, _harnesses, plain, struct
from tests.adapters.harness_plainrest import (
    ACCOUNT_ID,
    API_KEY,
    DEFINITION,
    VENDOR,
    PlainRestHarness,
    definition_message,
    register,
    sandbox_settings,
)
from tests.sandbox.support import FakeClock

ROOT = "definition.extra.declarative"
PATIENT_ROOT = f"{ROOT}.resources.patient"


@pytest.fixture
async def plainrest(settings: Settings) -> AsyncIterator[PlainRestHarness]:
    async with _harnesses(VENDOR, settings) as open_one:
        harness = await open_one()
        assert isinstance(harness, PlainRestHarness)
        yield harness


def _changed(path: str, value: Any, *, delete: bool = False) -> dict:
    """DEFINITION with the key at a dotted path (below the declarative part) replaced or removed."""
    document = copy.deepcopy(DEFINITION)
    *parents, last = path.split(".")
    node = document["extra"]["declarative"]
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if delete:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return document


# --- the registry validates declarative definitions ------------------------------------------------

BAD_DEFINITIONS = [
    (_changed("auth.kind", "basic"), f"{ROOT}.auth.kind"),
    (_changed("auth.kind", "bearer"), f"{ROOT}.auth.kind"),  # the definition's auth_kind is API_KEY
    (_changed("auth.header", "Host"), f"{ROOT}.auth.header"),
    (_changed("rate_limit.per_seconds", 0), f"{ROOT}.rate_limit.per_seconds"),
    (_changed("rate_limit.requests", 2.5), f"{ROOT}.rate_limit.requests"),
    (_changed("headers", {"Authorization": "x"}), f"{ROOT}.headers"),
    (_changed("retries", 3), f"{ROOT}.retries"),
    (_changed("resources.appointment", {}), f"{ROOT}.resources.appointment"),
    (_changed("resources.patient.identifier_system", "plainrest ids"), f"{PATIENT_ROOT}.identifier_system"),
    (_changed("resources.patient.list.params.cursor", "{page}"), f"{PATIENT_ROOT}.list.params.cursor"),
    (_changed("resources.patient.list.params", {"limit": "{page_size}"}), f"{PATIENT_ROOT}.list.params"),
    (_changed("resources.patient.list.path", "https://elsewhere.example/p"), f"{PATIENT_ROOT}.list.path"),
    (_changed("resources.patient.list.items", "data[0]"), f"{PATIENT_ROOT}.list.items"),
    (_changed("resources.patient.list.next_type", "page"), f"{PATIENT_ROOT}.list.next_type"),
    (
        _changed("resources.patient.create.idempotency_key_header", None, delete=True),
        f"{PATIENT_ROOT}.create.idempotency_key_header",
    ),
    (_changed("resources.patient.create.method", "DELETE"), f"{PATIENT_ROOT}.create.method"),
    (_changed("resources.patient.update.path", "/api/v1/patients"), f"{PATIENT_ROOT}.update.path"),
    (_changed("resources.patient.update.path", "/api/v1/{tenant}/patients/{id}"), f"{PATIENT_ROOT}.update.path"),
    (_changed("resources.patient.field_mappings", []), f"{PATIENT_ROOT}.field_mappings"),
    (
        _changed("resources.patient.field_mappings.0.hub_field", "nickname"),
        f"{PATIENT_ROOT}.field_mappings[0].hub_field",
    ),
    (
        _changed("resources.patient.field_mappings.0.vendor_field", "id"),
        f"{PATIENT_ROOT}.field_mappings[0].vendor_field",
    ),
    (
        _changed("resources.patient.field_mappings.0.transform", "titlecase"),
        f"{PATIENT_ROOT}.field_mappings[0].transform",
    ),
    (
        _changed("resources.patient.field_mappings.3.transform", 'enum:{"M": "male", "F": "male"}'),
        f"{PATIENT_ROOT}.field_mappings[3].transform",
    ),
    (
        _changed("resources.patient.field_mappings.0.direction", "sideways"),
        f"{PATIENT_ROOT}.field_mappings[0].direction",
    ),
    (
        _changed("resources.patient.field_mappings.1", {"hub_field": "given_name", "vendor_field": "last_name"}),
        f"{PATIENT_ROOT}.field_mappings[1].hub_field",
    ),
    (
        _changed("resources.patient.field_mappings.1", {"hub_field": "family_name", "vendor_field": "first_name"}),
        f"{PATIENT_ROOT}.field_mappings[1].vendor_field",
    ),
]


async def test_registry_refuses_declarative_definitions_it_cannot_serve_naming_the_key(settings: Settings) -> None:
    registry = await start_registry(settings)
    channel = open_channel(registry.address)
    stub = registry_pb2_grpc.RegistryServiceStub(channel)
    try:
        for document, field in BAD_DEFINITIONS:
            with pytest.raises(InvalidArgument) as refused:
                await register(stub, document)
            assert (refused.value.field, refused.value.reason) == (field, "INVALID_DECLARATIVE_DEFINITION"), field
        no_capability = {**DEFINITION, "capabilities": ["ENTITY_TYPE_PATIENT", "ENTITY_TYPE_APPOINTMENT"]}
        with pytest.raises(InvalidArgument) as refused:
            await register(stub, no_capability)
        assert refused.value.field == "definition.capabilities"
        with pytest.raises(NotFound):  # nothing refused was stored
            await call(stub.GetIntegrationDefinition, rpb.GetIntegrationDefinitionRequest(integration_type=VENDOR))

        await register(stub)
        stored = await call(stub.GetIntegrationDefinition, rpb.GetIntegrationDefinitionRequest(integration_type=VENDOR))
        assert stored.definition == definition_message()
        ghl = await call(stub.GetIntegrationDefinition, rpb.GetIntegrationDefinitionRequest(integration_type="ghl"))
        assert ghl.definition.name == "GoHighLevel"  # definitions without a declarative part are untouched
    finally:
        await channel.close()
        await registry.stop()


def test_every_bad_definition_is_refused_by_the_parser_alone() -> None:
    assert definition.parse(DEFINITION).resource("ENTITY_TYPE_PATIENT").list.max_page_size == 100
    for document, field in BAD_DEFINITIONS:
        with pytest.raises(InvalidArgument) as refused:
            definition.parse(document)
        assert refused.value.field == field


def test_vendors_without_a_package_of_their_own_get_the_declarative_adapter() -> None:
    factory = load_adapter("plainrest")
    assert factory.func is DeclarativeAdapter and factory.keywords == {"vendor": "plainrest"}
    assert load_adapter("ghl") is GhlAdapter
    for name in ("declarative", "../etc", ""):
        with pytest.raises(ValueError):
            load_adapter(name)


# --- the adapter against the sandbox ----------------------------------------------------------------


def _adapter(harness: PlainRestHarness, http: httpx.AsyncClient, connections: Any = None) -> DeclarativeAdapter:
    context = AdapterContext(harness.settings, connections or harness.connections)
    return DeclarativeAdapter(context, vendor=VENDOR, http=http, backoff_seconds=0.001)


def _in_process(clock: FakeClock, api_key: str = API_KEY) -> tuple[Any, httpx.AsyncClient]:
    """A PlainREST whose clock only moves when the test says so, spoken to in process."""
    app = create_app(
        PlainRestSandboxSettings(
            clock=clock, rate_limit_enabled=False, accounts=[AccountConfig(ACCOUNT_ID, "C", api_key)]
        )
    )
    return app, httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://plainrest.test")


async def _fetch_all(
    adapter: DeclarativeAdapter, config_id: str, cursor: str = "", page_size: int = 10
) -> tuple[list[str], str]:
    ids = []
    while True:
        page = await adapter.fetch_changes(
            pb.FetchChangesRequest(config_id=config_id, entity_type=PATIENT, cursor=cursor, page_size=page_size)
        )
        ids += [plain(r)["id"] for r in page.records]
        cursor = page.next_cursor
        if not page.has_more:
            return ids, cursor


async def test_records_sharing_one_update_time_are_neither_lost_nor_repeated(plainrest: PlainRestHarness) -> None:
    clock = FakeClock()
    app, http = _in_process(clock)
    adapter = _adapter(plainrest, http)
    admin = app.state.sandbox
    try:
        account = admin.accounts[ACCOUNT_ID]
        first = add_patients(admin, account, 25)  # one bulk import: one update time
        ids, cursor = await _fetch_all(adapter, plainrest.config_id)
        assert sorted(ids) == sorted(first) and len(ids) == 25
        assert json.loads(cursor)["seen"] and (await _fetch_all(adapter, plainrest.config_id, cursor))[0] == []

        more = add_patients(admin, account, 3)  # still the same instant: after the mark, not seen yet
        ids, cursor = await _fetch_all(adapter, plainrest.config_id, cursor)
        assert sorted(ids) == sorted(more)
        clock.advance(1)
        await http.patch(f"/_sandbox/patients/{first[4]}", json={"city": "Salem"})
        ids, cursor = await _fetch_all(adapter, plainrest.config_id, cursor)
        assert ids == [first[4]]
        assert json.loads(cursor)["seen"] == [first[4]]
        assert (await _fetch_all(adapter, plainrest.config_id, cursor))[0] == []
    finally:
        await adapter.aclose()


class RotatingConnections:
    """The connection service as the adapter sees it, answering with a key the vendor has rotated
    until it is asked to refresh; counts the forced refreshes."""

    def __init__(self, stale: str, fresh: str) -> None:
        self.stale, self.fresh, self.forced = stale, fresh, 0

    async def GetAccessToken(self, request: cpb.GetAccessTokenRequest, **call_options: Any) -> Any:  # noqa: N802
        if request.force_refresh:
            self.forced += 1
            await asyncio.sleep(0.01)  # the other writes meet their 401 meanwhile
        return cpb.GetAccessTokenResponse(access_token=self.fresh if self.forced else self.stale, token_type="apikey")


async def test_a_401_is_refreshed_once_for_every_write_that_met_it(plainrest: PlainRestHarness) -> None:
    _, http = _in_process(FakeClock(), api_key="the-new-key")
    connections = RotatingConnections("the-old-key", "the-new-key")
    adapter = _adapter(plainrest, http, connections)
    items = [pb.UpsertItem(ref=f"r{i}", record=struct(r)) for i, r in enumerate(plainrest.new_records(10))]
    try:
        written = await adapter.upsert_batch(
            pb.UpsertBatchRequest(config_id=plainrest.config_id, entity_type=PATIENT, items=items)
        )
        assert all(r.success and r.created for r in written.results)
        assert connections.forced == 1

        still_stale = RotatingConnections("the-old-key", "another-old-key")
        refused = _adapter(plainrest, http, still_stale)
        with pytest.raises(ApplicationError) as failure:
            await refused.fetch_changes(pb.FetchChangesRequest(config_id=plainrest.config_id, entity_type=PATIENT))
        assert (failure.value.type, failure.value.non_retryable, still_stale.forced) == ("NotConnected", True, 1)
        await refused.aclose()
    finally:
        await adapter.aclose()


async def test_rate_limit_waits_follow_retry_after_and_long_ones_go_back_to_temporal(
    plainrest: PlainRestHarness,
) -> None:
    answers = [
        httpx.Response(429, headers={"Retry-After": "0"}),
        httpx.Response(200, json={"data": [], "next_cursor": None}),
    ]

    async def vendor(request: httpx.Request) -> httpx.Response:
        return answers.pop(0) if answers else httpx.Response(429, headers={"Retry-After": "3600"})

    adapter = _adapter(plainrest, httpx.AsyncClient(transport=httpx.MockTransport(vendor)))
    try:
        request = pb.FetchChangesRequest(config_id=plainrest.config_id, entity_type=PATIENT)
        page = await adapter.fetch_changes(request)
        assert (len(page.records), page.vendor_requests) == (0, 2)
        with pytest.raises(ApplicationError) as failure:
            await adapter.fetch_changes(request)
        assert failure.value.type == "VendorRateLimited" and not failure.value.non_retryable
        assert failure.value.next_retry_delay.total_seconds() == 3600
    finally:
        await adapter.aclose()


def _row(record_id: str = "p1", updated: Any = "2025-01-01T00:00:00Z") -> dict:
    return {"id": record_id, "first_name": "A", "updated_at": updated}


MALFORMED_PAGES = {
    "not json": b'{"data": [{"id": "p1"',
    "no list": {"data": {"id": "p1"}, "next_cursor": None},
    "not an object": ["p1"],
    "a record that is a string": {"data": ["p1"], "next_cursor": None},
    "no id": {"data": [{"updated_at": "2025-01-01T00:00:00Z"}], "next_cursor": None},
    "boolean id": {"data": [_row(True)], "next_cursor": None},
    "no update time": {"data": [_row(updated=None)], "next_cursor": None},
    "bad update time": {"data": [_row(updated="last tuesday")], "next_cursor": None},
    "more than asked": {"data": [_row(str(i)) for i in range(3)], "next_cursor": None},
    "next is an object": {"data": [_row()], "next_cursor": {"after": "p1"}},
}


async def test_malformed_pages_fail_the_activity_for_a_retry(plainrest: PlainRestHarness) -> None:
    for name, page in MALFORMED_PAGES.items():
        content = page if isinstance(page, bytes) else json.dumps(page).encode()
        transport = httpx.MockTransport(lambda request, content=content: httpx.Response(200, content=content))
        adapter = _adapter(plainrest, httpx.AsyncClient(transport=transport))
        try:
            with pytest.raises(ApplicationError) as failure:
                await adapter.fetch_changes(
                    pb.FetchChangesRequest(config_id=plainrest.config_id, entity_type=PATIENT, page_size=2)
                )
        finally:
            await adapter.aclose()
        assert (failure.value.type, failure.value.non_retryable) == ("VendorMalformedPage", False), name


async def test_writes_send_one_key_per_item_and_never_echo_record_values(plainrest: PlainRestHarness) -> None:
    record = plainrest.new_records(1)[0]
    keys: list[str] = []

    def vendor(request: httpx.Request) -> httpx.Response:
        keys.append(request.headers["Idempotency-Key"])
        body = {"error": {"code": "validation_failed", "message": f"email {record['email']} is taken"}}
        return httpx.Response(422, json=body)

    adapter = _adapter(plainrest, httpx.AsyncClient(transport=httpx.MockTransport(vendor)))
    items = [pb.UpsertItem(ref=ref, record=struct(record)) for ref in ("a", "b", "a")]
    try:
        written = await adapter.upsert_batch(
            pb.UpsertBatchRequest(config_id=plainrest.config_id, entity_type=PATIENT, items=items)
        )
    finally:
        await adapter.aclose()
    assert keys[0] == keys[2] != keys[1] and len(keys[0]) == 40
    for result in written.results:
        assert (result.success, result.error_reason, result.external_id) == (False, "VENDOR_REJECTED", "")
        assert record["email"] not in result.error_message and result.error_message.startswith("email ")


async def test_configs_the_adapter_cannot_serve_fail_without_retry(plainrest: PlainRestHarness) -> None:
    channel = open_channel(plainrest.settings.registry_address)
    registry = registry_pb2_grpc.RegistryServiceStub(channel)
    ghl = await call(
        registry.CreateIntegrationConfig,
        rpb.CreateIntegrationConfigRequest(
            config=rpb.IntegrationConfig(practice_id=PRACTICE_ID, integration_type="ghl")
        ),
    )
    await channel.close()
    any_vendor = DeclarativeAdapter(AdapterContext(plainrest.settings, plainrest.connections))
    try:
        for adapter, reason in (
            (plainrest.adapter, "not a plainrest config"),
            (any_vendor, "no declarative definition"),
        ):
            with pytest.raises(ApplicationError) as failure:
                await adapter.fetch_changes(pb.FetchChangesRequest(config_id=ghl.config.config_id, entity_type=PATIENT))
            assert failure.value.non_retryable and reason in failure.value.message
        health = await any_vendor.check_health(pb.CheckHealthRequest(config_id="no-such-config"))
        assert not health.healthy and health.detail
    finally:
        await any_vendor.aclose()


# --- one resource, unit by unit: links, answers without bodies ----------------------------------------


def _resource(**changes: Any) -> definition.Resource:
    document = copy.deepcopy(DEFINITION)
    document["endpoints"]["api_base_url"] = "https://api.vendor.test"
    listing = document["extra"]["declarative"]["resources"]["patient"]["list"]
    listing.update(changes)
    return definition.parse(document).resource("ENTITY_TYPE_PATIENT")


def _rest(resource: definition.Resource, vendor: Any) -> RestResource:
    document = copy.deepcopy(DEFINITION)
    document["endpoints"]["api_base_url"] = "https://api.vendor.test"
    parsed = definition.parse(document)

    async def tokens(force: bool) -> Credentials:
        return Credentials("k", "")

    client = DeclarativeClient(httpx.AsyncClient(transport=httpx.MockTransport(vendor)), parsed, tokens, Unpaced())
    return RestResource(resource, client)


async def test_next_links_are_followed_on_the_api_host_only() -> None:
    resource = _resource(next="links.next", next_type="link", params={"since": "{since}", "size": "{page_size}"})
    seen: list[str] = []

    def vendor(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        if "page=2" in str(request.url):
            return httpx.Response(200, json={"data": [_row("p2")], "links": {"next": "https://evil.test/steal?page=3"}})
        return httpx.Response(200, json={"data": [_row("p1")], "links": {"next": "/api/v1/patients?page=2"}})

    rest = _rest(resource, vendor)
    records, cursor, more = await rest.fetch(PullCursor(), 5)
    assert [r["id"] for r in records] == ["p1"] and more and cursor.next == "/api/v1/patients?page=2"
    records, cursor, more = await rest.fetch(cursor, 5)
    assert [r["id"] for r in records] == ["p2"] and more
    with pytest.raises(ApplicationError) as failure:
        await rest.fetch(cursor, 5)
    assert failure.value.non_retryable
    assert seen == ["https://api.vendor.test/api/v1/patients?size=5", "https://api.vendor.test/api/v1/patients?page=2"]


async def test_a_search_by_post_sends_its_params_as_a_json_body_with_numbers_kept() -> None:
    resource = _resource(
        method="POST", params={"since": "{since}", "size": "{page_size}", "after": "{cursor}", "q": "p-{page_size}"}
    )
    bodies: list[dict] = []

    def vendor(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(200, json={"data": [_row("p1")], "next_cursor": "c2" if len(bodies) == 1 else None})

    rest = _rest(resource, vendor)
    _, cursor, more = await rest.fetch(PullCursor(since="2024-01-01T00:00:00Z"), 5)
    assert more and (await rest.fetch(cursor, 5))[2] is False
    assert bodies == [
        {"since": "2024-01-01T00:00:00Z", "size": 5, "q": "p-5"},
        {"since": "2024-01-01T00:00:00Z", "size": 5, "after": "c2", "q": "p-5"},
    ]


async def test_a_write_answered_without_a_body_is_read_back_and_one_without_an_id_is_retried() -> None:
    stored = {**_row("p9"), "city": "Salem"}

    def vendor(request: httpx.Request) -> httpx.Response:
        if request.method == "PUT":
            return httpx.Response(204)
        if request.method == "GET":
            return httpx.Response(200, json=stored)
        return httpx.Response(201, json={"ok": True})

    rest = _rest(_resource(), vendor)
    updated = await rest.write("cfg", pb.UpsertItem(ref="r", external_id="p9", record=struct({"city": "Salem"})))
    assert (updated.success, updated.external_id, plain(updated.record)) == (True, "p9", stored)
    with pytest.raises(ApplicationError) as failure:
        await rest.write("cfg", pb.UpsertItem(ref="r", record=struct({"city": "Salem"})))
    assert failure.value.type == "VendorMalformedResponse" and not failure.value.non_retryable


# --- the whole stack -----------------------------------------------------------------------------------


async def _sync(http: httpx.AsyncClient, headers: dict[str, str], direction: str) -> dict:
    started = await http.post("/integrations/plainrest/patients/sync", json={"direction": direction}, headers=headers)
    assert started.status_code == 202, started.text
    done = await http.get(f"/sync-runs/{started.json()['run_id']}", params={"wait": "true"}, headers=headers)
    assert done.status_code == 200, done.text
    return done.json()


async def test_patients_push_and_pull_through_the_whole_stack(
    settings: Settings, temporal_binary: str, caplog: pytest.LogCaptureFixture
) -> None:
    """PlainREST, known only by its JSON definition: connected with its API key through the
    gateway, pushed to by the sync workflow, edited there, pulled back."""
    caplog.set_level(logging.INFO)
    served = await serve_asgi(create_app(sandbox_settings()))
    stack = await start_stack(
        settings.model_copy(update={"vendor_base_urls": {VENDOR: served.url}}), ephemeral_ports=True
    )
    worker = task = None
    try:
        async with open_channel(stack.settings.registry_address) as channel:
            await register(registry_pb2_grpc.RegistryServiceStub(channel))
        worker = build_worker(VENDOR, stack.settings, await connect(stack.settings))
        task = asyncio.create_task(worker.run())
        token = stack.gateway.issuer.mint("admin-1", "p-plainrest", "admin")  # type: ignore[attr-defined]
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=120) as http:
            assert (await http.post("/practice", json={"name": "Plain Clinic"}, headers=headers)).status_code == 201
            connected = await http.post(
                "/integrations/plainrest/connect", json={"kind": "api_key", "api_key": API_KEY}, headers=headers
            )
            assert connected.status_code == 200, connected.text
            assert (await http.get("/integrations/plainrest/status", headers=headers)).json()["connected"]
            bundle = synthetic_patients_bundle(8)
            assert (await http.post("/patients/import", json=bundle, headers=headers)).json()["count"] == 8

            pushed = await _sync(http, headers, "push")
            assert (pushed["status"], pushed["records_created"], pushed["records_failed"]) == ("succeeded", 8, 0)
            stored = (await http.get(f"{served.url}/_sandbox/patients", params={"account_id": ACCOUNT_ID})).json()[
                "data"
            ]
            families = sorted(p["resource"]["name"][0]["family"] for p in bundle["entry"])
            assert sorted(p["last_name"] for p in stored) == families
            assert all(p["mobile"].startswith("+1") and p["country_code"] == "US" for p in stored)

            edited = stored[0]["id"]
            await http.patch(f"{served.url}/_sandbox/patients/{edited}", json={"city": "Providence"})
            pulled = await _sync(http, headers, "pull")
            assert (pulled["status"], pulled["records_updated"], pulled["records_created"]) == ("succeeded", 1, 0)
            listed = (await http.get("/patients", params={"page_size": 50}, headers=headers)).json()["patients"]
            cities = [a.get("city") for p in listed for a in p.get("address", [])]
            assert cities.count("Providence") == 1 and len(listed) == 8

            await http.post(f"{served.url}/_sandbox/stats/reset")
            again = await _sync(http, headers, "bidirectional")
            assert (again["records_created"], again["records_updated"]) == (0, 0)
            stats = (await http.get(f"{served.url}/_sandbox/stats")).json()
            assert not {k for k in stats if k.startswith(("POST /api", "PUT /api"))}
        assert [name for name in families if name in caplog.text] == []
    finally:
        if worker is not None:
            await worker.shutdown()
            await task
        await stack.stop()
        await served.stop()
