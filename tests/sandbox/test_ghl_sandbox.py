"""The GoHighLevel sandbox behaves like GHL on OAuth, Contacts, rate limits and webhooks."""

from __future__ import annotations

import asyncio
import base64
import json
import warnings
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from starlette.applications import Starlette

from sandbox.ghl import AppRegistration, GhlSandboxSettings, create_app

with warnings.catch_warnings(record=True):  # authlib forces its import-time DeprecationWarning to "always"
    from authlib.integrations.httpx_client import AsyncOAuth2Client

CLIENT_ID, CLIENT_SECRET = "hub-app", "hub-secret"
REDIRECT = "https://hub.example/oauth/callback"
LOC, OTHER_LOC = "LocClinicA0000000001", "LocClinicB0000000002"
SCOPES = "contacts.readonly contacts.write"
V = {"Version": "2021-07-28"}
T0 = 1_750_000_000.0


class FakeClock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Receiver:
    """Webhook endpoint behind an httpx.MockTransport; `statuses` are answered in turn, then 200."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.statuses: list[int] = []
        self.gate: asyncio.Event | None = None

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.gate is not None:
            await self.gate.wait()
        self.requests.append(request)
        return httpx.Response(self.statuses.pop(0) if self.statuses else 200)

    def events(self) -> list[dict]:
        return [json.loads(r.content) for r in self.requests]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def receiver() -> Receiver:
    return Receiver()


@pytest.fixture
def ghl(clock: FakeClock, receiver: Receiver) -> Starlette:
    return create_app(
        GhlSandboxSettings(
            clock=clock,
            webhook_transport=httpx.MockTransport(receiver),
            webhook_retry_delays=(0.0,) * 6,
            webhook_retry_jitter=0.0,
            apps=[
                AppRegistration(CLIENT_ID, CLIENT_SECRET, [REDIRECT], location_id=LOC),
                AppRegistration("other-app", "other-secret", [REDIRECT], location_id=OTHER_LOC),
            ],
        )
    )


@pytest.fixture
async def client(ghl: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=ghl), base_url="http://ghl.test") as c:
        yield c


async def mint(client: httpx.AsyncClient, client_id: str = CLIENT_ID, scope: str = SCOPES) -> str:
    response = await client.post("/_sandbox/tokens", json={"client_id": client_id, "scope": scope})
    return response.json()["access_token"]


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **V}


@pytest.fixture
async def headers(client: httpx.AsyncClient) -> dict[str, str]:
    return auth(await mint(client))


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


async def authorize(client: httpx.AsyncClient, path: str = "/oauth/chooselocation", **extra: str) -> httpx.Response:
    params = {"response_type": "code", "client_id": CLIENT_ID, "redirect_uri": REDIRECT, "scope": SCOPES, **extra}
    return await client.get(path, params=params)


# --- OAuth ----------------------------------------------------------------------------------------


async def test_code_flow_and_refresh_rotation(client: httpx.AsyncClient) -> None:
    consent = await authorize(client, state="st-1", code_challenge="abc", code_challenge_method="S256")
    assert consent.status_code == 302
    target = consent.headers["location"]
    assert target.startswith(REDIRECT + "?") and query(target)["state"] == "st-1"
    form = {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "grant_type": "authorization_code",
        "code": query(target)["code"],
        "user_type": "Location",
        "redirect_uri": REDIRECT,
    }
    issued = await client.post("/oauth/token", data=form)
    assert issued.status_code == 200
    tokens = issued.json()
    assert list(tokens) == [
        "access_token", "token_type", "expires_in", "refresh_token", "scope", "userType", "locationId",
        "companyId", "approvedLocations", "userId", "isBulkInstallation",
    ]  # fmt: skip
    assert (tokens["token_type"], tokens["expires_in"], tokens["userType"]) == ("Bearer", 86399, "Location")
    assert (tokens["locationId"], tokens["approvedLocations"], tokens["scope"]) == (LOC, [LOC], SCOPES)

    reused = await client.post("/oauth/token", data=form)
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"

    listed = await client.get("/contacts/", params={"locationId": LOC}, headers=auth(tokens["access_token"]))
    assert listed.status_code == 200

    basic = httpx.BasicAuth(CLIENT_ID, CLIENT_SECRET)
    refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    rotated = await client.post("/oauth/token", data=refresh, auth=basic)
    assert rotated.status_code == 200
    assert rotated.json()["refresh_token"] != tokens["refresh_token"]
    assert rotated.json()["access_token"] != tokens["access_token"]

    stale = await client.post("/oauth/token", data=refresh, auth=basic)
    assert stale.status_code == 400
    assert stale.json() == {"error": "invalid_grant", "error_description": "Invalid grant: refresh token is invalid"}
    again = {"grant_type": "refresh_token", "refresh_token": rotated.json()["refresh_token"]}
    assert (await client.post("/oauth/token", data=again, auth=basic)).status_code == 200


async def test_token_endpoint_rejections(client: httpx.AsyncClient, clock: FakeClock) -> None:
    code = query((await authorize(client, "/v2/oauth/chooselocation")).headers["location"])["code"]
    form = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "grant_type": "authorization_code", "code": code}

    as_json = await client.post("/oauth/token", json=form)
    assert as_json.status_code == 400 and as_json.json()["error"] == "invalid_request"
    wrong = await client.post("/oauth/token", data={**form, "client_secret": "nope"})
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    bad_grant = await client.post("/oauth/token", data={**form, "grant_type": "password"})
    assert bad_grant.json()["error"] == "unsupported_grant_type"

    clock.now += 601
    expired = await client.post("/oauth/token", data=form)
    assert expired.json() == {
        "error": "invalid_grant",
        "error_description": "Invalid grant: authorization code has expired",
    }

    assert (await authorize(client, redirect_uri="https://evil.example/cb")).status_code == 400
    assert (await authorize(client, client_id="unknown")).status_code == 400


async def test_authlib_client_cannot_tell(ghl: Starlette) -> None:
    async with AsyncOAuth2Client(
        CLIENT_ID,
        CLIENT_SECRET,
        scope=SCOPES,
        redirect_uri=REDIRECT,
        transport=httpx.ASGITransport(app=ghl),
        base_url="http://ghl.test",
    ) as oauth:
        url, state = oauth.create_authorization_url("http://ghl.test/oauth/chooselocation")
        consent = await oauth.request("GET", url, withhold_token=True)
        token = await oauth.fetch_token(
            "http://ghl.test/oauth/token", authorization_response=consent.headers["location"], state=state
        )
        assert token["locationId"] == LOC
        created = await oauth.post("/contacts/", json={"locationId": LOC, "firstName": "Ada"}, headers=V)
        assert created.status_code == 201
        refreshed = await oauth.refresh_token("http://ghl.test/oauth/token")
        assert refreshed["refresh_token"] != token["refresh_token"]
        fetched = await oauth.get(f"/contacts/{created.json()['contact']['id']}", headers=V)
        assert fetched.json()["contact"]["firstName"] == "Ada"


async def test_token_expiry_and_revocation(client: httpx.AsyncClient, clock: FakeClock) -> None:
    response = await client.post("/_sandbox/tokens", json={"client_id": CLIENT_ID})
    access, refresh = response.json()["access_token"], response.json()["refresh_token"]
    clock.now += 86_400
    expired = await client.get("/contacts/", params={"locationId": LOC}, headers=auth(access))
    assert expired.status_code == 401 and "expired" in expired.json()["message"]
    form = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "grant_type": "refresh_token"}
    renewed = await client.post("/oauth/token", data={**form, "refresh_token": refresh})
    fresh = renewed.json()["access_token"]
    assert (await client.get("/contacts/", params={"locationId": LOC}, headers=auth(fresh))).status_code == 200

    await client.post("/_sandbox/faults", json={"expire_all_tokens": True})
    assert (await client.get("/contacts/", params={"locationId": LOC}, headers=auth(fresh))).status_code == 401
    await client.post("/_sandbox/faults", json={"revoke_tokens": True})
    gone = await client.post("/oauth/token", data={**form, "refresh_token": renewed.json()["refresh_token"]})
    assert gone.json()["error"] == "invalid_grant"


# --- request pipeline -----------------------------------------------------------------------------


async def test_version_auth_scope_and_location(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    created = await client.post("/contacts/", json={"locationId": LOC, "firstName": "Bo"}, headers=headers)
    contact_id = created.json()["contact"]["id"]

    no_version = await client.get(f"/contacts/{contact_id}", headers={"Authorization": headers["Authorization"]})
    assert no_version.status_code == 400 and set(no_version.json()) == {"statusCode", "message"}
    wrong_version = await client.get(f"/contacts/{contact_id}", headers={**headers, "Version": "2021-04-15"})
    assert wrong_version.status_code == 400

    invalid = {"statusCode": 401, "message": "Invalid token: access token is invalid", "error": "Unauthorized"}
    anonymous = await client.get(f"/contacts/{contact_id}", headers=V)
    assert (anonymous.status_code, anonymous.json()) == (401, invalid)
    assert (await client.get(f"/contacts/{contact_id}", headers=auth("forged"))).json() == invalid

    read_only = auth(await mint(client, scope="contacts.readonly"))
    denied = await client.post("/contacts/", json={"locationId": LOC}, headers=read_only)
    assert denied.status_code == 401 and denied.json()["message"] == "The token is not authorized for this scope."

    foreign = auth(await mint(client, client_id="other-app"))
    forbidden = {"statusCode": 403, "message": "The token does not have access to this location.", "error": "Forbidden"}
    assert (await client.get(f"/contacts/{contact_id}", headers=foreign)).json() == forbidden
    cross = await client.post("/contacts/", json={"locationId": LOC, "firstName": "X"}, headers=foreign)
    assert (cross.status_code, cross.json()) == (403, forbidden)

    unknown = await client.get("/contacts/nope", headers=headers)
    assert unknown.json() == {"statusCode": 400, "message": "Contact with id nope not found"}
    unrouted = await client.get("/contacts/nope/tasks/x", headers=headers)
    assert unrouted.status_code == 404


async def test_rate_limit_window(client: httpx.AsyncClient, headers: dict[str, str], clock: FakeClock) -> None:
    params = {"locationId": LOC}
    for i in range(100):
        response = await client.get("/contacts/", params=params, headers=headers)
        assert response.status_code == 200
        assert response.headers["X-RateLimit-Remaining"] == str(99 - i)
    limited = await client.get("/contacts/", params=params, headers=headers)
    assert (limited.status_code, limited.json()) == (429, {"statusCode": 429, "message": "Too Many Requests"})
    assert {k: limited.headers[k] for k in limited.headers if k.lower().startswith("x-ratelimit")} == {
        "x-ratelimit-limit-daily": "200000",
        "x-ratelimit-daily-remaining": "199900",
        "x-ratelimit-interval-milliseconds": "10000",
        "x-ratelimit-max": "100",
        "x-ratelimit-remaining": "0",
    }
    other = auth(await mint(client, client_id="other-app"))
    assert (await client.get("/contacts/", params={"locationId": OTHER_LOC}, headers=other)).status_code == 200

    clock.now += 10
    assert (await client.get("/contacts/", params=params, headers=headers)).status_code == 200
    await client.post("/_sandbox/faults", json={"rate_limit_enabled": False})
    for _ in range(150):
        assert (await client.get("/contacts/", params=params, headers=headers)).status_code == 200


# --- contacts -------------------------------------------------------------------------------------


async def test_create_get_update_delete(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    body = {
        "locationId": LOC,
        "firstName": "Rosan",
        "lastName": "Deo",
        "email": "Rosan@Deos.com",
        "phone": "(617) 555-0134",
        "dateOfBirth": "1990-09-25",
        "gender": "female",
        "tags": ["VIP ", "vip", "New"],
        "customFields": [{"key": "insurer", "field_value": "Acme"}],
    }
    created = await client.post("/contacts/", json=body, headers=headers)
    assert created.status_code == 201
    contact = created.json()["contact"]
    assert contact["phone"] == "+16175550134" and contact["emailLowerCase"] == "rosan@deos.com"
    assert contact["name"] == "Rosan Deo" and contact["tags"] == ["vip", "new"]
    assert contact["dateOfBirth"] == "1990-09-25T00:00:00.000Z"
    assert contact["customFields"][0]["value"] == "Acme"

    fetched = await client.get(f"/contacts/{contact['id']}", headers=headers)
    assert fetched.json() == {"contact": contact}

    updated = await client.put(f"/contacts/{contact['id']}", json={"city": "Boston"}, headers=headers)
    assert updated.json()["succeded"] is True
    assert updated.json()["contact"]["city"] == "Boston"
    assert updated.json()["contact"]["dateUpdated"] > contact["dateUpdated"]  # same fake millisecond
    not_updatable = await client.put(f"/contacts/{contact['id']}", json={"companyName": "X"}, headers=headers)
    assert not_updatable.json()["message"] == ["property companyName should not exist"]

    deleted = await client.delete(f"/contacts/{contact['id']}", headers=headers)
    assert deleted.json() == {"succeded": True}
    assert (await client.get(f"/contacts/{contact['id']}", headers=headers)).status_code == 400


async def test_validation_errors(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    unknown = await client.post("/contacts/", json={"locationId": LOC, "foo": 1}, headers=headers)
    assert (unknown.status_code, unknown.json()) == (
        422,
        {"statusCode": 422, "message": ["property foo should not exist"], "error": "Unprocessable Entity"},
    )
    bad = await client.post(
        "/contacts/", json={"locationId": LOC, "email": "not-an-email", "dateOfBirth": "1990-13-45"}, headers=headers
    )
    assert bad.status_code == 422
    assert bad.json()["message"][0] == "email must be an email"
    assert bad.json()["message"][1].startswith("dateOfBirth must be a valid date")
    missing = await client.post("/contacts/", json={"firstName": "A"}, headers=headers)
    assert "locationId should not be empty" in missing.json()["message"]


async def test_upsert_is_idempotent(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    first = await client.post(
        "/contacts/upsert", json={"locationId": LOC, "email": "ann@example.com", "firstName": "Ann"}, headers=headers
    )
    second = await client.post(
        "/contacts/upsert",
        json={"locationId": LOC, "email": "ANN@example.com", "phone": "+1 617 555 0100"},
        headers=headers,
    )
    assert first.status_code == second.status_code == 200
    assert (first.json()["new"], second.json()["new"]) == (True, False)
    assert first.json()["contact"]["id"] == second.json()["contact"]["id"]
    assert second.json()["traceId"] and second.json()["contact"]["firstName"] == "Ann"
    by_phone = await client.post("/contacts/upsert", json={"locationId": LOC, "phone": "617-555-0100"}, headers=headers)
    assert by_phone.json()["new"] is False
    listed = await client.get("/_sandbox/contacts", params={"locationId": LOC})
    assert listed.json()["total"] == 1

    duplicate = await client.post("/contacts/", json={"locationId": LOC, "email": "ann@EXAMPLE.com"}, headers=headers)
    assert duplicate.status_code == 400
    assert duplicate.json()["message"] == "This location does not allow duplicated contacts."
    assert duplicate.json()["meta"]["contactId"] == first.json()["contact"]["id"]
    assert duplicate.json()["meta"]["matchingField"] == "email"


async def test_search_pages_each_contact_once(
    client: httpx.AsyncClient, headers: dict[str, str], clock: FakeClock
) -> None:
    seeded = await client.post("/_sandbox/seed", json={"locationId": LOC, "count": 250})
    ids = seeded.json()["ids"]
    assert len(set(ids)) == 250

    async def page_through(filters: list[dict], page_limit: int = 100) -> list[str]:
        seen: list[str] = []
        body: dict = {
            "locationId": LOC,
            "pageLimit": page_limit,
            "filters": filters,
            "sort": [{"field": "dateUpdated", "direction": "asc"}],
        }
        while True:
            response = await client.post("/contacts/search", json=body, headers=headers)
            assert response.status_code == 200, response.text
            contacts = response.json()["contacts"]
            if not contacts:
                return seen
            seen += [c["id"] for c in contacts]
            body["searchAfter"] = contacts[-1]["searchAfter"]

    window = {"gte": datetime.fromtimestamp(T0, UTC).isoformat(), "lte": int(T0 * 1000) + 60_000}
    all_ids = await page_through([{"field": "dateUpdated", "operator": "range", "value": window}])
    assert sorted(all_ids) == sorted(ids)

    clock.now += 30
    changed = ids[::25]
    for contact_id in changed:
        await client.patch(f"/_sandbox/contacts/{contact_id}", json={"city": "Salem"})
    since = {"gt": int(T0 * 1000) + 250}
    recent = await page_through([{"field": "dateUpdated", "operator": "range", "value": since}], page_limit=3)
    assert recent == changed

    first = await client.post("/contacts/search", json={"locationId": LOC, "pageLimit": 5}, headers=headers)
    assert first.json()["total"] == 250 and len(first.json()["contacts"]) == 5
    too_big = await client.post("/contacts/search", json={"locationId": LOC, "pageLimit": 501}, headers=headers)
    assert too_big.status_code == 422


async def test_search_eq_filters(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    made = await client.post(
        "/contacts/", json={"locationId": LOC, "email": "Eve@Example.com", "phone": "6175550199"}, headers=headers
    )
    await client.post("/_sandbox/seed", json={"locationId": LOC, "count": 10})
    contact_id = made.json()["contact"]["id"]
    for field, value in (("email", "eve@example.com"), ("phone", "(617) 555-0199"), ("id", contact_id)):
        body = {"locationId": LOC, "pageLimit": 10, "filters": [{"field": field, "operator": "eq", "value": value}]}
        found = (await client.post("/contacts/search", json=body, headers=headers)).json()
        assert [c["id"] for c in found["contacts"]] == [contact_id] and found["total"] == 1


async def test_deprecated_list_pages(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    await client.post("/_sandbox/seed", json={"locationId": LOC, "count": 45})
    seen: list[str] = []
    params = {"locationId": LOC, "limit": "20"}
    pages = []
    while True:
        body = (await client.get("/contacts/", params=params, headers=headers)).json()
        seen += [c["id"] for c in body["contacts"]]
        pages.append(body["meta"])
        if not body["meta"]["nextPageUrl"]:
            break
        params = query(body["meta"]["nextPageUrl"])
    assert len(seen) == len(set(seen)) == 45
    assert [m["currentPage"] for m in pages] == [1, 2, 3]
    assert pages[0]["total"] == 45 and pages[0]["prevPage"] is None and pages[-1]["nextPage"] is None
    too_many = await client.get("/contacts/", params={"locationId": LOC, "limit": "101"}, headers=headers)
    assert too_many.status_code == 422


async def test_seed_reads_synthea_patients(clock: FakeClock) -> None:
    runs = []
    for _ in range(2):
        app = create_app(GhlSandboxSettings(clock=clock))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ghl.test") as c:
            await c.post("/_sandbox/seed", json={"locationId": LOC, "count": 60})
            runs.append((await c.get("/_sandbox/contacts", params={"locationId": LOC})).json()["contacts"])
    assert runs[0] == runs[1]  # fixed seed
    contacts = runs[0]
    assert len({c["phone"] for c in contacts}) == 60
    assert all(c["phone"].startswith("+1555") and len(c["phone"]) == 12 for c in contacts)
    ali = next(c for c in contacts if c.get("lastName") == "Harris")
    assert (ali["firstName"], ali["gender"], ali["dateOfBirth"]) == ("Ali", "male", "1963-10-29T00:00:00.000Z")
    assert (ali["phone"], ali["city"], ali["country"]) == ("+15558718805", "Worcester", "US")


# --- webhooks -------------------------------------------------------------------------------------


def verifier(pem: str) -> Callable[[httpx.Request], bool]:
    key = serialization.load_pem_public_key(pem.encode())

    def verify(request: httpx.Request) -> bool:
        signature = base64.b64decode(request.headers["x-wh-signature"])
        key.verify(signature, request.content, padding.PKCS1v15(), hashes.SHA256())  # raises if invalid
        return True

    return verify


async def test_webhooks_signed_and_delivered(
    ghl: Starlette, client: httpx.AsyncClient, headers: dict[str, str], receiver: Receiver
) -> None:
    await client.post("/_sandbox/webhooks", json={"client_id": CLIENT_ID, "url": "https://hub.example/ghl"})
    created = await client.post("/contacts/", json={"locationId": LOC, "firstName": "Wes"}, headers=headers)
    contact_id = created.json()["contact"]["id"]
    await client.patch(f"/_sandbox/contacts/{contact_id}", json={"lastName": "Fay"})
    await client.delete(f"/contacts/{contact_id}", headers=headers)
    await ghl.state.sandbox.webhooks.drain()

    verify = verifier((await client.get("/_sandbox/webhook-public-key")).text)
    assert all(verify(r) for r in receiver.requests)
    assert {str(r.url) for r in receiver.requests} == {"https://hub.example/ghl"}
    events = sorted(
        receiver.events(), key=lambda e: ["ContactCreate", "ContactUpdate", "ContactDelete"].index(e["type"])
    )
    assert [e["type"] for e in events] == ["ContactCreate", "ContactUpdate", "ContactDelete"]
    assert all(e["id"] == contact_id and e["locationId"] == LOC and e["webhookId"] for e in events)
    assert events[1]["name"] == "Wes Fay" and "dateUpdated" not in events[1]
    assert events[0]["timestamp"] == datetime.fromtimestamp(T0, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


async def test_webhook_retries_only_after_429(
    ghl: Starlette, client: httpx.AsyncClient, headers: dict[str, str], receiver: Receiver
) -> None:
    await client.post("/_sandbox/webhooks", json={"client_id": CLIENT_ID, "url": "https://hub.example/ghl"})
    receiver.statuses = [429, 429, 200, 500]
    await client.post("/contacts/", json={"locationId": LOC, "firstName": "A"}, headers=headers)
    await ghl.state.sandbox.webhooks.drain()
    await client.post("/contacts/", json={"locationId": LOC, "firstName": "B"}, headers=headers)
    await ghl.state.sandbox.webhooks.drain()
    deliveries = (await client.get("/_sandbox/webhooks/deliveries")).json()["deliveries"]
    assert [(d["attempts"], d["delivered"]) for d in deliveries] == [([429, 429, 200], True), ([500], False)]
    assert len({r.content for r in receiver.requests[:3]}) == 1  # a retry resends the same signed bytes


async def test_webhook_delivery_does_not_block(
    ghl: Starlette, client: httpx.AsyncClient, headers: dict[str, str], receiver: Receiver
) -> None:
    await client.post("/_sandbox/webhooks", json={"url": "https://hub.example/ghl", "client_id": CLIENT_ID})
    receiver.gate = asyncio.Event()
    created = await client.post("/contacts/", json={"locationId": LOC, "firstName": "C"}, headers=headers)
    assert created.status_code == 201 and receiver.requests == []
    receiver.gate.set()
    await ghl.state.sandbox.webhooks.drain()
    assert [e["type"] for e in receiver.events()] == ["ContactCreate"]


# --- admin surface --------------------------------------------------------------------------------


async def test_stats_count_route_templates(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    for email in ("a@x.io", "b@x.io", "a@x.io"):
        await client.post("/contacts/upsert", json={"locationId": LOC, "email": email}, headers=headers)
    contact_id = (await client.get("/_sandbox/contacts")).json()["contacts"][0]["id"]
    await client.get(f"/contacts/{contact_id}", headers=headers)
    await client.get("/contacts/missing", headers=V)
    stats = (await client.get("/_sandbox/stats")).json()
    assert stats == {"GET /contacts/{contactId}": 2, "POST /contacts/upsert": 3}
    await client.post("/_sandbox/stats/reset")
    assert (await client.get("/_sandbox/stats")).json() == {}


async def test_faults(client: httpx.AsyncClient, headers: dict[str, str], clock: FakeClock) -> None:
    params = {"locationId": LOC}
    await client.post("/_sandbox/faults", json={"status_5xx_rate": 1.0})
    assert (await client.get("/contacts/", params=params, headers=headers)).status_code == 500
    await client.delete("/_sandbox/faults")
    await client.post("/_sandbox/faults", json={"outage_until": T0 + 60})
    assert (await client.get("/contacts/", params=params, headers=headers)).status_code == 503
    clock.now += 61
    assert (await client.get("/contacts/", params=params, headers=headers)).status_code == 200

    await client.post("/_sandbox/seed", json={"locationId": LOC, "count": 3})
    await client.post("/_sandbox/faults", json={"malformed_next_page": True})
    body = {"locationId": LOC, "pageLimit": 2}
    cursor = (await client.post("/contacts/search", json=body, headers=headers)).json()["contacts"][-1]["searchAfter"]
    follow = await client.post("/contacts/search", json={**body, "searchAfter": cursor}, headers=headers)
    assert follow.status_code == 422

    await client.post("/_sandbox/reset")
    assert (await client.get("/_sandbox/faults")).json()["malformed_next_page"] is False
    assert (await client.get("/contacts/", params=params, headers=headers)).status_code == 401
