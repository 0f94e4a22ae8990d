"""The PlainREST sandbox does what its README says: API-key auth, paging by update time,
idempotent creates, full-replace updates, rate limits, faults and the admin surface."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from sandbox.plainrest import AccountConfig, PlainRestSandboxSettings, create_app
from tests.sandbox.support import FakeClock

KEY, OTHER_KEY = "key-one", "key-two"
T0 = 1_750_000_000.0
HEADERS = {"X-Api-Key": KEY}
PATIENT = {
    "first_name": "Ada",
    "last_name": "Quill",
    "dob": "1980-02-29",
    "sex": "F",
    "mobile": "+16175550100",
    "email": "ada.quill@example.com",
    "street": "1 Main St",
    "city": "Boston",
    "region": "MA",
    "postcode": "02110",
    "country_code": "US",
}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def app(clock: FakeClock) -> Starlette:
    return create_app(
        PlainRestSandboxSettings(
            clock=clock,
            rate_limit=5,
            rate_window=1.0,
            accounts=[AccountConfig("acct_one", "One", KEY), AccountConfig("acct_two", "Two", OTHER_KEY, patients=3)],
        )
    )


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://plainrest.test") as c:
        yield c


async def _seed(client: httpx.AsyncClient, count: int, account: str = "acct_one") -> list[str]:
    response = await client.post("/_sandbox/seed", json={"account_id": account, "count": count})
    assert response.status_code == 200, response.text
    return response.json()["ids"]


async def _walk(client: httpx.AsyncClient, clock: FakeClock, **params: Any) -> tuple[list[dict], int]:
    """Every page of a listing (the rate limit's window moves on between pages)."""
    records, pages, cursor = [], 0, None
    while True:
        clock.advance(1.0)
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = await client.get("/api/v1/patients", params=query, headers=HEADERS)
        assert response.status_code == 200, response.text
        body = response.json()
        records += body["data"]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return records, pages


async def test_every_api_request_needs_the_account_key(client: httpx.AsyncClient) -> None:
    for headers in ({}, {"X-Api-Key": "nope"}, {"Authorization": f"Bearer {KEY}"}):
        response = await client.get("/api/v1/patients", headers=headers)
        assert response.status_code == 401
        assert response.json() == {"error": {"code": "unauthorized", "message": "missing or invalid API key"}}
    other = await client.get("/api/v1/patients", headers={"X-Api-Key": OTHER_KEY})
    assert len(other.json()["data"]) == 3  # accounts never see each other's patients
    assert (await client.get("/api/v1/patients", headers=HEADERS)).json() == {"data": [], "next_cursor": None}


async def test_listing_pages_by_update_time_inclusively_and_ties_are_ordered_by_id(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    first = await _seed(client, 7)  # one instant: seven patients share an update time
    clock.advance(5)
    later = await _seed(client, 2)

    records, pages = await _walk(client, clock, limit=3)
    assert pages == 3
    assert [r["id"] for r in records] == sorted(first) + sorted(later)
    since = records[-1]["updated_at"]
    assert since.endswith("Z") and "." in since

    at_mark, _ = await _walk(client, clock, updated_since=since, limit=100)
    assert sorted(r["id"] for r in at_mark) == sorted(later)  # inclusive: the newest come back
    await client.patch(f"/_sandbox/patients/{first[0]}", json={"city": "Salem"})
    changed, _ = await _walk(client, clock, updated_since=since)
    assert [r["id"] for r in changed][-1] == first[0]
    assert changed[-1]["updated_at"] > since and changed[-1]["city"] == "Salem"


async def test_listing_refuses_bad_parameters(client: httpx.AsyncClient) -> None:
    for params, field in (
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"updated_since": "yesterday"}, "updated_since"),
        ({"cursor": "not-a-cursor"}, "cursor"),
    ):
        response = await client.get("/api/v1/patients", params=params, headers=HEADERS)
        assert response.status_code == 400, params
        assert response.json()["error"]["field"] == field


