"""The GoHighLevel sandbox behaves like GHL on OAuth, Contacts, rate limits and webhooks."""

from __future__ import annotations

import asyncio
import base64
import json
import warnings
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from starlette.applications import Starlette

from sandbox.common import synthetic
from sandbox.ghl import AppRegistration, GhlSandboxSettings, create_app, seed
from sandbox.ghl.scopes import ALL_SCOPES
from tests.sandbox.ghl_spec import check, check_schema, check_webhook
from tests.sandbox.support import FakeClock

with warnings.catch_warnings(record=True):  # authlib forces its import-time DeprecationWarning to "always"
    from authlib.integrations.httpx_client import AsyncOAuth2Client

CLIENT_ID, CLIENT_SECRET = "hub-app", "hub-secret"
REDIRECT = "https://hub.example/oauth/callback"
LOC, OTHER_LOC = "LocClinicA0000000001", "LocClinicB0000000002"
SCOPES = "contacts.readonly contacts.write"
V = {"Version": "2021-07-28"}
CAL = {"Version": "2021-04-15"}  # calendars and conversations
T0 = 1_750_000_000.0


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
    fields = auth(await mint(client, scope=ALL_SCOPES))
    defined = await client.post(
        f"/locations/{LOC}/customFields", json={"name": "Insurer", "dataType": "TEXT"}, headers=fields
    )
    insurer = check("locations.json", defined).json()["customField"]["id"]
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
    created = check("contacts.json", await client.post("/contacts/", json=body, headers=headers))
    assert created.status_code == 201
    contact = created.json()["contact"]
    assert contact["phone"] == "+16175550134" and contact["emailLowerCase"] == "rosan@deos.com"
    assert contact["name"] == "Rosan Deo" and contact["tags"] == ["vip", "new"]
    assert contact["dateOfBirth"] == "1990-09-25T00:00:00.000Z"
    assert contact["customFields"] == [{"id": insurer, "value": "Acme"}]

    fetched = check("contacts.json", await client.get(f"/contacts/{contact['id']}", headers=headers))
    assert fetched.json() == {"contact": contact}

    updated = check(
        "contacts.json", await client.put(f"/contacts/{contact['id']}", json={"city": "Boston"}, headers=headers)
    )
    assert updated.json()["succeded"] is True
    assert updated.json()["contact"]["city"] == "Boston"
    assert updated.json()["contact"]["dateUpdated"] > contact["dateUpdated"]  # same fake millisecond
    # dndSettings change per channel: a write naming one channel leaves the others as they were.
    url = f"/contacts/{contact['id']}"
    await client.put(
        url, json={"dndSettings": {"SMS": {"status": "active"}, "Email": {"status": "active"}}}, headers=headers
    )
    email_only = await client.put(url, json={"dndSettings": {"Email": {"status": "inactive"}}}, headers=headers)
    assert check("contacts.json", email_only).json()["contact"]["dndSettings"] == {
        "SMS": {"status": "active"},
        "Email": {"status": "inactive"},
    }
    not_updatable = await client.put(f"/contacts/{contact['id']}", json={"companyName": "X"}, headers=headers)
    assert check("contacts.json", not_updatable).json()["message"] == ["property companyName should not exist"]

    deleted = check("contacts.json", await client.delete(f"/contacts/{contact['id']}", headers=headers))
    assert deleted.json() == {"succeded": True}
    gone = await client.get(f"/contacts/{contact['id']}", headers=headers)
    assert check("contacts.json", gone).status_code == 400


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
    assert [check_webhook(e)["type"] for e in events] == ["ContactCreate", "ContactUpdate", "ContactDelete"]
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


async def test_webhook_duplicates_and_out_of_order(
    ghl: Starlette, client: httpx.AsyncClient, headers: dict[str, str], receiver: Receiver
) -> None:
    await client.post("/_sandbox/webhooks", json={"client_id": CLIENT_ID, "url": "https://hub.example/ghl"})
    await client.post("/_sandbox/faults", json={"webhook_duplicate_rate": 1.0})
    await client.post("/contacts/", json={"locationId": LOC, "firstName": "Dup"}, headers=headers)
    await ghl.state.sandbox.webhooks.drain()
    assert len(receiver.requests) == 2 and receiver.requests[0].content == receiver.requests[1].content

    receiver.requests.clear()
    await client.post("/_sandbox/faults", json={"webhook_duplicate_rate": 0.0, "webhook_out_of_order": True})
    made = []
    for i in range(8):
        created = await client.post("/contacts/", json={"locationId": LOC, "firstName": f"N{i}"}, headers=headers)
        made.append(created.json()["contact"]["id"])
    await asyncio.sleep(0)
    assert receiver.requests == []  # held back until the reorder window ends (or drain)
    await ghl.state.sandbox.webhooks.drain()
    arrived = [e["id"] for e in receiver.events()]
    assert sorted(arrived) == sorted(made) and arrived != made


