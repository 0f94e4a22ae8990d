"""FHIR R4 specifics, against the sandbox over HTTP with real SMART backend-services tokens:
versioned updates (If-Match conflicts per record), conditional creates on the hub's identifier,
`_lastUpdated` paging that returns each record once across pages and runs, broken pages, tenants."""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import parse_qsl, urlencode

import httpx
import pytest
from temporalio.exceptions import ApplicationError

from libs.grpc_client import call, open_channel
from libs.protos.concord.adapter.v1 import adapter_pb2 as pb
from libs.protos.concord.registry.v1 import registry_pb2 as rpb
from libs.protos.concord.registry.v1 import registry_pb2_grpc
from libs.settings import Settings
from services.adapters import AdapterContext
from services.adapters.fhir import FhirAdapter
from tests.adapters.conftest import PATIENT, plain, struct
from tests.adapters.harness_fhir import OTHER_TENANT, TENANT, FhirHarness, open_fhir_harness


@pytest.fixture
async def fhir(settings: Settings) -> AsyncIterator[FhirHarness]:
    async with contextlib.AsyncExitStack() as stack:
        http = await stack.enter_async_context(httpx.AsyncClient(timeout=10))
        yield await open_fhir_harness(stack, settings, http)


def _results(response: pb.UpsertBatchResponse) -> dict[str, pb.UpsertResult]:
    return {r.ref: r for r in response.results}


def _with_version(record: dict, version: str) -> dict:
    return {**record, "meta": {"versionId": version}}


async def _stats(harness: FhirHarness) -> dict[str, int]:
    response = await harness.http.get(f"{harness.sandbox_url}/_sandbox/stats")
    return response.json()


async def _fetch_run(adapter_fetch: Callable[[str, int], Awaitable[pb.FetchChangesResponse]], cursor: str, size: int):  # noqa: ANN202
    """One pull run: pages until has_more is false; (ids in order, cursor)."""
    ids: list[str] = []
    for _ in range(100):
        page = await adapter_fetch(cursor, size)
        assert len(page.records) <= size
        ids += [plain(r)["id"] for r in page.records]
        cursor = page.next_cursor
        if not page.has_more:
            return ids, cursor
    raise AssertionError("has_more never turned false")


# --- writes ---------------------------------------------------------------------------------------


async def test_fhir_update_refused_by_if_match_fails_that_record_and_keeps_the_emr_edit(fhir: FhirHarness) -> None:
    records = fhir.new_records(4)
    created = await fhir.upsert([(f"r{i}", "", r) for i, r in enumerate(records)])
    ids = [r.external_id for r in created.results]
    assert all(r.record.fields["meta"].struct_value.fields["versionId"].string_value == "1" for r in created.results)
    await fhir.edit(ids[0])  # a clinician edits the record at the EMR: version 2
    deleted = await fhir.ehr("DELETE", f"Patient/{ids[3]}")
    assert deleted.status_code == 200

    # The hub's changes, each based on version 1, the version it last synced.
    items = [(f"r{i}", ids[i], _with_version(fhir.changed(records[i]), "1")) for i in range(4)]
    pushed = _results(await fhir.upsert(items))

    assert not pushed["r0"].success and pushed["r0"].error_reason == "VENDOR_VERSION_CONFLICT"
    assert not pushed["r3"].success and pushed["r3"].error_reason == "VENDOR_GONE"
    for ref in ("r0", "r3"):
        assert "Moved" not in pushed[ref].error_message and "Adapter" not in pushed[ref].error_message
    assert pushed["r1"].success and pushed["r2"].success and not pushed["r1"].created
    stored = await fhir.stored()
    assert stored[ids[0]]["address"][0]["city"] == "Edited Springs"  # never overwritten
    assert stored[ids[0]]["meta"]["versionId"] == "2"
    assert [stored[ids[i]]["address"][0]["city"] for i in (1, 2)] == ["Moved Adapter1", "Moved Adapter2"]

    # The activity retried after its result was lost: the writes that landed are found, not refused.
    retried = _results(await fhir.upsert(items))
    assert retried["r1"].success and retried["r2"].success
    assert retried["r0"].error_reason == "VENDOR_VERSION_CONFLICT"
    assert {(await fhir.stored())[ids[i]]["meta"]["versionId"] for i in (1, 2)} == {"2"}

    # Without a version the write is based on the current one, read just before.
    fresh = _results(await fhir.upsert([("r0", ids[0], {**fhir.changed(records[0]), "gender": "other"})]))
    assert fresh["r0"].success
    assert (await fhir.stored())[ids[0]]["gender"] == "other"