async def test_create_under_an_idempotency_key_replays_and_refuses_another_body(client: httpx.AsyncClient) -> None:
    created = await client.post("/api/v1/patients", json=PATIENT, headers={**HEADERS, "Idempotency-Key": "k1"})
    assert created.status_code == 201
    patient = created.json()
    assert patient["id"].startswith("pat_") and patient["created_at"] == patient["updated_at"]
    assert {k: patient[k] for k in PATIENT} == PATIENT

    replayed = await client.post("/api/v1/patients", json=PATIENT, headers={**HEADERS, "Idempotency-Key": "k1"})
    assert replayed.status_code == 200 and replayed.headers["Idempotent-Replayed"] == "true"
    assert replayed.json() == patient
    reused = await client.post(
        "/api/v1/patients", json={**PATIENT, "city": "Salem"}, headers={**HEADERS, "Idempotency-Key": "k1"}
    )
    assert reused.status_code == 422 and reused.json()["error"]["code"] == "idempotency_key_reused"
    again = await client.post("/api/v1/patients", json=PATIENT, headers=HEADERS)  # no key: a second patient
    assert again.status_code == 201 and again.json()["id"] != patient["id"]
    stored = (await client.get("/_sandbox/patients", params={"account_id": "acct_one"})).json()["data"]
    assert len(stored) == 2


async def test_idempotency_keys_expire(client: httpx.AsyncClient, clock: FakeClock) -> None:
    headers = {**HEADERS, "Idempotency-Key": "k-old"}
    first = (await client.post("/api/v1/patients", json=PATIENT, headers=headers)).json()
    clock.advance(86_401)
    second = await client.post("/api/v1/patients", json=PATIENT, headers=headers)
    assert second.status_code == 201 and second.json()["id"] != first["id"]


async def test_put_replaces_the_whole_patient(client: httpx.AsyncClient, clock: FakeClock) -> None:
    patient = (await client.post("/api/v1/patients", json=PATIENT, headers=HEADERS)).json()
    clock.advance(2)
    body = {"id": "ignored", "first_name": "Ada", "last_name": "Quill-Smith", "city": "Salem"}
    updated = await client.put(f"/api/v1/patients/{patient['id']}", json=body, headers=HEADERS)
    assert updated.status_code == 200
    result = updated.json()
    assert result["id"] == patient["id"] and result["created_at"] == patient["created_at"]
    assert result["updated_at"] > patient["updated_at"]
    assert (result["last_name"], result["city"], result["email"], result["mobile"]) == (
        "Quill-Smith",
        "Salem",
        None,
        None,
    )
    assert (await client.get(f"/api/v1/patients/{patient['id']}", headers=HEADERS)).json() == result
    missing = await client.put("/api/v1/patients/pat_missing", json=PATIENT, headers=HEADERS)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


async def test_invalid_bodies_name_the_field_never_the_value(client: httpx.AsyncClient, clock: FakeClock) -> None:
    cases = [
        ({**PATIENT, "email": "ada at home"}, "email"),
        ({**PATIENT, "mobile": "617-555-0100"}, "mobile"),
        ({**PATIENT, "dob": "2999-01-01"}, "dob"),
        ({**PATIENT, "dob": "1980-02-30"}, "dob"),
        ({**PATIENT, "sex": "female"}, "sex"),
        ({**PATIENT, "country_code": "USA"}, "country_code"),
        ({**PATIENT, "city": 12}, "city"),
        ({**PATIENT, "last_name": "  "}, "last_name"),
        ({**PATIENT, "favourite_colour": "teal-and-violet"}, "favourite_colour"),
    ]
    for body, field in cases:
        clock.advance(1.0)
        response = await client.post("/api/v1/patients", json=body, headers=HEADERS)
        assert response.status_code == 422, field
        error = response.json()["error"]
        assert (error["code"], error["field"]) == ("validation_failed", field)
        value = str(body[field]).strip()
        assert not value or value not in error["message"]
    for content in (b"[1]", b"{not json"):
        clock.advance(1.0)
        response = await client.post("/api/v1/patients", content=content, headers=HEADERS)
        assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_body"
    assert (await client.get("/_sandbox/patients")).json()["data"] == []


