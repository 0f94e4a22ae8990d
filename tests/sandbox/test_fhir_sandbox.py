"""The FHIR R4 sandbox behaves like a HAPI/Epic-style R4 server on what Concord uses: SMART Backend Services,
versioned CRUD, search and paging, R4 rest-hook Subscriptions, and the error shapes of each failure."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhirclient import client as smart_client
from fhirclient.models.patient import Patient as SmartPatient
from fhirpy import AsyncFHIRClient
from fhirpy.base.exceptions import MultipleResourcesFound, ResourceNotFound
from starlette.applications import Starlette

from libs.asgi import serve_asgi
from sandbox.common import synthetic
from sandbox.fhir import ClientRegistration, FhirSandboxSettings, create_app
from sandbox.fhir.validation import validate
from tests.sandbox.fhir_support import (
    JWKS_URL,
    Receiver,
    assertion,
    ec_key,
    public_jwks,
    rsa_key,
)
from tests.sandbox.support import FakeClock

BASE = "http://fhir.test/fhir/default"
TOKEN_URL = "http://fhir.test/auth/token"
CLIENT = "concord-backend"
ALL = "system/Patient.cruds system/Practitioner.rs system/Appointment.cruds system/Schedule.rs system/Slot.rs " \
      "system/HealthcareService.rs system/Subscription.cruds"  # fmt: skip
FHIR_JSON = "application/fhir+json"
MRN = "http://hospital.smarthealthit.org"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def receiver() -> Receiver:
    return Receiver()


def make_settings(clock: FakeClock, receiver: Receiver, **overrides: object) -> FhirSandboxSettings:
    values: dict = {
        "clock": clock,
        "transport": httpx.MockTransport(receiver),
        "webhook_retry_delays": (0.0, 0.0),
        "slot_days": 7,
        "clients": [ClientRegistration(CLIENT, ALL, jwks=public_jwks(rsa_key()))],
    }
    values.update(overrides)
    return FhirSandboxSettings(**values)


@pytest.fixture
def fhir(clock: FakeClock, receiver: Receiver) -> Starlette:
    return create_app(make_settings(clock, receiver))


@pytest.fixture
async def client(fhir: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=fhir), base_url="http://fhir.test") as c:
        yield c


async def mint(client: httpx.AsyncClient, scope: str = ALL, client_id: str = CLIENT) -> str:
    response = await client.post("/_sandbox/tokens", json={"client_id": client_id, "scope": scope})
    assert response.status_code == 201, response.text
    return response.json()["access_token"]


def bearer(token: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Accept": FHIR_JSON, **extra}


@pytest.fixture
async def h(client: httpx.AsyncClient) -> dict[str, str]:
    return bearer(await mint(client))


def issues(response: httpx.Response) -> list[dict]:
    body = response.json()
    assert body["resourceType"] == "OperationOutcome", body
    OperationOutcome.model_validate(body)
    return body["issue"]


def new_patient(family: str = "Quinn", **extra: object) -> dict:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": "urn:test:mrn", "value": f"mrn-{family}"}],
        "name": [{"use": "official", "family": family, "given": ["Ada"]}],
        "birthDate": "1985-04-12",
        "gender": "female",
        "telecom": [{"system": "phone", "value": "555-010-0199"}, {"system": "email", "value": "ada@example.org"}],
        **extra,
    }


async def create(client: httpx.AsyncClient, h: dict[str, str], resource: dict, **headers: str) -> httpx.Response:
    return await client.post(f"/fhir/default/{resource['resourceType']}", json=resource, headers={**h, **headers})


def ids(bundle: dict) -> list[str]:
    return [e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"]


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


# --- conformance -----------------------------------------------------------------------------------------


async def test_metadata_and_smart_configuration(client: httpx.AsyncClient) -> None:
    response = await client.get("/fhir/default/metadata")
    assert response.status_code == 200 and response.headers["content-type"].startswith(FHIR_JSON)
    statement = response.json()
    CapabilityStatement.model_validate(statement)
    rest = statement["rest"][0]
    by_type = {r["type"]: r for r in rest["resource"]}
    assert set(by_type) == {"Patient", "Practitioner", "Appointment", "Schedule", "Slot", "HealthcareService",
                            "Subscription"}  # fmt: skip
    assert {i["code"] for i in by_type["Patient"]["interaction"]} >= {"read", "vread", "create", "update", "delete",
                                                                       "search-type"}  # fmt: skip
    patient_params = {p["name"] for p in by_type["Patient"]["searchParam"]}
    assert patient_params >= {"family", "given", "birthdate", "phone", "email", "identifier", "_id", "_lastUpdated"}
    assert {p["name"] for p in by_type["Appointment"]["searchParam"]} >= {"date", "patient", "status", "actor"}
    assert {p["name"] for p in by_type["Slot"]["searchParam"]} >= {"schedule", "start", "status"}
    oauth = rest["security"]["extension"][0]
    assert oauth["url"] == "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
    assert {e["url"]: e["valueUri"] for e in oauth["extension"]} == {
        "token": TOKEN_URL,
        "authorize": "http://fhir.test/auth/authorize",
    }
    smart = (await client.get("/fhir/default/.well-known/smart-configuration")).json()
    assert smart["token_endpoint"] == TOKEN_URL
    assert "client-confidential-asymmetric" in smart["capabilities"]
    assert smart["token_endpoint_auth_signing_alg_values_supported"] == ["RS384", "ES384"]
    # Content negotiation: application/json and _format are honoured, XML is not served.
    as_json = await client.get("/fhir/default/metadata", headers={"Accept": "application/json"})
    assert as_json.headers["content-type"].startswith("application/json")
    assert (await client.get("/fhir/default/metadata?_format=json")).headers["content-type"].startswith(FHIR_JSON)
    xml = await client.get("/fhir/default/metadata", headers={"Accept": "application/fhir+xml"})
    assert xml.status_code == 406 and issues(xml)[0]["code"] == "not-supported"
    unknown = await client.get("/fhir/nowhere/metadata")
    assert unknown.status_code == 404 and issues(unknown)[0]["code"] == "not-found"


# --- SMART Backend Services ---------------------------------------------------------------------------


async def token_request(client: httpx.AsyncClient, jwt_text: str, scope: str = ALL, **extra: str) -> httpx.Response:
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": jwt_text,
        "scope": scope,
        **extra,
    }
    return await client.post("/auth/token", data=form)


async def test_backend_services_token_flow(client: httpx.AsyncClient, clock: FakeClock) -> None:
    signed = assertion(CLIENT, TOKEN_URL, clock.now)
    issued = await token_request(client, signed, "system/Patient.rs system/Observation.read launch/patient")
    assert issued.status_code == 200, issued.text
    body = issued.json()
    assert list(body) == ["access_token", "token_type", "expires_in", "scope"]
    # Scopes outside the registration are dropped from the grant (RFC 6749 §3.3), launch context ignored.
    assert (body["token_type"], body["expires_in"], body["scope"]) == ("bearer", 3600, "system/Patient.rs")
    assert issued.headers["cache-control"] == "no-store"
    read = await client.get("/fhir/default/Patient", params={"_count": 1}, headers=bearer(body["access_token"]))
    assert read.status_code == 200 and read.json()["total"] == 60

    replay = await token_request(client, signed)
    assert (replay.status_code, replay.json()["error"]) == (400, "invalid_grant")

    async def rejected(jwt_text: str, scope: str = ALL, **extra: str) -> str:
        response = await token_request(client, jwt_text, scope, **extra)
        assert response.status_code == 400 and set(response.json()) == {"error", "error_description"}
        return response.json()["error"]

    now = clock.now
    assert await rejected(assertion(CLIENT, "http://elsewhere.test/token", now)) == "invalid_client"
    assert await rejected(assertion(CLIENT, TOKEN_URL, now, lifetime=600)) == "invalid_client"
    assert await rejected(assertion(CLIENT, TOKEN_URL, now - 600)) == "invalid_client"  # expired
    assert await rejected(assertion(CLIENT, TOKEN_URL, now, sub="someone-else")) == "invalid_client"
    assert await rejected(assertion("stranger", TOKEN_URL, now)) == "invalid_client"
    assert await rejected(assertion(CLIENT, TOKEN_URL, now, key=rsa_key("rsa-other"))) == "invalid_client"
    forged = assertion(CLIENT, TOKEN_URL, now).rsplit(".", 1)[0] + "." + "A" * 342
    assert await rejected(forged) == "invalid_client"
    assert await rejected(assertion(CLIENT, TOKEN_URL, now), "system/Observation.read") == "invalid_scope"
    assert await rejected(assertion(CLIENT, TOKEN_URL, now), "system/Patient.sr") == "invalid_scope"
    assert await rejected(assertion(CLIENT, TOKEN_URL, now), grant_type="password") == "unsupported_grant_type"
    assert await rejected(assertion(CLIENT, TOKEN_URL, now), client_assertion_type="x") == "invalid_client"
    as_json = await client.post("/auth/token", json={"grant_type": "client_credentials"})
    assert as_json.json()["error"] == "invalid_request"


async def test_es384_key_from_jwks_url_and_v1_scopes(
    client: httpx.AsyncClient, receiver: Receiver, clock: FakeClock
) -> None:
    receiver.jwks = public_jwks(ec_key())
    registered = await client.post(
        "/_sandbox/clients", json={"client_id": "ec-app", "jwks_url": JWKS_URL, "scopes": "system/*.read"}
    )
    assert registered.status_code == 201
    issued = await token_request(client, assertion("ec-app", TOKEN_URL, clock.now, key=ec_key()), "system/*.read")
    assert issued.status_code == 200 and issued.json()["scope"] == "system/*.read"
    headers = bearer(issued.json()["access_token"])
    assert (await client.get("/fhir/default/Slot", headers=headers)).status_code == 200
    denied = await create(client, headers, new_patient())
    assert denied.status_code == 403
    bad = await client.post(
        "/_sandbox/clients", json={"client_id": "x", "jwks": {"keys": [{"kty": "oct"}]}, "scopes": "system/*.read"}
    )
    assert bad.status_code == 400


async def test_401_403_shapes(client: httpx.AsyncClient, clock: FakeClock) -> None:
    missing = await client.get("/fhir/default/Patient")
    assert missing.status_code == 401 and missing.headers["www-authenticate"].startswith("Bearer")
    assert issues(missing)[0]["code"] == "login"
    wrong = await client.get("/fhir/default/Patient", headers=bearer("not-a-token"))
    assert wrong.status_code == 401 and 'error="invalid_token"' in wrong.headers["www-authenticate"]

    token = await mint(client, "system/Patient.rs")
    assert (await client.get("/fhir/default/Patient", headers=bearer(token))).status_code == 200
    forbidden = await create(client, bearer(token), new_patient())
    assert forbidden.status_code == 403 and issues(forbidden)[0]["code"] == "forbidden"
    assert 'error="insufficient_scope"' in forbidden.headers["www-authenticate"]
    assert (await client.get("/fhir/default/Appointment", headers=bearer(token))).status_code == 403

    clock.now += 3600
    expired = await client.get("/fhir/default/Patient", headers=bearer(token))
    assert expired.status_code == 401 and issues(expired)[0]["code"] == "expired"
    fresh = await mint(client)
    await client.post("/_sandbox/faults", json={"expire_all_tokens": True})
    assert (await client.get("/fhir/default/Patient", headers=bearer(fresh))).status_code == 401


# --- CRUD and versioning ------------------------------------------------------------------------------


async def test_create_read_update_delete_with_versions(
    client: httpx.AsyncClient, h: dict[str, str], clock: FakeClock
) -> None:
    created = await create(client, h, new_patient(id="ignored-by-server"))
    assert created.status_code == 201
    patient = created.json()
    pid = patient["id"]
    assert pid != "ignored-by-server"
    assert created.headers["location"] == f"{BASE}/Patient/{pid}/_history/1"
    assert created.headers["etag"] == 'W/"1"' and created.headers["last-modified"].endswith("GMT")
    assert patient["meta"]["versionId"] == "1"

    read = await client.get(f"/fhir/default/Patient/{pid}", headers=h)
    assert read.json() == patient and read.headers["etag"] == 'W/"1"'
    unchanged = await client.get(f"/fhir/default/Patient/{pid}", headers={**h, "If-None-Match": 'W/"1"'})
    assert unchanged.status_code == 304

    clock.now += 60
    patient["gender"] = "other"
    updated = await client.put(f"/fhir/default/Patient/{pid}", json=patient, headers={**h, "If-Match": 'W/"1"'})
    assert updated.status_code == 200 and updated.headers["etag"] == 'W/"2"'
    assert updated.json()["meta"]["lastUpdated"] > patient["meta"]["lastUpdated"]

    stale = await client.put(f"/fhir/default/Patient/{pid}", json=patient, headers={**h, "If-Match": 'W/"1"'})
    assert stale.status_code == 412 and issues(stale)[0]["code"] == "conflict"
    again = await client.put(f"/fhir/default/Patient/{pid}", json=patient, headers=h)  # no If-Match: last write wins
    assert again.headers["etag"] == 'W/"3"'
    mismatch = await client.put(f"/fhir/default/Patient/{pid}", json={**patient, "id": "other"}, headers=h)
    assert mismatch.status_code == 400

    first = await client.get(f"/fhir/default/Patient/{pid}/_history/1", headers=h)
    assert first.json()["gender"] == "female" and first.json()["meta"]["versionId"] == "1"
    assert (await client.get(f"/fhir/default/Patient/{pid}/_history/9", headers=h)).status_code == 404

    deleted = await client.delete(f"/fhir/default/Patient/{pid}", headers=h)
    assert deleted.status_code == 200 and issues(deleted)[0]["severity"] == "information"
    gone = await client.get(f"/fhir/default/Patient/{pid}", headers=h)
    assert gone.status_code == 410 and issues(gone)[0]["code"] == "deleted"
    history = (await client.get(f"/fhir/default/Patient/{pid}/_history", headers=h)).json()
    Bundle.model_validate(history)
    assert history["type"] == "history" and [e["request"]["method"] for e in history["entry"]] == [
        "DELETE", "PUT", "PUT", "POST"
    ]  # fmt: skip
    searched = await client.get("/fhir/default/Patient", params={"_id": pid}, headers=h)
    assert searched.json()["total"] == 0

    as_create = await client.put("/fhir/default/Patient/client-chosen-1", json={**patient, "id": "client-chosen-1"},
                                 headers=h)  # fmt: skip
    assert as_create.status_code == 201 and as_create.headers["etag"] == 'W/"1"'
    minimal = await create(client, h, new_patient("Min"), Prefer="return=minimal")
    assert minimal.status_code == 201 and minimal.content == b"" and minimal.headers["location"]


async def test_update_as_create_can_be_disabled(clock: FakeClock, receiver: Receiver) -> None:
    app = create_app(make_settings(clock, receiver, allow_update_create=False, seed_data=False))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://fhir.test") as c:
        headers = bearer(await mint(c))
        response = await c.put("/fhir/default/Patient/p1", json={**new_patient(), "id": "p1"}, headers=headers)
        assert response.status_code == 405 and issues(response)[0]["code"] == "not-supported"
        statement = (await c.get("/fhir/default/metadata")).json()
        assert statement["rest"][0]["resource"][0]["updateCreate"] is False


async def test_conditional_create(client: httpx.AsyncClient, h: dict[str, str]) -> None:
    seeded = synthetic.load().patients[0]
    mrn = next(i["value"] for i in seeded["identifier"] if i.get("system") == MRN)
    existing = await create(client, h, new_patient(), **{"If-None-Exist": f"identifier={MRN}|{mrn}"})
    assert existing.status_code == 200 and existing.json()["id"] == seeded["id"]
    assert existing.json()["name"] == seeded["name"]  # the stored resource, not the one posted

    fresh = await create(client, h, new_patient("Twin"), **{"If-None-Exist": "identifier=urn:test:mrn|mrn-Twin"})
    assert fresh.status_code == 201
    again = await create(client, h, new_patient("Twin"), **{"If-None-Exist": "identifier=urn:test:mrn|mrn-Twin"})
    assert again.status_code == 200 and again.json()["id"] == fresh.json()["id"]
    await create(client, h, new_patient("Twin"))  # a second Twin, created unconditionally
    several = await create(client, h, new_patient("Twin"), **{"If-None-Exist": "identifier=urn:test:mrn|mrn-Twin"})
    assert several.status_code == 412 and issues(several)[0]["code"] == "multiple-matches"


async def test_validation_errors_name_the_element_not_the_value(client: httpx.AsyncClient, h: dict[str, str]) -> None:
    secret = "1990-02-30-SECRET-VALUE"
    bad = await create(client, h, new_patient(birthDate=secret, active="yes", nickname="Ada"))
    assert bad.status_code == 400
    found = issues(bad)
    assert {tuple(i["expression"]) for i in found} == {
        ("Patient.birthDate",),
        ("Patient.active",),
        ("Patient.nickname",),
    }
    assert "SECRET" not in bad.text and '"yes"' not in bad.text

    code = await create(client, h, new_patient(gender="robot"))
    assert code.status_code == 422
    assert [(i["code"], i["expression"]) for i in issues(code)] == [("code-invalid", ["Patient.gender"])]
    assert "robot" not in code.text

    appointment = {
        "resourceType": "Appointment",
        "status": "booked",
        "participant": [{"status": "accepted", "actor": {"reference": "Patient/x"}}],
    }
    rule = await create(client, h, appointment)
    assert rule.status_code == 422 and "app-3" in issues(rule)[0]["diagnostics"]

    wrong_type = await client.post("/fhir/default/Patient", json={"resourceType": "Practitioner"}, headers=h)
    assert wrong_type.status_code == 400
    not_json = await client.post("/fhir/default/Patient", content=b"{oops", headers={**h, "Content-Type": FHIR_JSON})
    assert not_json.status_code == 400 and issues(not_json)[0]["code"] == "structure"
    as_xml = await client.post(
        "/fhir/default/Patient", content=b"<Patient/>", headers={**h, "Content-Type": "application/fhir+xml"}
    )
    assert as_xml.status_code == 415
    unknown_type = await client.get("/fhir/default/Observation", headers=h)
    assert unknown_type.status_code == 404 and issues(unknown_type)[0]["code"] == "not-found"
    bad_id = await client.get("/fhir/default/Patient/bad$id", headers=h)
    assert bad_id.status_code == 400
    patch = await client.patch("/fhir/default/Patient/x", json={}, headers=h)
    assert patch.status_code == 405 and issues(patch)[0]["code"] == "not-supported"


# --- search ------------------------------------------------------------------------------------------------


async def search(client: httpx.AsyncClient, h: dict[str, str], kind: str, **params: object) -> dict:
    response = await client.get(f"/fhir/default/{kind}", params=params, headers=h)
    assert response.status_code == 200, response.text
    Bundle.model_validate(response.json())
    return response.json()


async def test_patient_search_parameters(client: httpx.AsyncClient, h: dict[str, str]) -> None:
    data = synthetic.load()
    seeded = data.patients[3]
    name = synthetic.official_name(seeded)
    family, given = name["family"], name["given"][0]
    found = await search(client, h, "Patient", family=family[:4].lower(), given=given)
    assert seeded["id"] in ids(found)
    assert found["type"] == "searchset" and found["total"] == len(found["entry"])
    entry = found["entry"][0]
    assert entry["fullUrl"] == f"{BASE}/Patient/{entry['resource']['id']}" and entry["search"] == {"mode": "match"}
    assert found["link"][0]["relation"] == "self" and "family=" in found["link"][0]["url"]
    assert seeded["id"] in ids(await search(client, h, "Patient", **{"family:exact": family}))
    assert ids(await search(client, h, "Patient", **{"family:exact": family.lower()})) == []
    assert seeded["id"] in ids(await search(client, h, "Patient", **{"family:contains": family[1:-1].upper()}))

    born = seeded["birthDate"]
    on_day = await search(client, h, "Patient", birthdate=born)
    assert seeded["id"] in ids(on_day)
    expected_after = {p["id"] for p in data.patients if p["birthDate"] > born}
    after = await search(client, h, "Patient", birthdate=f"gt{born}", _count=100)
    assert set(ids(after)) == expected_after
    expected_year = {p["id"] for p in data.patients if p["birthDate"][:4] <= born[:4]}
    assert set(ids(await search(client, h, "Patient", birthdate=f"le{born[:4]}", _count=100))) == expected_year

    mrn = next(i["value"] for i in seeded["identifier"] if i.get("system") == MRN)
    assert ids(await search(client, h, "Patient", identifier=f"{MRN}|{mrn}")) == [seeded["id"]]
    assert ids(await search(client, h, "Patient", identifier=mrn)) == [seeded["id"]]
    assert ids(await search(client, h, "Patient", identifier=f"urn:other|{mrn}")) == []
    phone = next(t["value"] for t in seeded["telecom"] if t["system"] == "phone")
    assert seeded["id"] in ids(await search(client, h, "Patient", phone=phone))
    two = [p["id"] for p in data.patients[:2]]
    assert sorted(ids(await search(client, h, "Patient", _id=",".join(two)))) == sorted(two)

    created = await create(client, h, new_patient("Emailer"))
    assert ids(await search(client, h, "Patient", email="ADA@example.org")) == [created.json()["id"]]

    newest = await search(client, h, "Patient", _sort="-_lastUpdated", _count=3)
    assert ids(newest)[0] == created.json()["id"] and len(newest["entry"]) == 3 and newest["total"] == 61
    by_birth = await search(client, h, "Patient", _sort="birthdate", _count=100)
    births = [e["resource"]["birthDate"] for e in by_birth["entry"]]
    assert births == sorted(births)
    count_only = await search(client, h, "Patient", _summary="count")
    assert count_only["total"] == 61 and "entry" not in count_only
    capped = await search(client, h, "Slot", _count=10_000)
    assert len(capped["entry"]) == 500


async def test_appointment_slot_and_include_search(
    client: httpx.AsyncClient, h: dict[str, str], clock: FakeClock
) -> None:
    data = synthetic.load()
    patient = data.patients[0]
    theirs = [v for v in data.past_visits if v.patient_id == patient["id"]]
    mine = await search(client, h, "Appointment", patient=f"Patient/{patient['id']}", status="fulfilled", _count=500)
    assert len(ids(mine)) == len(theirs) and mine["total"] == len(theirs)
    assert (await search(client, h, "Appointment", patient=patient["id"], _count=0))["total"] >= len(theirs)

    now = iso(clock.now)
    upcoming = await search(client, h, "Appointment", date=f"ge{now}", _count=500)
    assert upcoming["total"] > 0 and all(e["resource"]["status"] == "booked" for e in upcoming["entry"])
    window = await search(
        client, h, "Appointment", date=[f"ge{now[:10]}", f"lt{iso(clock.now + 3 * 86400)[:10]}"], _count=500
    )
    assert all(now[:10] <= e["resource"]["start"][:10] < iso(clock.now + 3 * 86400)[:10] for e in window["entry"])

    practitioner = next(v.practitioner_id for v in data.past_visits if v.practitioner_id)
    by_actor = await search(client, h, "Appointment", actor=f"Practitioner/{practitioner}", _count=1)
    assert by_actor["total"] == sum(1 for v in data.past_visits if v.practitioner_id == practitioner) + sum(
        1
        for e in upcoming["entry"]
        for p in e["resource"]["participant"]
        if p["actor"]["reference"] == f"Practitioner/{practitioner}"
    )
    included = await search(client, h, "Appointment", patient=patient["id"], _include="Appointment:patient", _count=5)
    modes = [e["search"]["mode"] for e in included["entry"]]
    assert modes.count("include") == 1 and included["entry"][-1]["resource"]["id"] == patient["id"]

    schedule = f"Schedule/sched-{data.practitioners[0]['id']}"
    slots = await search(client, h, "Slot", schedule=schedule, status="free", _count=500)
    assert slots["total"] > 0 and all(e["resource"]["status"] == "free" for e in slots["entry"])
    tomorrow = iso(clock.now + 86400)[:10]
    on_day = await search(client, h, "Slot", schedule=schedule, start=tomorrow)
    assert all(e["resource"]["start"].startswith(tomorrow) for e in on_day.get("entry", []))


async def test_unknown_search_parameters_lenient_or_strict(
    client: httpx.AsyncClient, h: dict[str, str], clock: FakeClock, receiver: Receiver
) -> None:
    lenient = await search(client, h, "Patient", shoe_size="42", _count=1)
    assert lenient["total"] == 60 and "shoe_size" not in lenient["link"][0]["url"]
    strict = await client.get(
        "/fhir/default/Patient", params={"shoe_size": "42"}, headers={**h, "Prefer": "handling=strict"}
    )
    assert strict.status_code == 400 and "Unknown search parameter" in issues(strict)[0]["diagnostics"]
    bad_date = await client.get("/fhir/default/Patient", params={"birthdate": "gtyesterday"}, headers=h)
    assert bad_date.status_code == 400 and "yesterday" not in bad_date.text
    bad_sort = await client.get("/fhir/default/Patient", params={"_sort": "shoe_size"}, headers=h)
    assert bad_sort.status_code == 400

    app = create_app(make_settings(clock, receiver, strict_search=True, seed_data=False))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://fhir.test") as c:
        headers = bearer(await mint(c))
        assert (await c.get("/fhir/default/Patient?shoe_size=1", headers=headers)).status_code == 400
        relaxed = await c.get("/fhir/default/Patient?shoe_size=1", headers={**headers, "Prefer": "handling=lenient"})
        assert relaxed.status_code == 200


async def test_last_updated_paging_returns_each_resource_once(
    client: httpx.AsyncClient, h: dict[str, str], clock: FakeClock
) -> None:
    start = clock.now
    created = []
    for n in range(23):
        clock.now += 1
        created.append((await create(client, h, new_patient(f"Pager{n:02d}"))).json())
    query = {"_lastUpdated": f"gt{iso(start)}", "_sort": "_lastUpdated", "_count": "5"}
    first = await search(client, h, "Patient", **query)
    assert first["total"] == 23 and ids(first) == [p["id"] for p in created[:5]]
    cursor = first["meta"]["lastUpdated"]
    seen, page, pages = ids(first), first, 1
    while next_link := next((lk["url"] for lk in page["link"] if lk["relation"] == "next"), None):
        assert "_getpages=" in next_link and "Pager" not in next_link  # opaque: the query is not replayed
        if pages == 2:  # edits while paging: one already seen, one not yet seen
            clock.now += 1
            for patient in (created[0], created[20]):
                await client.put(
                    f"/fhir/default/Patient/{patient['id']}", json={**patient, "gender": "other"}, headers=h
                )
        page = (await client.get(next_link, headers=h)).json()
        assert page["meta"]["lastUpdated"] == cursor
        seen += ids(page)
        pages += 1
    assert pages == 5 and sorted(seen) == sorted(p["id"] for p in created) and len(set(seen)) == 23
    later = await search(client, h, "Patient", _lastUpdated=f"gt{cursor}", _sort="_lastUpdated")
    assert ids(later) == [created[0]["id"], created[20]["id"]]
    nothing = await search(
        client, h, "Patient", _lastUpdated=f"gt{later['entry'][-1]['resource']['meta']['lastUpdated']}"
    )
    assert nothing["total"] == 0
    # Second-precision bounds: created[0] (stamped at start + 1 s) has moved on since; the rest are later.
    for prefix, expected in {"ge": 23, "gt": 23, "lt": 60, "le": 60, "eq": 0, "sa": 23, "eb": 60}.items():
        found = await search(client, h, "Patient", _lastUpdated=f"{prefix}{iso(start + 1)}", _count=0)
        assert found["total"] == expected, prefix
    exact = await search(client, h, "Patient", _lastUpdated=f"eq{created[1]['meta']['lastUpdated']}")
    assert ids(exact) == [created[1]["id"]]


# --- real clients over HTTP -------------------------------------------------------------------------------


@pytest.fixture
async def served(fhir: Starlette) -> AsyncIterator[str]:
    running = await serve_asgi(fhir)
    try:
        yield running.url
    finally:
        await running.stop()


async def test_fhirclient_backend_services_read_search_write(served: str, clock: FakeClock) -> None:
    api_base = f"{served}/fhir/default"
    signed = assertion(CLIENT, f"{served}/auth/token", clock.now)
    seeded = synthetic.load().patients[5]
    family = synthetic.official_name(seeded)["family"]

    def run() -> tuple:
        smart = smart_client.FHIRClient(
            settings={"app_id": CLIENT, "api_base": api_base, "jwt_token": signed, "scope": "system/Patient.cruds"}
        )
        assert smart.prepare() is False  # capability fetched: SMART OAuth found, no token yet
        smart.authorize()  # client_credentials with the signed assertion, at the token URL from /metadata
        assert smart.ready and smart.launch_context["scope"] == "system/Patient.cruds"
        read = SmartPatient.read(seeded["id"], smart.server)
        found = SmartPatient.where(struct={"family": family}).perform_resources(smart.server)
        new = SmartPatient({"name": [{"family": "Fhirclient", "given": ["Sam"]}], "gender": "male"})
        created = new.create(smart.server)
        stored = SmartPatient.read(created["id"], smart.server)
        stored.gender = "unknown"
        updated = stored.update()
        return read, found, created, updated

    read, found, created, updated = await asyncio.to_thread(run)
    assert read.id == seeded["id"] and read.name[0].family == family
    assert seeded["id"] in [p.id for p in found]
    assert created["meta"]["versionId"] == "1"
    assert (updated["gender"], updated["meta"]["versionId"]) == ("unknown", "2")


async def test_fhirpy_pages_and_version_checked_saves(served: str, fhir: Starlette) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=fhir), base_url=served) as admin:
        token = await mint(admin)
    api = AsyncFHIRClient(f"{served}/fhir/default", authorization=f"Bearer {token}")
    practitioners = await api.resources("Practitioner").limit(15).fetch_all()  # 50 → four pages via `next`
    assert len(practitioners) == 50 and len({p.id for p in practitioners}) == 50
    booked = await api.resources("Appointment").search(status="booked").sort("date").limit(7).fetch_all()
    starts = [a["start"] for a in booked]
    assert len(booked) > 14 and starts == sorted(starts)

    patient = api.resource("Patient", **new_patient("Fhirpy"))
    await patient.save()
    assert patient["meta"]["versionId"] == "1"
    patient["gender"] = "other"
    await patient.save()
    assert patient["meta"]["versionId"] == "2"
    patient["gender"] = "unsaved"
    await patient.refresh()  # If-None-Match: "2" is the current version: 304, so the local copy is kept
    assert patient["gender"] == "unsaved"
    patient["gender"] = "other"

    checked = AsyncFHIRClient(
        f"{served}/fhir/default", authorization=f"Bearer {token}", extra_headers={"If-Match": 'W/"2"'}
    )
    current = await checked.resources("Patient").search(_id=patient.id).get()
    current["gender"] = "female"
    await current.save()
    assert current["meta"]["versionId"] == "3"
    with pytest.raises(MultipleResourcesFound) as stale:  # fhirpy's name for a 412
        await current.save()  # still If-Match: W/"2"
    assert json.loads(str(stale.value))["issue"][0]["code"] == "conflict"
    await patient.delete()
    with pytest.raises(ResourceNotFound):  # 410 Gone
        await api.get("Patient", patient.id)


# --- subscriptions -----------------------------------------------------------------------------------------


def subscription(criteria: str, endpoint: str = "https://hooks.example/fhir", payload: str | None = FHIR_JSON) -> dict:
    channel: dict = {"type": "rest-hook", "endpoint": endpoint, "header": ["Authorization: Bearer hook-secret"]}
    if payload:
        channel["payload"] = payload
    return {"resourceType": "Subscription", "status": "requested", "reason": "Concord sync", "criteria": criteria,
            "channel": channel}  # fmt: skip


async def test_subscription_rest_hook_delivery(
    client: httpx.AsyncClient, h: dict[str, str], fhir: Starlette, receiver: Receiver
) -> None:
    sb = fhir.state.sandbox
    made = await create(client, h, subscription("Patient?family=Hooked"))
    assert made.status_code == 201 and made.json()["status"] == "requested"
    sid = made.json()["id"]
    active = (await client.get(f"/fhir/default/Subscription/{sid}", headers=h)).json()
    assert (active["status"], active["meta"]["versionId"]) == ("active", "2")
    pings = await create(client, h, subscription("Appointment?status=booked", "https://hooks.example/ping", None))
    assert pings.status_code == 201

    hooked = (await create(client, h, new_patient("Hooked"))).json()
    await create(client, h, new_patient("Elsewhere"))
    appointment = {
        "resourceType": "Appointment", "status": "booked", "start": "2030-01-02T10:00:00Z", "end": "2030-01-02T10:30:00Z",
        "participant": [{"actor": {"reference": f"Patient/{hooked['id']}"}, "status": "accepted"}],
    }  # fmt: skip
    await create(client, h, appointment)
    await create(client, h, {**appointment, "status": "proposed"})
    await sb.sender.drain()
    assert [(r.method, str(r.url)) for r in receiver.requests] == [
        ("PUT", f"https://hooks.example/fhir/Patient/{hooked['id']}"),
        ("POST", "https://hooks.example/ping"),
    ]
    put, ping = receiver.requests
    assert put.headers["authorization"] == "Bearer hook-secret" and put.headers["content-type"].startswith(FHIR_JSON)
    assert json.loads(put.content) == hooked
    assert ping.content == b"" and ping.headers["authorization"] == "Bearer hook-secret"

    # A clinician's edit in the EMR bumps the version and notifies too.
    edited = await client.patch(
        f"/_sandbox/resources/Patient/{hooked['id']}", json={"gender": "other", "birthDate": None}
    )
    assert edited.status_code == 200 and edited.json()["meta"]["versionId"] == "2" and "birthDate" not in edited.json()
    await sb.sender.drain()
    assert json.loads(receiver.requests[-1].content)["meta"]["versionId"] == "2"
    invalid = await client.patch(f"/_sandbox/resources/Patient/{hooked['id']}", json={"gender": "robot"})
    assert invalid.status_code == 422
    deliveries = (await client.get("/_sandbox/deliveries")).json()["deliveries"]
    assert len(deliveries) == 3 and all(d["delivered"] and d["attempts"] == [200] for d in deliveries)

    off = {**active, "status": "off"}
    assert (await client.put(f"/fhir/default/Subscription/{sid}", json=off, headers=h)).status_code == 200
    await create(client, h, new_patient("Hooked"))
    await sb.sender.drain()
    assert len(receiver.requests) == 3


async def test_subscription_validation(client: httpx.AsyncClient, h: dict[str, str]) -> None:
    no_reason = {k: v for k, v in subscription("Patient?family=x").items() if k != "reason"}
    missing = await create(client, h, no_reason)
    assert missing.status_code == 422 and issues(missing)[0]["expression"] == ["Subscription.reason"]
    for criteria in ("Observation?code=1", "Patient?shoe_size=3", "Patient?birthdate=soon"):
        bad = await create(client, h, subscription(criteria))
        assert bad.status_code == 422 and issues(bad)[0]["expression"] == ["Subscription.criteria"], criteria
    websocket = subscription("Patient?family=x")
    websocket["channel"]["type"] = "websocket"
    assert (await create(client, h, websocket)).status_code == 422


async def test_subscription_faults_retries_and_error_status(
    client: httpx.AsyncClient, h: dict[str, str], fhir: Starlette, receiver: Receiver
) -> None:
    sb = fhir.state.sandbox
    for n in range(4):
        await create(client, h, subscription("Patient?family=Fanout", f"https://hooks.example/s{n}", None))
    await client.post("/_sandbox/faults", json={"webhook_duplicate_rate": 1.0, "webhook_out_of_order": True})
    await create(client, h, new_patient("Fanout"))
    await sb.sender.drain()
    urls = [str(r.url) for r in receiver.requests]
    expected = [f"https://hooks.example/s{n}" for n in range(4)]
    assert sorted(urls) == sorted(expected * 2) and urls[::2] == urls[1::2]  # each twice, back to back
    assert urls[::2] != expected  # shuffled (seeded)

    await client.delete("/_sandbox/faults")
    receiver.requests.clear()
    sub = (await create(client, h, subscription("Patient?family=Flaky", "https://hooks.example/flaky"))).json()
    receiver.statuses = [503, 200]
    await create(client, h, new_patient("Flaky"))
    await sb.sender.drain()
    assert sb.sender.deliveries[-1].attempts == [503, 200]
    receiver.statuses = [500, 502, 503]  # one try and two retries, all 5xx: the subscription goes to error
    await create(client, h, new_patient("Flaky"))
    await sb.sender.drain()
    assert sb.sender.deliveries[-1].attempts == [500, 502, 503] and not sb.sender.deliveries[-1].delivered
    errored = (await client.get(f"/fhir/default/Subscription/{sub['id']}", headers=h)).json()
    assert errored["status"] == "error" and "HTTP 503" in errored["error"]
    await create(client, h, new_patient("Flaky"))
    await sb.sender.drain()
    assert len(receiver.requests) == 5  # no more deliveries for an errored subscription

    gone = (await create(client, h, subscription("Patient?family=Gone", "https://hooks.example/gone"))).json()
    receiver.statuses = [404]
    await create(client, h, new_patient("Gone"))
    await sb.sender.drain()
    assert sb.sender.deliveries[-1].attempts == [404]  # 4xx is not retried
    assert (await client.get(f"/fhir/default/Subscription/{gone['id']}", headers=h)).json()["status"] == "error"


# --- limits and faults -------------------------------------------------------------------------------------


async def test_rate_limits_and_server_faults(client: httpx.AsyncClient, h: dict[str, str], clock: FakeClock) -> None:
    await client.post("/_sandbox/faults", json={"rate_limit_storm": 2})
    for _ in range(2):
        throttled = await client.get("/fhir/default/Patient", headers=h)
        assert throttled.status_code == 429 and throttled.headers["retry-after"] == "1"
        assert issues(throttled)[0]["code"] == "throttled"
    assert (await client.get("/fhir/default/Patient", headers=h)).status_code == 200

    await client.post("/_sandbox/faults", json={"status_5xx_rate": 1.0})
    statuses = set()
    for _ in range(6):
        failed = await client.get("/fhir/default/Patient", headers=h)
        statuses.add(failed.status_code)
        assert issues(failed)[0]["code"] in ("exception", "transient")
    assert statuses == {500, 503}
    await client.post("/_sandbox/faults", json={"status_5xx_rate": 0, "outage_until": clock.now + 30})
    outage = await client.get("/fhir/default/metadata")
    assert outage.status_code == 503 and outage.headers["retry-after"] == "30"
    token = await token_request(client, assertion(CLIENT, TOKEN_URL, clock.now))
    assert (token.status_code, token.json()["error"]) == (503, "temporarily_unavailable")
    clock.now += 31
    assert (await client.get("/fhir/default/metadata")).status_code == 200


async def test_per_client_request_limit(clock: FakeClock, receiver: Receiver) -> None:
    app = create_app(make_settings(clock, receiver, seed_data=False, rate_limit_requests=3, rate_limit_window=60))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://fhir.test") as c:
        headers = bearer(await mint(c))
        assert [(await c.get("/fhir/default/Patient", headers=headers)).status_code for _ in range(4)] == [200] * 3 + [
            429
        ]
        clock.now += 20
        limited = await c.get("/fhir/default/Patient", headers=headers)
        assert limited.status_code == 429 and limited.headers["retry-after"] == "40"
        clock.now += 40
        assert (await c.get("/fhir/default/Patient", headers=headers)).status_code == 200
        await c.post("/_sandbox/faults", json={"rate_limit_enabled": False})
        assert {(await c.get("/fhir/default/Patient", headers=headers)).status_code for _ in range(5)} == {200}


async def test_malformed_pages(client: httpx.AsyncClient, h: dict[str, str]) -> None:
    async def broken_next() -> httpx.Response:
        await client.post("/_sandbox/faults", json={"malformed_page": True})
        page = await search(client, h, "Practitioner", _count=10)
        link = next(lk["url"] for lk in page["link"] if lk["relation"] == "next")
        return await client.get(link, headers=h)

    expired = await broken_next()
    assert expired.status_code == 410 and "may have expired" in issues(expired)[0]["diagnostics"]
    corrupt = await broken_next()
    assert corrupt.status_code == 400
    await client.post("/_sandbox/faults", json={"malformed_page": True})
    untyped = (await client.get("/fhir/default/Practitioner", headers=h)).json()
    assert untyped["resourceType"] == "Bundle" and "type" not in untyped
    healthy = await search(client, h, "Practitioner", _count=10)
    assert (await client.get(healthy["link"][1]["url"], headers=h)).status_code == 200


# --- seed, tenants, admin ----------------------------------------------------------------------------------


async def test_seed_matches_the_synthetic_set(clock: FakeClock, receiver: Receiver) -> None:
    app = create_app(make_settings(clock, receiver, slot_days=30, tenants=("north", "south")))
    sb = app.state.sandbox
    data = synthetic.load()
    north = sb.tenants["north"]
    counts = north.counts()
    living = sum(1 for p in data.patients if not p.get("deceasedDateTime"))
    assert counts["Patient"] == 60 and counts["Practitioner"] == len(data.practitioners)
    assert counts["HealthcareService"] == len(synthetic.SERVICES) and counts["Schedule"] == len(data.practitioners)
    assert counts["Appointment"] == len(data.past_visits) + living
    seeded = north.resource("Patient", data.patients[0]["id"])
    assert seeded["identifier"] == data.patients[0]["identifier"] and seeded["meta"]["versionId"] == "1"
    appointments = list(north.live("Appointment"))
    now = iso(clock.now)
    assert {a["status"] for a in appointments if a["start"] < now} == {"fulfilled"}
    assert {a["status"] for a in appointments if a["start"] > now} == {"booked"}
    slots = list(north.live("Slot"))
    assert min(s["start"] for s in slots) > now and max(s["start"] for s in slots) < iso(clock.now + 31 * 86400)
    for appointment in appointments:
        for ref in appointment.get("slot", []):
            assert north.resource("Slot", ref["reference"].split("/")[1])["status"] == "busy"
    services = {s["identifier"][0]["value"] for s in north.live("HealthcareService")}
    assert services == {code for code, *_ in synthetic.SERVICES}
    for kind in ("Patient", "Practitioner", "HealthcareService", "Schedule"):
        for resource in north.live(kind):
            validate(kind, resource)
    for resource in [*appointments[:: len(appointments) // 50], *slots[:: len(slots) // 50]]:
        validate(resource["resourceType"], resource)
    lasts = [r["meta"]["lastUpdated"] for kind in north.records for r in north.live(kind)]
    assert len(set(lasts)) == len(lasts) and max(lasts) < now  # distinct, backdated stamps

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://fhir.test") as c:
        headers = bearer(await mint(c))
        made = await c.post("/fhir/north/Patient", json=new_patient("Northerner"), headers=headers)
        assert made.headers["location"].startswith("http://fhir.test/fhir/north/Patient/")
        pid = made.json()["id"]
        assert (await c.get(f"/fhir/south/Patient/{pid}", headers=headers)).status_code == 404
        assert (await c.get("/fhir/south/Patient?_count=0", headers=headers)).json()["total"] == 60
        added = await c.post("/_sandbox/tenants", json={"id": "empty", "seed": False})
        assert added.status_code == 201 and added.json()["counts"]["Patient"] == 0
        restricted = await c.post(
            "/_sandbox/clients",
            json={
                "client_id": "north-only",
                "jwks": public_jwks(rsa_key()),
                "scopes": "system/*.rs",
                "tenants": ["north"],
            },
        )
        assert restricted.status_code == 201
        north_token = bearer(await mint(c, "system/*.rs", "north-only"))
        assert (await c.get("/fhir/north/Patient", headers=north_token)).status_code == 200
        assert (await c.get("/fhir/south/Patient", headers=north_token)).status_code == 403


async def test_stats_and_reset(client: httpx.AsyncClient, h: dict[str, str]) -> None:
    pid = synthetic.load().patients[0]["id"]
    await client.get(f"/fhir/default/Patient/{pid}", headers=h)
    await client.get(f"/fhir/default/Patient/{pid}", headers=h)
    await client.get("/fhir/default/Slot", headers=h)
    stats = (await client.get("/_sandbox/stats")).json()
    assert stats["GET /fhir/{tenant}/{type}/{id}"] == 2 and stats["GET /fhir/{tenant}/{type}"] == 1
    await create(client, h, new_patient("Temporary"))
    assert (await client.post("/_sandbox/reset")).status_code == 200
    assert (await client.get("/fhir/default/Patient", headers=h)).status_code == 401  # tokens are gone
    headers = bearer(await mint(client))
    assert (await client.get("/fhir/default/Patient?_count=0", headers=headers)).json()["total"] == 60