async def test_fhir_conditional_create_finds_what_an_earlier_attempt_created(fhir: FhirHarness) -> None:
    records = fhir.new_records(3)
    items = [(f"r{i}", "", r) for i, r in enumerate(records)]
    first = await fhir.upsert(items)
    assert all(r.created for r in first.results)
    assert first.vendor_requests == 3  # one POST per record: the sandbox has no batch Bundle
    ids = [r.external_id for r in first.results]

    # The retry carries a hub change made in between: found by its hub identifier and brought up to date.
    items[0] = ("r0", "", fhir.changed(records[0]))
    retried = await fhir.upsert(items)

    assert [r.external_id for r in retried.results] == ids
    assert not any(r.created for r in retried.results)
    stored = await fhir.stored()
    assert set(stored) == set(ids)
    assert stored[ids[0]]["address"][0]["city"] == "Moved Adapter0"
    assert [stored[i]["meta"]["versionId"] for i in ids] == ["2", "1", "1"]
    assert (await _stats(fhir)).get("POST /fhir/{tenant}/{type}", 0) == 6

    no_hub_id = {k: v for k, v in fhir.new_records(1)[0].items() if k != "identifier"}
    twice = fhir.new_records(1)[0]
    await fhir.create_patients([twice, twice])  # the EMR already holds two records claiming this hub id
    refused = _results(await fhir.upsert([("a", "", no_hub_id), ("b", "", twice)]))
    assert refused["a"].error_reason == "HUB_IDENTIFIER_MISSING"
    assert refused["b"].error_reason == "VENDOR_MULTIPLE_MATCHES"
    assert len(await fhir.stored()) == 5


# --- reads ----------------------------------------------------------------------------------------


async def test_fhir_last_updated_paging_returns_each_record_once_across_pages_and_runs(fhir: FhirHarness) -> None:
    seeded = await fhir.seed(30)

    first_page = await fhir.fetch("", 4)
    returned = [plain(r)["id"] for r in first_page.records]
    assert returned == seeded[:4]  # creation order is lastUpdated order
    # While the run goes on, the EMR edits a record already returned and one not yet, and adds one.
    await fhir.edit(seeded[1])
    await fhir.edit(seeded[20])
    [added] = await fhir.seed(1)
    rest, cursor = await _fetch_run(fhir.fetch, first_page.next_cursor, 4)
    run_one = Counter(returned + rest)

    assert set(run_one) == {*seeded, added}
    assert run_one[seeded[1]] == 2  # once per version
    assert all(n == 1 for i, n in run_one.items() if i != seeded[1])
    assert rest[-3:] == [seeded[1], seeded[20], added]  # changed records sort after everything seen

    await fhir.edit(seeded[5])
    run_two, cursor = await _fetch_run(fhir.fetch, cursor, 4)
    assert run_two == [seeded[5]]
    assert (await _fetch_run(fhir.fetch, cursor, 4))[0] == []
    assert (await _fetch_run(fhir.fetch, cursor, 4))[0] == []  # the same cursor twice: still nothing


class EditsAfterFirstPage(httpx.AsyncBaseTransport):
    """The EMR's clinicians edit records right after the adapter's search ran, while it pages."""

    def __init__(self, edit: Callable[[], Awaitable[None]]) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self._edit: Callable[[], Awaitable[None]] | None = edit

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        if self._edit is not None and request.url.path.endswith("/Patient"):
            await response.aread()
            edit, self._edit = self._edit, None
            await edit()
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


async def test_fhir_records_changed_during_a_traversal_are_not_lost(fhir: FhirHarness) -> None:
    """Pages come from the search's stored result but show current versions: a cursor at the last
    lastUpdated seen would skip a record edited after its page (seeded[2]) when a later page shows
    one edited after it (seeded[9]). The cursor stops at what was settled when the search ran."""
    seeded = await fhir.seed(20)

    async def edit() -> None:
        await fhir.edit(seeded[2])  # on the first page, already read
        await fhir.edit(seeded[9])  # on the second page (pages of 7), not read yet

    adapter = FhirAdapter(
        AdapterContext(fhir.settings, fhir.connections), http=httpx.AsyncClient(transport=EditsAfterFirstPage(edit))
    )
    try:

        async def fetch(cursor: str, size: int) -> pb.FetchChangesResponse:
            request = pb.FetchChangesRequest(
                config_id=fhir.config_id, entity_type=PATIENT, cursor=cursor, page_size=size
            )
            return await adapter.fetch_changes(request)

        page = await fetch("", 12)
        first = [plain(r)["id"] for r in page.records]
        assert first == seeded[:12]  # seeded[9] shown in its edited version, in its old place
        rest, _ = await _fetch_run(fetch, page.next_cursor, 12)
    finally:
        await adapter.aclose()
    assert rest == seeded[12:] + [seeded[2], seeded[9]]