async def test_rate_limit_answers_429_with_retry_after_until_the_window_turns(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    answers = [await client.get("/api/v1/patients", headers=HEADERS) for _ in range(6)]
    assert [r.status_code for r in answers] == [200] * 5 + [429]
    assert answers[0].headers["X-RateLimit-Limit"] == "5"
    assert answers[4].headers["X-RateLimit-Remaining"] == "0"
    assert answers[5].headers["Retry-After"] == "1"
    assert answers[5].json()["error"]["code"] == "rate_limited"
    other = await client.get("/api/v1/patients", headers={"X-Api-Key": OTHER_KEY})
    assert other.status_code == 200  # per account
    clock.advance(1.0)
    assert (await client.get("/api/v1/patients", headers=HEADERS)).status_code == 200


async def test_faults_storms_errors_and_a_malformed_page(client: httpx.AsyncClient, clock: FakeClock) -> None:
    await _seed(client, 4)
    await client.post("/_sandbox/faults", json={"rate_limit_storm": 1, "rate_limit_enabled": False})
    storm = await client.get("/api/v1/patients", headers=HEADERS)
    assert storm.status_code == 429 and storm.headers["Retry-After"] == "1"

    await client.post("/_sandbox/faults", json={"malformed_page": True})
    broken = await client.get("/api/v1/patients", headers=HEADERS)
    assert broken.status_code == 200
    with pytest.raises(ValueError):
        broken.json()
    assert len((await client.get("/api/v1/patients", headers=HEADERS)).json()["data"]) == 4  # one page only

    await client.post("/_sandbox/faults", json={"status_5xx_rate": 1.0})
    failed = await client.get("/api/v1/patients", headers=HEADERS)
    assert failed.status_code == 500 and failed.json()["error"]["code"] == "internal"
    await client.post("/_sandbox/faults", json={"outage_until": T0 + 60})
    assert (await client.get("/api/v1/patients", headers=HEADERS)).status_code == 503
    await client.delete("/_sandbox/faults")
    assert (await client.get("/api/v1/patients", headers=HEADERS)).status_code == 200
    stats = (await client.get("/_sandbox/stats")).json()
    assert stats["GET /api/v1/patients"] == 6


async def test_keys_are_revoked_rotated_and_made_through_the_admin_surface(client: httpx.AsyncClient) -> None:
    rotated = (await client.post("/_sandbox/accounts/acct_one/api-key")).json()["api_key"]
    assert (await client.get("/api/v1/patients", headers=HEADERS)).status_code == 401
    assert (await client.get("/api/v1/patients", headers={"X-Api-Key": rotated})).status_code == 200

    made = await client.post("/_sandbox/accounts", json={"name": "Three"})
    assert made.status_code == 201
    new_key = made.json()["api_key"]
    assert (await client.get("/api/v1/patients", headers={"X-Api-Key": new_key})).json()["data"] == []
    assert len((await client.get("/_sandbox/accounts")).json()) == 3

    await client.post("/_sandbox/faults", json={"expire_all_tokens": True})  # keys never expire
    assert (await client.get("/api/v1/patients", headers={"X-Api-Key": new_key})).status_code == 200
    await client.post("/_sandbox/faults", json={"revoke_tokens": True})
    for key in (rotated, new_key, OTHER_KEY):
        assert (await client.get("/api/v1/patients", headers={"X-Api-Key": key})).status_code == 401

    await client.post("/_sandbox/reset")
    assert (await client.get("/api/v1/patients", headers=HEADERS)).status_code == 200
    assert len((await client.get("/_sandbox/accounts")).json()) == 2


async def test_seeded_patients_are_valid_patients(client: httpx.AsyncClient, clock: FakeClock) -> None:
    ids = await _seed(client, 70)  # more than the Synthea set: it cycles, emails stay unique
    records, _ = await _walk(client, clock, limit=100)
    assert sorted(r["id"] for r in records) == sorted(ids)
    assert len({r["email"] for r in records}) == 70
    for record in records[:60]:
        body = {k: v for k, v in record.items() if k not in ("id", "created_at", "updated_at")}
        clock.advance(1.0)
        response = await client.put(f"/api/v1/patients/{record['id']}", json=body, headers=HEADERS)
        assert response.status_code == 200, response.text
    edited = await client.patch(f"/_sandbox/patients/{ids[0]}", json={"colour": "red"})
    assert edited.status_code == 400
    assert (await client.patch("/_sandbox/patients/pat_none", json={})).status_code == 404
