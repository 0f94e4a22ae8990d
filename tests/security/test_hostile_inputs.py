"""Hostile requests at the gateway, each answered with a clear refusal and no change of state:
another practice's ids on every endpoint that takes one, SQL-injection-shaped values in paths,
queries and bodies, and bodies past the size bound."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from services.supervisor import Stack

INJECTIONS = [
    "' OR '1'='1",
    "1; DROP TABLE sync_records; --",
    "Robert'); DELETE FROM audit_events; --",
    '" OR ""="',
    "%27%20OR%201%3D1--",
]


def _headers(stack: Stack, practice: str, role: str = "admin") -> dict[str, str]:
    token = stack.gateway.issuer.mint(f"{role}-{practice}", practice, role)  # type: ignore[union-attr]
    return {"Authorization": f"Bearer {token}"}


def _patient(family: str = "Okafor") -> dict:
    return {"resourceType": "Patient", "name": [{"family": family, "given": ["Ada"]}], "birthDate": "1961-07-04"}


@pytest.fixture
async def http(bare_stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=bare_stack.gateway_url, timeout=30) as client:
        yield client


async def _practice(stack: Stack, http: httpx.AsyncClient) -> tuple[str, dict[str, str], dict]:
    practice = f"p-{uuid.uuid4().hex[:10]}"
    headers = _headers(stack, practice)
    assert (await http.post("/practice", json={"name": "Hostile Clinic"}, headers=headers)).status_code == 201
    created = await http.post("/patients", json=_patient(), headers=headers)
    assert created.status_code == 201
    return practice, headers, created.json()


def _refusal(response: httpx.Response, *statuses: int) -> dict:
    assert response.status_code in statuses, (response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == response.status_code and body["detail"]
    return body


async def test_another_practices_ids_get_nothing_on_any_endpoint(bare_stack: Stack, http: httpx.AsyncClient) -> None:
    _, victim_headers, victim = await _practice(bare_stack, http)
    _, mallory, _ = await _practice(bare_stack, http)
    before = (await http.get(f"/patients/{victim['id']}", headers=victim_headers)).json()
    theirs = victim["id"]
    attempts = [
        ("GET", f"/patients/{theirs}", None),
        ("GET", f"/patients/{theirs}/history", None),
        ("GET", f"/patients/{theirs}/disclosures", None),
        ("PUT", f"/patients/{theirs}", _patient("Mallory") | {"id": theirs}),
        ("DELETE", f"/patients/{theirs}", None),
        ("POST", f"/patients/{theirs}/merge", {"into": theirs}),
        ("GET", f"/appointments/{theirs}", None),
        ("DELETE", f"/appointments/{theirs}", None),
        ("GET", f"/sync-runs/{theirs}", None),
    ]
    for method, path, body in attempts:
        response = await http.request(method, path, json=body, headers=mallory)
        if response.status_code == 200 and path.endswith("/disclosures"):
            assert response.json()["disclosures"] == []  # an accounting of another's patient is empty
            continue
        _refusal(response, 400, 403, 404, 409, 412, 428)
    after = await http.get(f"/patients/{theirs}", headers=victim_headers)
    assert after.status_code == 200 and after.json() == before  # untouched, still there
    listed = (await http.get("/patients", headers=mallory)).json()["patients"]
    assert theirs not in {p["id"] for p in listed}


async def test_injection_shaped_values_are_data_never_sql(bare_stack: Stack, http: httpx.AsyncClient) -> None:
    _, headers, mine = await _practice(bare_stack, http)
    for value in INJECTIONS:
        _refusal(await http.get(f"/patients/{value}", headers=headers), 400, 404, 422)
        _refusal(await http.get(f"/sync-runs/{value}", headers=headers), 400, 404, 422)
        listed = await http.get("/patients", params={"page_token": value}, headers=headers)
        assert listed.status_code in (200, 400), listed.text[:300]
        audit = await http.get("/audit/events", params={"user_id": value, "action": "patient.read"}, headers=headers)
        assert audit.status_code in (200, 400) and (audit.status_code == 400 or audit.json()["events"] == [])
        stored = await http.post("/patients", json=_patient(value), headers=headers)
        assert stored.status_code == 201
        read = (await http.get(f"/patients/{stored.json()['id']}", headers=headers)).json()
        assert read["name"][0]["family"] == value  # kept as written: a value, not a statement
    # Everything is where it was: the first patient, the audit chain intact.
    assert (await http.get(f"/patients/{mine['id']}", headers=headers)).status_code == 200
    verified = (await http.get("/audit/verify", headers=headers)).json()
    assert verified["intact"] is True


async def test_bodies_past_the_bound_are_413_and_create_nothing(bare_stack: Stack, http: httpx.AsyncClient) -> None:
    _, headers, _ = await _practice(bare_stack, http)
    before = len((await http.get("/patients", headers=headers)).json()["patients"])
    limit = bare_stack.settings.gateway_max_body_bytes
    big = _patient("x" * (limit + 1))
    body = _refusal(await http.post("/patients", json=big, headers=headers), 413)
    assert body["reason"] == "BODY_TOO_LARGE"

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: found while streaming
        yield b'{"resourceType": "Patient", "name": [{"family": "'
        for _ in range(limit // 65536 + 2):
            yield b"y" * 65536
        yield b'"}]}'

    streamed = await http.post("/patients", content=chunks(), headers=headers | {"Content-Type": "application/json"})
    assert _refusal(streamed, 413)["reason"] == "BODY_TOO_LARGE"
    assert len((await http.get("/patients", headers=headers)).json()["patients"]) == before
    # A body within the bound still goes through.
    assert (await http.post("/patients", json=_patient("y" * 200), headers=headers)).status_code in (201, 400, 422)