def _fake_server(patients: list[tuple[str, str]], searched_at: str) -> Callable[[httpx.Request], httpx.Response]:
    """A FHIR server stamping many records alike (one transaction), paging with offsets."""

    def handle(request: httpx.Request) -> httpx.Response:
        params = dict(parse_qsl(request.url.query.decode()))
        since = params.get("_lastUpdated", "ge")[2:]
        matches = sorted((s, i) for i, s in patients if not since or s >= since)
        offset, count = int(params.get("offset", "0")), int(params["_count"])
        bundle: dict = {
            "resourceType": "Bundle",
            "type": "searchset",
            "meta": {"lastUpdated": searched_at},
            "entry": [
                {"resource": {"resourceType": "Patient", "id": i, "meta": {"versionId": "1", "lastUpdated": s}}}
                for s, i in matches[offset : offset + count]
            ],
            "link": [],
        }
        if offset + count < len(matches):
            query = {**params, "offset": str(offset + count)}
            next_url = f"{request.url.copy_with(query=None)}?{urlencode(query)}"
            bundle["link"].append({"relation": "next", "url": next_url})
        return httpx.Response(200, json=bundle)

    return handle


async def test_fhir_records_stamped_alike_are_each_returned_once(fhir: FhirHarness) -> None:
    tied = "2024-03-01T09:00:00.000+00:00"
    patients = [(f"t{i:02d}", tied) for i in range(10)] + [(f"u{i}", "2024-03-01T09:00:01.000+00:00") for i in range(4)]
    adapter = FhirAdapter(
        AdapterContext(fhir.settings, fhir.connections),
        http=httpx.AsyncClient(transport=httpx.MockTransport(_fake_server(patients, "2024-03-02T00:00:00.000+00:00"))),
    )
    try:

        async def fetch(cursor: str, size: int) -> pb.FetchChangesResponse:
            request = pb.FetchChangesRequest(
                config_id=fhir.config_id, entity_type=PATIENT, cursor=cursor, page_size=size
            )
            return await adapter.fetch_changes(request)

        ids, cursor = await _fetch_run(fetch, "", 3)
        again, _ = await _fetch_run(fetch, cursor, 3)
    finally:
        await adapter.aclose()
    assert sorted(ids) == sorted(i for i, _ in patients) and len(ids) == len(patients)
    assert json.loads(cursor) == {"since": "2024-03-02T00:00:00.000+00:00", "seen": []}
    assert again == []


async def test_fhir_every_kind_of_broken_page_fails_the_activity_for_a_retry(fhir: FhirHarness) -> None:
    seeded = await fhir.seed(16)
    # The sandbox cycles: a next link to an expired search (410), one with a corrupt offset (400), a
    # Bundle without its type.
    for _ in range(3):
        await fhir.inject(malformed_pages=True)
        with pytest.raises(ApplicationError) as failure:
            await fhir.fetch("", 10)
        assert failure.value.type == "VendorMalformedPage" and not failure.value.non_retryable
    ids, _ = await _fetch_run(fhir.fetch, "", 10)
    assert ids == seeded