async def test_seeding_with_notify_announces_contacts_and_bookings(
    ghl: Starlette, client: httpx.AsyncClient, receiver: Receiver
) -> None:
    await client.post("/_sandbox/webhooks", json={"client_id": CLIENT_ID, "url": "https://hub.example/ghl"})
    seeded = (await client.post("/_sandbox/seed", json={"locationId": LOC, "count": 3, "notify": True})).json()
    await ghl.state.sandbox.webhooks.drain()
    events = [check_webhook(e) for e in receiver.events()]
    assert sorted(e["id"] for e in events if e["type"] == "ContactCreate") == sorted(seeded["ids"])
    booked = [e["appointment"] for e in events if e["type"] == "AppointmentCreate"]
    assert booked and all(a["appointmentStatus"] == "confirmed" and a["contactId"] in seeded["ids"] for a in booked)


# --- tags, custom fields, workflows -----------------------------------------------------------------


async def test_tags_add_and_remove(
    ghl: Starlette, client: httpx.AsyncClient, headers: dict[str, str], receiver: Receiver
) -> None:
    await client.post("/_sandbox/webhooks", json={"client_id": CLIENT_ID, "url": "https://hub.example/ghl"})
    created = await client.post(
        "/contacts/", json={"locationId": LOC, "firstName": "Tia", "tags": ["a"]}, headers=headers
    )
    contact_id = created.json()["contact"]["id"]
    path = f"/contacts/{contact_id}/tags"
    added = check("contacts.json", await client.post(path, json={"tags": [" VIP", "a"]}, headers=headers))
    assert (added.status_code, added.json()) == (201, {"tags": ["a", "vip"]})
    removed = check("contacts.json", await client.request("DELETE", path, json={"tags": ["A"]}, headers=headers))
    assert (removed.status_code, removed.json()) == (200, {"tags": ["vip"]})
    invalid = check("contacts.json", await client.post(path, json={"tags": "vip"}, headers=headers))
    assert invalid.status_code == 422
    extra = await client.post(path, json={"tags": [], "color": "red"}, headers=headers)
    assert check("contacts.json", extra).json()["message"] == ["property color should not exist"]
    fetched = (await client.get(f"/contacts/{contact_id}", headers=headers)).json()["contact"]
    assert fetched["tags"] == ["vip"] and fetched["dateUpdated"] > created.json()["contact"]["dateUpdated"]

    await ghl.state.sandbox.webhooks.drain()
    events = [check_webhook(e) for e in receiver.events()]
    assert [(e["type"], e["tags"]) for e in events[1:]] == [
        ("ContactTagUpdate", ["a", "vip"]),
        ("ContactTagUpdate", ["vip"]),
    ]


async def test_custom_fields(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    full = auth(await mint(client, scope=ALL_SCOPES))
    path = f"/locations/{LOC}/customFields"
    made = check(
        "locations.json", await client.post(path, json={"name": "Insurance Provider", "dataType": "TEXT"}, headers=full)
    )
    definition = made.json()["customField"]
    assert made.status_code == 201
    assert (definition["fieldKey"], definition["model"], definition["locationId"]) == (
        "contact.insurance_provider",
        "contact",
        LOC,
    )
    duplicate = check(
        "locations.json", await client.post(path, json={"name": "insurance provider", "dataType": "TEXT"}, headers=full)
    )
    assert duplicate.status_code == 400
    invalid = await client.post(path, json={"name": "X", "dataType": "COLOUR", "colour": 1}, headers=full)
    assert check("locations.json", invalid).json()["message"] == [
        "property colour should not exist",
        "dataType must be one of the following values: " + ", ".join(
            ("TEXT", "LARGE_TEXT", "NUMERICAL", "PHONE", "MONETORY", "CHECKBOX", "SINGLE_OPTIONS", "MULTIPLE_OPTIONS",
             "FLOAT", "TIME", "DATE", "TEXTBOX_LIST", "FILE_UPLOAD", "SIGNATURE", "RADIO", "EMAIL")
        ),
    ]  # fmt: skip
    listed = check("locations.json", await client.get(path, headers=full)).json()["customFields"]
    assert listed == [definition]
    assert (await client.get(path, params={"model": "opportunity"}, headers=full)).json() == {"customFields": []}
    assert (await client.get(path, headers=headers)).status_code == 401  # a contacts-only token
    foreign = await client.get(f"/locations/{OTHER_LOC}/customFields", headers=full)
    assert foreign.status_code == 403

    field_id = definition["id"]
    writes = [{"key": "insurance_provider", "field_value": "Acme"}, {"key": "never_defined", "field_value": "x"}]
    body = {"locationId": LOC, "firstName": "Cy", "customFields": writes}
    contact = check("contacts.json", await client.post("/contacts/", json=body, headers=headers)).json()["contact"]
    assert contact["customFields"] == [{"id": field_id, "value": "Acme"}]  # unknown fields are ignored
    url = f"/contacts/{contact['id']}"
    by_id = await client.put(url, json={"customFields": [{"id": field_id, "field_value": "Beta"}]}, headers=headers)
    assert check("contacts.json", by_id).json()["contact"]["customFields"] == [{"id": field_id, "value": "Beta"}]
    by_key = [{"key": "contact.insurance_provider", "field_value": ""}]
    cleared = await client.put(url, json={"customFields": by_key}, headers=headers)
    assert cleared.json()["contact"]["customFields"] == []


async def test_workflows(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    full = auth(await mint(client, scope=ALL_SCOPES))
    listed = await client.get("/workflows/", params={"locationId": LOC}, headers=full)
    workflows = check_schema("GetWorkflowSuccessfulResponseDto", listed.json())["workflows"]
    assert [w["name"] for w in workflows] == list(seed.WORKFLOWS)
    assert all(w["locationId"] == LOC and w["status"] == "published" for w in workflows)
    assert (await client.get("/workflows/", headers=full)).status_code == 422
    assert (await client.get("/workflows/", params={"locationId": LOC}, headers=headers)).status_code == 401

    contact = (await client.post("/contacts/", json={"locationId": LOC, "firstName": "Wu"}, headers=headers)).json()
    path = f"/contacts/{contact['contact']['id']}/workflow/{workflows[1]['id']}"
    start = "2025-06-20T10:00:00-04:00"
    added = check("contacts.json", await client.post(path, json={"eventStartTime": start}, headers=headers))
    assert (added.status_code, added.json()) == (200, {"succeded": True})
    enrolled = (await client.get("/_sandbox/enrollments", params={"locationId": LOC})).json()["enrollments"]
    assert [(e["contactId"], e["workflowId"], e["eventStartTime"]) for e in enrolled] == [
        (contact["contact"]["id"], workflows[1]["id"], start)
    ]
    bad_time = await client.post(path, json={"eventStartTime": "next tuesday"}, headers=headers)
    assert check("contacts.json", bad_time).status_code == 422
    unknown = await client.post(path.rsplit("/", 1)[0] + "/nope", json={}, headers=headers)
    assert check("contacts.json", unknown).status_code == 400
    removed = check("contacts.json", await client.request("DELETE", path, json={}, headers=headers))
    assert removed.json() == {"succeded": True}
    assert (await client.get("/_sandbox/enrollments")).json()["enrollments"] == []


# --- calendars and appointments ---------------------------------------------------------------------


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


@pytest.fixture
async def cal(client: httpx.AsyncClient) -> dict[str, str]:
    return {**auth(await mint(client, scope=ALL_SCOPES)), **CAL}


async def calendar_named(client: httpx.AsyncClient, cal: dict[str, str], name: str) -> dict:
    listed = (await client.get("/calendars/", params={"locationId": LOC}, headers=cal)).json()["calendars"]
    return next(c for c in listed if c["name"] == name)


async def test_calendars_and_seeded_appointments(
    ghl: Starlette, client: httpx.AsyncClient, cal: dict[str, str]
) -> None:
    listed = check("calendars.json", await client.get("/calendars/", params={"locationId": LOC}, headers=cal))
    calendars = listed.json()["calendars"]
    assert [(c["name"], c["slotDuration"]) for c in calendars] == [(n, m) for _, n, m, _ in synthetic.SERVICES]
    one = check("calendars.json", await client.get(f"/calendars/{calendars[0]['id']}", headers=cal))
    assert one.json() == {"calendar": calendars[0]}
    wrong_version = await client.get("/calendars/", params={"locationId": LOC}, headers={**cal, **V})
    assert check("calendars.json", wrong_version).json()["message"] == "Version header is not valid: 2021-07-28"

    seeded = (await client.post("/_sandbox/seed", json={"locationId": LOC})).json()
    data = synthetic.load()
    future = synthetic.future_visits(data, seed=GhlSandboxSettings().seed, now=datetime.fromtimestamp(T0, UTC))
    assert seeded["appointments"] == len(data.past_visits) + len(future)

    consult = next(c for c in calendars if c["name"] == "New patient consultation")
    start, end = datetime(2015, 1, 1, tzinfo=UTC), datetime(2021, 1, 1, tzinfo=UTC)
    window = {"locationId": LOC, "startTime": ms(start), "endTime": ms(end)}
    by_calendar = await client.get("/calendars/events", params={**window, "calendarId": consult["id"]}, headers=cal)
    events = check("calendars.json", by_calendar).json()["events"]
    visits = sorted(v.start for v in data.past_visits if v.service_code == "consult" and start <= v.start <= end)
    assert [datetime.fromisoformat(e["startTime"]) for e in events] == visits
    assert {e["appointmentStatus"] for e in events} == {"showed"}
    assert events[0]["startTime"].endswith(("-05:00", "-04:00"))  # America/New_York

    location = ghl.state.sandbox.locations[LOC]
    # Visits without a practitioner go to the calendar's first team member: pick someone else.
    firsts = {c["teamMembers"][0]["userId"] for c in calendars}
    practitioner = next(
        v.practitioner_id
        for v in data.past_visits
        if v.practitioner_id and location.user_by_practitioner[v.practitioner_id] not in firsts
    )
    user = location.user_by_practitioner[practitioner]
    by_user = (await client.get("/calendars/events", params={**window, "userId": user}, headers=cal)).json()["events"]
    assert len(by_user) == sum(
        1 for v in data.past_visits if v.practitioner_id == practitioner and start <= v.start <= end
    )
    by_group = await client.get("/calendars/events", params={**window, "groupId": consult["groupId"]}, headers=cal)
    assert len(by_group.json()["events"]) == sum(1 for v in data.past_visits if start <= v.start <= end)
    unscoped = check("calendars.json", await client.get("/calendars/events", params=window, headers=cal))
    assert unscoped.json() == {"statusCode": 400, "message": "Either of calendarId, userId or groupId is required"}

    contact_id = seeded["ids"][0]
    history = await client.get(f"/contacts/{contact_id}/appointments", headers={**cal, **V})
    mine = check("contacts.json", history).json()["events"]
    assert mine and all(e["contactId"] == contact_id and e["status"] == e["appointmentStatus"] for e in mine)
    assert mine[-1]["appointmentStatus"] == "confirmed"  # the generated future booking comes last


async def test_free_slots_and_booking(client: httpx.AsyncClient, cal: dict[str, str]) -> None:
    consult = await calendar_named(client, cal, "New patient consultation")
    team = [m["userId"] for m in consult["teamMembers"]]
    contact = await client.post("/contacts/", json={"locationId": LOC, "firstName": "Bea"}, headers={**cal, **V})
    contact_id = contact.json()["contact"]["id"]
    slots_url = f"/calendars/{consult['id']}/free-slots"
    week = {"startDate": int(T0 * 1000), "endDate": int(T0 * 1000) + 7 * 86_400_000}  # T0 is a Sunday

    days = check("calendars.json", await client.get(slots_url, params=week, headers=cal)).json()
    assert list(days) == ["2025-06-16", "2025-06-17", "2025-06-18", "2025-06-19", "2025-06-20"]  # Monday to Friday
    monday = days["2025-06-16"]["slots"]
    assert (monday[0], monday[-1], len(monday)) == ("2025-06-16T09:00:00-04:00", "2025-06-16T16:30:00-04:00", 16)
    pacific = (await client.get(slots_url, params={**week, "timezone": "America/Los_Angeles"}, headers=cal)).json()
    assert pacific["2025-06-16"]["slots"][0] == "2025-06-16T06:00:00-07:00"

    nine = "2025-06-16T09:00:00-04:00"
    body = {"calendarId": consult["id"], "locationId": LOC, "contactId": contact_id, "startTime": nine}
    booked = check(
        "calendars.json",
        await client.post("/calendars/events/appointments", json={**body, "assignedUserId": team[0]}, headers=cal),
    )
    assert booked.status_code == 200
    assert (booked.json()["endTime"], booked.json()["assignedUserId"]) == ("2025-06-16T09:30:00-04:00", team[0])
    assert booked.json()["appointmentStatus"] == "confirmed"
    for_user = (await client.get(slots_url, params={**week, "userId": team[0]}, headers=cal)).json()
    assert (
        nine not in for_user["2025-06-16"]["slots"] and "2025-06-16T09:30:00-04:00" in for_user["2025-06-16"]["slots"]
    )
    assert nine in (await client.get(slots_url, params=week, headers=cal)).json()["2025-06-16"]["slots"]

    taken = await client.post("/calendars/events/appointments", json={**body, "assignedUserId": team[0]}, headers=cal)
    assert check("calendars.json", taken).json() == {
        "statusCode": 400,
        "message": "The slot you have selected is no longer available.",
    }
    round_robin = (await client.post("/calendars/events/appointments", json=body, headers=cal)).json()
    assert round_robin["assignedUserId"] == team[1]
    forced = {**body, "assignedUserId": team[0], "ignoreFreeSlotValidation": True}
    double = (await client.post("/calendars/events/appointments", json=forced, headers=cal)).json()
    sunday = await client.post(
        "/calendars/events/appointments", json={**body, "startTime": "2025-06-15T13:00:00-04:00"}, headers=cal
    )
    assert sunday.status_code == 400

    await client.request("DELETE", f"/calendars/events/{double['id']}", json={}, headers=cal)
    cancel = {"appointmentStatus": "cancelled"}
    await client.put(f"/calendars/events/appointments/{booked.json()['id']}", json=cancel, headers=cal)
    freed = (await client.get(slots_url, params={**week, "userId": team[0]}, headers=cal)).json()
    assert nine in freed["2025-06-16"]["slots"]

    too_long = {"startDate": week["startDate"], "endDate": week["startDate"] + 32 * 86_400_000}
    refused = await client.get(slots_url, params=too_long, headers=cal)
    assert check("calendars.json", refused).json()["message"] == "Date range cannot be more than 31 days"


async def test_appointment_lifecycle_and_webhooks(
    ghl: Starlette, client: httpx.AsyncClient, cal: dict[str, str], receiver: Receiver
) -> None:
    await client.post("/_sandbox/webhooks", json={"client_id": CLIENT_ID, "url": "https://hub.example/ghl"})
    physical = await calendar_named(client, cal, "Annual physical")
    contact = await client.post("/contacts/", json={"locationId": LOC, "firstName": "Al"}, headers={**cal, **V})
    contact_id = contact.json()["contact"]["id"]
    body = {
        "calendarId": physical["id"], "locationId": LOC, "contactId": contact_id,
        "startTime": "2025-06-17T10:00:00-04:00", "title": "Yearly check", "address": "Room 4",
    }  # fmt: skip
    created = check(
        "calendars.json", await client.post("/calendars/events/appointments", json=body, headers=cal)
    ).json()
    assert (created["endTime"], created["meetingLocationType"], created["title"]) == (
        "2025-06-17T10:45:00-04:00",
        "custom",
        "Yearly check",
    )
    event_url = f"/calendars/events/appointments/{created['id']}"

    moved = await client.put(event_url, json={"startTime": "2025-06-18T14:00:00-04:00"}, headers=cal)
    assert check("calendars.json", moved).json()["endTime"] == "2025-06-18T14:45:00-04:00"  # the duration is kept
    fetched = check("calendars.json", await client.get(event_url, headers=cal)).json()["event"]
    assert (fetched["startTime"], fetched["contactId"], fetched["address"]) == (
        "2025-06-18T14:00:00-04:00",
        contact_id,
        "Room 4",
    )
    assert fetched["dateUpdated"] > fetched["dateAdded"]
    window = {"locationId": LOC, "calendarId": physical["id"], "startTime": ms(datetime(2025, 6, 18, tzinfo=UTC))}
    listed = (
        await client.get(
            "/calendars/events", params={**window, "endTime": window["startTime"] + 86_400_000}, headers=cal
        )
    ).json()
    assert [e["id"] for e in listed["events"]] == [created["id"]]

    foreign = {**auth(await mint(client, client_id="other-app", scope=ALL_SCOPES)), **CAL}
    assert (await client.get(event_url, headers=foreign)).status_code == 403
    assert (await client.get(event_url, headers={**cal, **V})).status_code == 400  # the contacts Version
    contacts_only = {**auth(await mint(client)), **CAL}
    assert (await client.get(event_url, headers=contacts_only)).status_code == 401
    nobody = await client.post("/calendars/events/appointments", json={**body, "contactId": "nope"}, headers=cal)
    assert check("calendars.json", nobody).json()["message"] == "Contact not found"
    extra = await client.post("/calendars/events/appointments", json={**body, "colour": "red"}, headers=cal)
    assert check("calendars.json", extra).json()["message"] == "property colour should not exist"
    missing = await client.post("/calendars/events/appointments", json={"locationId": LOC}, headers=cal)
    assert check("calendars.json", missing).json()["message"] == (
        "calendarId should not be empty, contactId should not be empty, startTime should not be empty"
    )

    deleted = check(
        "calendars.json", await client.request("DELETE", f"/calendars/events/{created['id']}", json={}, headers=cal)
    )
    assert (deleted.status_code, deleted.json()) == (201, {"succeeded": True})
    gone = check("calendars.json", await client.get(event_url, headers=cal))
    assert gone.json() == {"statusCode": 400, "message": "Event not found"}

    await ghl.state.sandbox.webhooks.drain()
    events = [check_webhook(e) for e in receiver.events() if e["type"].startswith("Appointment")]
    assert [e["type"] for e in events] == ["AppointmentCreate", "AppointmentUpdate", "AppointmentDelete"]
    assert all(e["locationId"] == LOC and e["appointment"]["id"] == created["id"] for e in events)
    assert events[1]["appointment"]["startTime"] == "2025-06-18T14:00:00-04:00"
    assert events[0]["appointment"]["source"] == "third_party"


# --- conversations --------------------------------------------------------------------------------


async def test_messages_sms_email_and_dnd(client: httpx.AsyncClient, cal: dict[str, str]) -> None:
    contacts = {**cal, **V}
    made = await client.post(
        "/contacts/",
        json={"locationId": LOC, "firstName": "Mo", "phone": "617-555-0111", "email": "mo@example.com"},
        headers=contacts,
    )
    contact_id = made.json()["contact"]["id"]
    sms = await client.post(
        "/conversations/messages", json={"type": "SMS", "contactId": contact_id, "message": "See you at 9"}, headers=cal
    )
    assert sms.status_code == 200
    first = check_schema("SendMessageResponseDto", sms.json())
    again = await client.post(
        "/conversations/messages", json={"type": "SMS", "contactId": contact_id, "message": "Reminder"}, headers=cal
    )
    assert again.json()["conversationId"] == first["conversationId"] and again.json()["messageId"] != first["messageId"]
    email = {"type": "Email", "contactId": contact_id, "subject": "Your visit", "html": "<p>Welcome</p>"}
    sent = check_schema(
        "SendMessageResponseDto", (await client.post("/conversations/messages", json=email, headers=cal)).json()
    )
    assert sent["emailMessageId"]

    message = check_schema(
        "GetMessageResponseDto", (await client.get(f"/conversations/messages/{sent['messageId']}", headers=cal)).json()
    )
    assert (message["type"], message["messageType"], message["contentType"]) == (3, "TYPE_EMAIL", "text/html")
    assert (message["direction"], message["body"], message["source"]) == ("outbound", "<p>Welcome</p>", "api")
    mail = (await client.get(f"/conversations/messages/email/{sent['emailMessageId']}", headers=cal)).json()
    assert (
        check_schema("GetEmailMessageResponseDto", mail)["to"] == ["mo@example.com"] and mail["subject"] == "Your visit"
    )
    text = check_schema(
        "GetMessageResponseDto", (await client.get(f"/conversations/messages/{first['messageId']}", headers=cal)).json()
    )
    assert (text["type"], text["messageType"], text["body"]) == (2, "TYPE_SMS", "See you at 9")

    await client.put(f"/contacts/{contact_id}", json={"dndSettings": {"Email": {"status": "active"}}}, headers=contacts)
    refused = await client.post("/conversations/messages", json=email, headers=cal)
    assert check_schema("BadRequestDTO", refused.json()) == {
        "statusCode": 400,
        "message": "Cannot send message as DND is active for Email.",
    }
    allowed = await client.post(
        "/conversations/messages", json={"type": "SMS", "contactId": contact_id, "message": "ok"}, headers=cal
    )
    assert allowed.status_code == 200
    await client.put(f"/contacts/{contact_id}", json={"dnd": True}, headers=contacts)
    blocked = await client.post(
        "/conversations/messages", json={"type": "SMS", "contactId": contact_id, "message": "no"}, headers=cal
    )
    assert (blocked.status_code, blocked.json()["message"]) == (400, "Cannot send message as DND is active for SMS.")

    outbox = (await client.get("/_sandbox/messages", params={"contactId": contact_id})).json()
    assert [(m["messageType"], m["body"], m["to"]) for m in outbox["messages"]] == [
        ("TYPE_SMS", "See you at 9", "+16175550111"),
        ("TYPE_SMS", "Reminder", "+16175550111"),
        ("TYPE_EMAIL", "<p>Welcome</p>", "mo@example.com"),
        ("TYPE_SMS", "ok", "+16175550111"),
    ]
    assert [(r["type"], r["reason"]) for r in outbox["refused"]] == [("Email", "dnd"), ("SMS", "dnd")]

    whatsapp = await client.post(
        "/conversations/messages", json={"type": "WhatsApp", "contactId": contact_id, "message": "x"}, headers=cal
    )
    assert whatsapp.status_code == 400
    unknown = await client.post(
        "/conversations/messages", json={"type": "SMS", "contactId": "nope", "message": "x"}, headers=cal
    )
    assert unknown.json() == {"statusCode": 400, "message": "Contact not found"}
    no_mail = (await client.post("/contacts/", json={"locationId": LOC, "firstName": "Nil"}, headers=contacts)).json()
    mailless = await client.post(
        "/conversations/messages", json={**email, "contactId": no_mail["contact"]["id"]}, headers=cal
    )
    assert mailless.json()["message"] == "Contact does not have an email address"
    contacts_only = {**auth(await mint(client)), **CAL}
    assert (await client.post("/conversations/messages", json=email, headers=contacts_only)).status_code == 401


# --- admin surface --------------------------------------------------------------------------------


async def test_stats_count_route_templates(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    for email in ("a@x.io", "b@x.io", "a@x.io"):
        await client.post("/contacts/upsert", json={"locationId": LOC, "email": email}, headers=headers)
    contact_id = (await client.get("/_sandbox/contacts")).json()["contacts"][0]["id"]
    await client.get(f"/contacts/{contact_id}", headers=headers)
    await client.get("/contacts/missing", headers=V)
    await client.get("/nowhere")
    stats = (await client.get("/_sandbox/stats")).json()
    assert stats == {
        "GET /contacts/{contactId}": 2,
        "POST /contacts/upsert": 3,
        "GET /nowhere": 1,  # unrouted: the raw path
        "POST /_sandbox/tokens": 1,  # the headers fixture
        "GET /_sandbox/contacts": 1,
        "GET /_sandbox/stats": 1,
    }
    await client.post("/_sandbox/stats/reset")
    assert (await client.get("/_sandbox/stats")).json() == {"GET /_sandbox/stats": 1}


async def test_faults(client: httpx.AsyncClient, headers: dict[str, str], clock: FakeClock) -> None:
    params = {"locationId": LOC}
    await client.post("/_sandbox/faults", json={"status_5xx_rate": 1.0})
    failed = await client.get("/contacts/", params=params, headers=headers)
    assert (failed.status_code, failed.json()) == (500, {"statusCode": 500, "message": "Internal server error"})
    await client.delete("/_sandbox/faults")
    await client.post("/_sandbox/faults", json={"outage_until": T0 + 60})
    assert (await client.get("/contacts/", params=params, headers=headers)).status_code == 503
    clock.now += 61
    assert (await client.get("/contacts/", params=params, headers=headers)).status_code == 200

    await client.post("/_sandbox/seed", json={"locationId": LOC, "count": 3, "appointments": False})
    # GHL's old name for the shared malformed_page fault still works; it breaks the next page only.
    faults = (await client.post("/_sandbox/faults", json={"malformed_next_page": True})).json()
    assert faults["malformed_page"] is True
    body = {"locationId": LOC, "pageLimit": 2}
    cursor = (await client.post("/contacts/search", json=body, headers=headers)).json()["contacts"][-1]["searchAfter"]
    assert cursor[0] is None
    follow = await client.post("/contacts/search", json={**body, "searchAfter": cursor}, headers=headers)
    assert follow.status_code == 422
    again = (await client.post("/contacts/search", json=body, headers=headers)).json()["contacts"][-1]["searchAfter"]
    assert None not in again and (await client.get("/_sandbox/faults")).json()["malformed_page"] is False

    await client.post("/_sandbox/faults", json={"malformed_page": True})
    page = (await client.get("/contacts/", params={**params, "limit": "2"}, headers=headers)).json()
    assert page["meta"]["startAfter"] == "NaN"
    broken = await client.get("/contacts/", params=query(page["meta"]["nextPageUrl"]), headers=headers)
    assert broken.status_code == 422

    bad = await client.post("/_sandbox/faults", json={"no_such_fault": 1})
    assert bad.status_code == 400
    await client.post("/_sandbox/reset")
    assert (await client.get("/_sandbox/faults")).json()["malformed_page"] is False
    assert (await client.get("/contacts/", params=params, headers=headers)).status_code == 401


async def test_rate_limit_storm(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    params = {"locationId": LOC}
    await client.post("/_sandbox/faults", json={"rate_limit_storm": 2, "rate_limit_enabled": False})
    for _ in range(2):
        limited = await client.get("/contacts/", params=params, headers=headers)
        assert (limited.status_code, limited.json()) == (429, {"statusCode": 429, "message": "Too Many Requests"})
        assert limited.headers["X-RateLimit-Remaining"] == "0" and "X-RateLimit-Limit-Daily" in limited.headers
    assert (await client.get("/contacts/", params=params, headers=headers)).status_code == 200
    assert (await client.get("/_sandbox/faults")).json()["rate_limit_storm"] == 0


async def test_daily_limit_per_app_and_location(clock: FakeClock) -> None:
    app = create_app(
        GhlSandboxSettings(
            clock=clock,
            daily_limit=3,
            apps=[
                AppRegistration(CLIENT_ID, CLIENT_SECRET, [REDIRECT], location_id=LOC),
                AppRegistration("second-app", "second-secret", [REDIRECT], location_id=LOC),
            ],
        )
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ghl.test") as client:
        first, second = auth(await mint(client)), auth(await mint(client, client_id="second-app"))
        params = {"locationId": LOC}
        for remaining in ("2", "1", "0"):
            ok = await client.get("/contacts/", params=params, headers=first)
            assert ok.status_code == 200
            assert (ok.headers["X-RateLimit-Limit-Daily"], ok.headers["X-RateLimit-Daily-Remaining"]) == (
                "3",
                remaining,
            )
        over = await client.get("/contacts/", params=params, headers=first)
        assert (over.status_code, over.json()) == (429, {"statusCode": 429, "message": "Too Many Requests"})
        assert over.headers["X-RateLimit-Daily-Remaining"] == "0"
        clock.now += 20  # past the burst window: the daily limit alone refuses
        assert (await client.get("/contacts/", params=params, headers=first)).status_code == 429
        # The limit is per app and location: another app on the same location has its own day.
        other = await client.get("/contacts/", params=params, headers=second)
        assert (other.status_code, other.headers["X-RateLimit-Daily-Remaining"]) == (200, "2")
        day_start = datetime.fromtimestamp(clock.now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        clock.now = (day_start + timedelta(days=1)).timestamp()  # the next UTC day
        fresh = await client.get("/contacts/", params=params, headers=first)
        assert (fresh.status_code, fresh.headers["X-RateLimit-Daily-Remaining"]) == (200, "2")