def _bundle(*entries: dict, **extra: object) -> dict:
    return {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": e} for e in entries], **extra}


def _patient(pid: str, stamp: str) -> dict:
    return {"resourceType": "Patient", "id": pid, "meta": {"lastUpdated": stamp}}


MALFORMED = {
    "not a bundle": {"resourceType": "OperationOutcome"},
    "history, not searchset": {**_bundle(), "type": "history"},
    "no lastUpdated": _bundle({"resourceType": "Patient", "id": "a"}),
    "no id": _bundle({"resourceType": "Patient", "meta": {"lastUpdated": "2024-01-01T00:00:00Z"}}),
    "another type": _bundle(
        {"resourceType": "Practitioner", "id": "p", "meta": {"lastUpdated": "2024-01-01T00:00:00Z"}}
    ),
    "out of order": _bundle(_patient("a", "2024-01-02T00:00:00Z"), _patient("b", "2024-01-01T00:00:00Z")),
    "next link to another host": _bundle(
        _patient("a", "2024-01-01T00:00:00Z"), link=[{"relation": "next", "url": "https://elsewhere.example/fhir/x"}]
    ),
}


async def test_fhir_malformed_bundles_fail_the_activity_and_never_send_the_token_elsewhere(fhir: FhirHarness) -> None:
    for name, page in MALFORMED.items():
        hosts: list[str] = []

        def answer(request: httpx.Request, page: dict = page, hosts: list[str] = hosts) -> httpx.Response:
            hosts.append(request.url.host)
            return httpx.Response(200, json=page)

        adapter = FhirAdapter(
            AdapterContext(fhir.settings, fhir.connections),
            http=httpx.AsyncClient(transport=httpx.MockTransport(answer)),
        )
        try:
            with pytest.raises(ApplicationError) as failure:
                await adapter.fetch_changes(pb.FetchChangesRequest(config_id=fhir.config_id, entity_type=PATIENT))
        finally:
            await adapter.aclose()
        assert failure.value.type == "VendorMalformedPage", name
        assert not failure.value.non_retryable, name
        assert set(hosts) == {"127.0.0.1"}, name


async def test_fhir_rate_limit_and_outage_answers_are_waited_out(fhir: FhirHarness) -> None:
    seeded = await fhir.seed(5)
    await fhir.http.post(f"{fhir.sandbox_url}/_sandbox/faults", json={"rate_limit_storm": 1})

    page = await fhir.fetch("", 10)

    assert [plain(r)["id"] for r in page.records] == seeded
    assert page.vendor_requests == 2  # a 429 (Retry-After: 1), then the search


# --- tenants, definition, health, messages --------------------------------------------------------


async def test_fhir_config_reaches_only_its_own_tenant(fhir: FhirHarness) -> None:
    await fhir.create_patients(fhir.new_records(3), tenant=OTHER_TENANT)
    mine = await fhir.seed(2)
    written = await fhir.upsert([("r", "", fhir.new_records(1)[0])])

    ids, _ = await _fetch_run(fhir.fetch, "", 10)

    assert ids == [*mine, written.results[0].external_id]
    assert len(list(fhir.sandbox.tenants[OTHER_TENANT].live("Patient"))) == 3


async def test_fhir_definition_points_at_the_servers_smart_endpoints(fhir: FhirHarness) -> None:
    channel = open_channel(fhir.settings.registry_address)
    try:
        registry = registry_pb2_grpc.RegistryServiceStub(channel)
        definition = (
            await call(registry.GetIntegrationDefinition, rpb.GetIntegrationDefinitionRequest(integration_type="fhir"))
        ).definition
    finally:
        await channel.close()
    smart = (await fhir.http.get(f"{fhir.base}/.well-known/smart-configuration")).json()
    assert definition.endpoints.token_url == smart["token_endpoint"]
    assert f"{definition.endpoints.api_base_url}/{TENANT}" == fhir.base
    assert definition.category == "emr" and definition.baa_required
    assert list(definition.supported_auth_kinds) == [rpb.AUTH_KIND_SMART_BACKEND_SERVICES]
    assert set(definition.extra["client_assertion_algorithms"]) <= set(
        smart["token_endpoint_auth_signing_alg_values_supported"]
    )
    assert all(scope.startswith("system/") for scope in definition.scopes)


async def test_fhir_health_needs_an_r4_server(fhir: FhirHarness) -> None:
    def dstu3(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"resourceType": "CapabilityStatement", "fhirVersion": "3.0.2"})

    adapter = FhirAdapter(
        AdapterContext(fhir.settings, fhir.connections), http=httpx.AsyncClient(transport=httpx.MockTransport(dstu3))
    )
    try:
        health = await adapter.check_health(pb.CheckHealthRequest(config_id=fhir.config_id))
    finally:
        await adapter.aclose()
    assert not health.healthy and "R4" in health.detail


async def test_fhir_error_messages_never_carry_record_values(fhir: FhirHarness) -> None:
    """HAPI's diagnostics quote what was sent; the adapter keeps the element paths and cuts the values."""
    record = fhir.new_records(1)[0]

    def echoing(request: httpx.Request) -> httpx.Response:
        issue = {
            "severity": "error",
            "code": "invalid",
            "expression": ["Patient.telecom[1].value"],
            "diagnostics": f"Invalid email {record['telecom'][1]['value']} for Adapter0 Suite",
        }
        return httpx.Response(422, json={"resourceType": "OperationOutcome", "issue": [issue]})

    adapter = FhirAdapter(
        AdapterContext(fhir.settings, fhir.connections), http=httpx.AsyncClient(transport=httpx.MockTransport(echoing))
    )
    try:
        written = await adapter.upsert_batch(
            pb.UpsertBatchRequest(
                config_id=fhir.config_id, entity_type=PATIENT, items=[pb.UpsertItem(ref="r", record=struct(record))]
            )
        )
    finally:
        await adapter.aclose()
    result = written.results[0]
    assert not result.success and result.error_reason == "VENDOR_REJECTED"
    assert result.error_message.startswith("invalid at Patient.telecom[1].value")
    assert record["telecom"][1]["value"] not in result.error_message
    assert "Adapter0" not in result.error_message and "Suite" not in result.error_message
