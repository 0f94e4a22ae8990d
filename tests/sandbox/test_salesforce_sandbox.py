"""The Salesforce sandbox behaves like a Health Cloud org on login (OAuth 2.0, SOAP), REST sObjects,
SOQL, Composite / sObject Collections, API limits and Change Data Capture. simple-salesforce (a
client no one here wrote) drives it over real HTTP; httpx covers the rest in process."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import hmac
import json
import math
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceAuthenticationFailed,
    SalesforceMalformedRequest,
    SalesforceMoreThanOneRecord,
    SalesforceResourceNotFound,
)
from starlette.applications import Starlette

from libs.asgi import serve_asgi
from sandbox.common import synthetic
from sandbox.salesforce import ConnectedAppRegistration, SalesforceSandboxSettings, create_app
from sandbox.salesforce.settings import (
    DEFAULT_CONSUMER_KEY as KEY,
)
from sandbox.salesforce.settings import (
    DEFAULT_CONSUMER_SECRET as SECRET,
)
from sandbox.salesforce.settings import (
    DEFAULT_PASSWORD as PASSWORD,
)
from sandbox.salesforce.settings import (
    DEFAULT_SECURITY_TOKEN as SECURITY_TOKEN,
)
from sandbox.salesforce.settings import (
    DEFAULT_USERNAME as USERNAME,
)

from .salesforce_support import Receiver, loopback_session, private_pem, public_pem, rsa_key
from .support import FakeClock

INSTANCE = "https://popahealth.my.salesforce.com"
V = "/services/data/v60.0"
REDIRECT = "https://hub.example/oauth/salesforce/callback"
APP_NAME = "Concord Hub"
DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}\+0000$")
INVALID_SESSION = [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
LIMIT_EXCEEDED = [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]
NOT_FOUND = [{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}]
POSTMAN = Path(__file__).resolve().parents[2] / "docs/vendors/salesforce/postman/collections/salesforce_apis"


def case_safe(id15: str) -> str:
    """The 18-character form of a 15-character id (written here independently of the sandbox)."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
    chunks = (id15[i : i + 5] for i in (0, 5, 10))
    return id15 + "".join(alphabet[sum(1 << n for n, c in enumerate(chunk) if c.isupper())] for chunk in chunks)


def future_visits() -> list[synthetic.Visit]:
    """The future visits the sandbox seeds at the fake clock's start (settings.seed 20240520)."""
    return synthetic.future_visits(
        synthetic.load(), seed=20240520, now=dt.datetime.fromtimestamp(1_750_000_000, dt.UTC)
    )


def assert_id(value: str, prefix: str) -> None:
    assert len(value) == 18 and value.startswith(prefix) and case_safe(value[:15]) == value, value


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def receiver() -> Receiver:
    return Receiver()


def make_settings(clock: FakeClock, receiver: Receiver, **extra: Any) -> SalesforceSandboxSettings:
    return SalesforceSandboxSettings(
        base_url=INSTANCE,
        clock=clock,
        webhook_transport=httpx.MockTransport(receiver),
        webhook_retry_delays=(0.0, 0.0, 0.0),
        apps=[ConnectedAppRegistration(KEY, SECRET, name=APP_NAME, redirect_uris=[REDIRECT])],
        **extra,
    )


@pytest.fixture
def sf(clock: FakeClock, receiver: Receiver) -> Starlette:
    return create_app(make_settings(clock, receiver))


@pytest.fixture
async def client(sf: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=sf), base_url=INSTANCE) as c:
        yield c


async def password_login(client: httpx.AsyncClient) -> dict[str, Any]:
    form = {
        "grant_type": "password",
        "client_id": KEY,
        "client_secret": SECRET,
        "username": USERNAME,
        "password": PASSWORD + SECURITY_TOKEN,
    }
    response = await client.post("/services/oauth2/token", data=form)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
async def h(client: httpx.AsyncClient) -> dict[str, str]:
    return {"Authorization": f"Bearer {(await password_login(client))['access_token']}"}


def usage(response: httpx.Response) -> tuple[int, int]:
    used, limit = re.fullmatch(r"api-usage=(\d+)/(\d+)", response.headers["Sforce-Limit-Info"]).groups()  # type: ignore[union-attr]
    return int(used), int(limit)


async def create(client: httpx.AsyncClient, h: dict[str, str], sobject: str, body: dict[str, Any], **kw: Any) -> str:
    response = await client.post(f"{V}/sobjects/{sobject}", json=body, headers={**h, **kw.get("headers", {})})
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def soql(client: httpx.AsyncClient, h: dict[str, str], q: str, *, resource: str = "query") -> httpx.Response:
    return await client.get(f"{V}/{resource}", params={"q": q}, headers=h)


async def records(client: httpx.AsyncClient, h: dict[str, str], q: str) -> list[dict[str, Any]]:
    response = await soql(client, h, q)
    assert response.status_code == 200, response.text
    assert response.json()["done"] is True
    return response.json()["records"]


def error_code(response: httpx.Response) -> str:
    return response.json()[0]["errorCode"]


# --- OAuth 2.0 -------------------------------------------------------------------------------------


async def test_password_flow_appends_the_security_token(client: httpx.AsyncClient, sf: Starlette) -> None:
    tokens = await password_login(client)
    assert list(tokens) == ["access_token", "signature", "scope", "instance_url", "id", "token_type", "issued_at"]
    org_id = sf.state.sandbox.default_org_id
    user = next(iter(sf.state.sandbox.orgs[org_id].users.values()))
    assert tokens["instance_url"] == INSTANCE and tokens["token_type"] == "Bearer"
    assert tokens["id"] == f"{INSTANCE}/id/{org_id}/{user.id}"
    assert_id(org_id, "00D")
    assert_id(user.id, "005")
    assert tokens["access_token"].startswith(org_id[:15] + "!")
    expected = hmac.new(SECRET.encode(), (tokens["id"] + tokens["issued_at"]).encode(), hashlib.sha256).digest()
    assert base64.b64decode(tokens["signature"]) == expected
    assert tokens["issued_at"] == str(int(1_750_000_000 * 1000))

    base = {"grant_type": "password", "client_id": KEY, "client_secret": SECRET, "username": USERNAME}
    cases = [
        ({**base, "password": PASSWORD}, "invalid_grant", "authentication failure"),  # token not appended
        ({**base, "password": "wrong" + SECURITY_TOKEN}, "invalid_grant", "authentication failure"),
        (
            {**base, "client_id": "nope", "password": PASSWORD + SECURITY_TOKEN},
            "invalid_client_id",
            "client identifier invalid",
        ),
        (
            {**base, "client_secret": "nope", "password": PASSWORD + SECURITY_TOKEN},
            "invalid_client",
            "invalid client credentials",
        ),
        ({**base, "grant_type": "magic"}, "unsupported_grant_type", "grant type not supported"),
    ]
    for form, error, description in cases:
        response = await client.post("/services/oauth2/token", data=form)
        assert response.status_code == 400
        assert response.json() == {"error": error, "error_description": description}
    # Salesforce reads the token request as a form only.
    as_json = await client.post("/services/oauth2/token", json={**base, "password": PASSWORD + SECURITY_TOKEN})
    assert as_json.status_code == 400 and as_json.json()["error"] == "unsupported_grant_type"


async def test_web_server_flow_with_pkce_refresh_and_revoke(client: httpx.AsyncClient) -> None:
    verifier = "verifier-" + "x" * 50
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")

    async def authorize(**extra: str) -> dict[str, str]:
        params = {
            "response_type": "code",
            "client_id": KEY,
            "redirect_uri": REDIRECT,
            "scope": "api refresh_token",
            "state": "s-1",
        }
        response = await client.get("/services/oauth2/authorize", params={**params, **extra})
        assert response.status_code == 302
        location = response.headers["location"]
        assert location.startswith(REDIRECT + "?")
        return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}

    mismatch = await client.get(
        "/services/oauth2/authorize",
        params={"response_type": "code", "client_id": KEY, "redirect_uri": "https://evil.example/cb"},
    )
    assert mismatch.status_code == 400 and mismatch.json()["error"] == "redirect_uri_mismatch"

    granted = await authorize(code_challenge=challenge, code_challenge_method="S256")
    assert granted["state"] == "s-1"
    form = {
        "grant_type": "authorization_code",
        "code": granted["code"],
        "client_id": KEY,
        "client_secret": SECRET,
        "redirect_uri": REDIRECT,
    }
    no_verifier = await client.post("/services/oauth2/token", data=form)
    assert no_verifier.status_code == 400 and no_verifier.json()["error"] == "invalid_grant"
    wrong = await client.post("/services/oauth2/token", data={**form, "code_verifier": "other-" + "y" * 50})
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_request"
    issued = await client.post("/services/oauth2/token", data={**form, "code_verifier": verifier})
    assert issued.status_code == 200, issued.text
    tokens = issued.json()
    assert list(tokens) == [
        "access_token", "refresh_token", "signature", "scope", "instance_url", "id", "token_type", "issued_at",
    ]  # fmt: skip
    assert "expires_in" not in tokens and tokens["scope"] == "api refresh_token"
    reused = await client.post("/services/oauth2/token", data={**form, "code_verifier": verifier})
    assert reused.json() == {"error": "invalid_grant", "error_description": "invalid authorization code"}

    refresh_form = {
        "grant_type": "refresh_token",
        "client_id": KEY,
        "client_secret": SECRET,
        "refresh_token": tokens["refresh_token"],
    }
    refreshed = await client.post("/services/oauth2/token", data=refresh_form)
    assert refreshed.status_code == 200 and "refresh_token" not in refreshed.json()
    fresh = {"Authorization": f"Bearer {refreshed.json()['access_token']}"}
    assert (await client.get(f"{V}/limits", headers=fresh)).status_code == 200

    # Revoking the refresh token revokes it and the sessions it made.
    assert (await client.post("/services/oauth2/revoke", data={"token": tokens["refresh_token"]})).status_code == 200
    again = await client.post("/services/oauth2/token", data=refresh_form)
    assert again.json() == {"error": "invalid_grant", "error_description": "expired access/refresh token"}
    denied = await client.get(f"{V}/limits", headers=fresh)
    assert denied.status_code == 401 and denied.json() == INVALID_SESSION

    # Without a challenge at authorize, no verifier is needed.
    plain = await authorize()
    ok = await client.post("/services/oauth2/token", data={**form, "code": plain["code"]})
    assert ok.status_code == 200


async def test_jwt_bearer_flow_checks_signature_audience_and_expiry(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    key, other = rsa_key(0), rsa_key(1)
    registered = await client.post(
        "/_sandbox/connected-apps",
        json={
            "consumer_key": "jwt-app",
            "consumer_secret": "jwt-secret",
            "name": "JWT App",
            "jwt_public_key_pem": public_pem(key),
        },
    )
    assert registered.status_code == 201

    def assertion(signer: Any = key, **claims: Any) -> str:
        body = {
            "iss": "jwt-app",
            "sub": USERNAME,
            "aud": "https://login.salesforce.com",
            "exp": int(clock.now) + 170,
            **claims,
        }
        return jwt.encode(body, private_pem(signer), algorithm="RS256")

    async def exchange(value: str) -> httpx.Response:
        return await client.post(
            "/services/oauth2/token",
            data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": value},
        )

    good = await exchange(assertion())
    assert good.status_code == 200, good.text
    assert "refresh_token" not in good.json() and good.json()["token_type"] == "Bearer"
    assert (
        await client.get(f"{V}/limits", headers={"Authorization": f"Bearer {good.json()['access_token']}"})
    ).status_code == 200
    assert (await exchange(assertion(aud="https://test.salesforce.com"))).status_code == 200

    cases = [
        (assertion(signer=other), "invalid_grant", "invalid assertion"),
        (assertion(exp=int(clock.now) - 1), "invalid_grant", "expired authorization code"),
        (assertion(exp=int(clock.now) + 600), "invalid_grant", "invalid assertion"),  # more than 3 minutes ahead
        (assertion(aud="https://evil.example"), "invalid_grant", "audience is invalid"),
        (assertion(sub="nobody@example.com"), "invalid_grant", "user hasn't approved this consumer"),
        (assertion(iss="unknown-app"), "invalid_client_id", "client identifier invalid"),
        ("not.a.jwt", "invalid_grant", "invalid assertion"),
    ]
    for value, error, description in cases:
        response = await exchange(value)
        assert response.status_code == 400
        assert response.json() == {"error": error, "error_description": description}


async def test_session_times_out_after_inactivity(
    client: httpx.AsyncClient, h: dict[str, str], clock: FakeClock
) -> None:
    assert (await client.get(f"{V}/limits", headers=h)).status_code == 200
    clock.advance(7_000)
    assert (await client.get(f"{V}/limits", headers=h)).status_code == 200  # activity extends the session
    clock.advance(7_201)
    expired = await client.get(f"{V}/limits", headers=h)
    assert expired.status_code == 401 and expired.json() == INVALID_SESSION
    assert "Sforce-Limit-Info" not in expired.headers
    missing = await client.get(f"{V}/limits")
    assert missing.status_code == 401 and missing.json() == INVALID_SESSION

    fresh = {"Authorization": f"Bearer {(await password_login(client))['access_token']}"}
    assert (await client.post("/_sandbox/faults", json={"expire_all_tokens": True})).status_code == 200
    assert (await client.get(f"{V}/limits", headers=fresh)).status_code == 401
    other = (await password_login(client))["access_token"]
    assert (await client.post("/services/oauth2/revoke", data={"token": other})).status_code == 200
    assert (await client.get(f"{V}/limits", headers={"Authorization": f"OAuth {other}"})).status_code == 401


# --- limits and faults --------------------------------------------------------------------------------


async def test_daily_allowance_answers_403_request_limit_exceeded(
    client: httpx.AsyncClient, h: dict[str, str], sf: Starlette, clock: FakeClock
) -> None:
    org_id = sf.state.sandbox.default_org_id
    assert (await client.patch(f"/_sandbox/orgs/{org_id}", json={"daily_api_limit": 3})).status_code == 200
    first = await client.get(f"{V}/limits", headers=h)
    assert usage(first) == (1, 3)
    assert first.json()["DailyApiRequests"] == {"Max": 3, "Remaining": 2}
    assert (await client.get("/services/data/")).status_code == 200  # the versions list doesn't count
    await password_login(client)  # nor does logging in
    clock.advance(3_600)
    assert usage(await client.get(f"{V}/sobjects", headers=h)) == (2, 3)
    assert usage(await soql(client, h, "SELECT Id FROM Account")) == (3, 3)
    refused = await client.get(f"{V}/limits", headers=h)
    assert refused.status_code == 403 and refused.json() == LIMIT_EXCEEDED
    assert usage(refused) == (3, 3) and "Retry-After" not in refused.headers
    clock.advance(86_400 - 3_600)  # the first call leaves the rolling 24 hours
    h = {"Authorization": f"Bearer {(await password_login(client))['access_token']}"}  # the old session timed out
    again = await client.get(f"{V}/limits", headers=h)
    assert again.status_code == 200 and usage(again) == (3, 3)


async def test_faults_render_as_salesforce_errors(
    client: httpx.AsyncClient, h: dict[str, str], clock: FakeClock
) -> None:
    await client.post("/_sandbox/faults", json={"rate_limit_storm": 2})
    for _ in range(2):
        storm = await client.get(f"{V}/limits", headers=h)
        assert storm.status_code == 403 and storm.json() == LIMIT_EXCEEDED
    assert (await client.get(f"{V}/limits", headers=h)).status_code == 200

    await client.post("/_sandbox/faults", json={"status_5xx_rate": 1.0})
    seen = set()
    for _ in range(12):
        failed = await client.get(f"{V}/limits", headers=h)
        seen.add((failed.status_code, error_code(failed)))
    assert seen == {(500, "UNKNOWN_EXCEPTION"), (503, "SERVER_UNAVAILABLE")}
    await client.delete("/_sandbox/faults")

    await client.post("/_sandbox/faults", json={"outage_until": clock.now + 60})
    down = await client.get(f"{V}/limits", headers=h)
    assert down.status_code == 503 and error_code(down) == "SERVER_UNAVAILABLE"
    login = await client.post("/services/oauth2/token", data={"grant_type": "password"})
    assert login.status_code == 503
    clock.advance(61)
    assert (await client.get(f"{V}/limits", headers=h)).status_code == 200


async def test_versions_and_unknown_paths(client: httpx.AsyncClient, h: dict[str, str]) -> None:
    listed = (await client.get("/services/data")).json()
    assert [v["version"] for v in listed] == [f"{n}.0" for n in range(50, 63)]
    assert listed[10] == {"label": "Spring '24", "url": "/services/data/v60.0", "version": "60.0"}
    for version in ("v49.0", "v63.0", "v60", "60.0"):
        response = await client.get(f"/services/data/{version}/limits", headers=h)
        assert response.status_code == 404 and response.json() == NOT_FOUND
    resources = (await client.get(f"{V}/", headers=h)).json()
    assert resources["query"] == f"{V}/query" and resources["sobjects"] == f"{V}/sobjects"
    assert (await client.get(f"{V}/nothing/here", headers=h)).json() == NOT_FOUND
    wrong_method = await client.put(f"{V}/sobjects/Account/0018c000000001AAAA", headers=h, json={})
    assert wrong_method.status_code == 405 and error_code(wrong_method) == "METHOD_NOT_ALLOWED"
    unknown_object = await client.get(f"{V}/sobjects/Patient__c/describe", headers=h)
    assert unknown_object.status_code == 404 and unknown_object.json() == NOT_FOUND


# --- sObject rows ------------------------------------------------------------------------------------


async def test_person_account_crud(client: httpx.AsyncClient, h: dict[str, str], clock: FakeClock) -> None:
    body = {
        "FirstName": "Ada",
        "LastName": "Lovelace",
        "PersonEmail": "ada@example.com",
        "PersonBirthdate": "1815-12-10",
        "PersonMobilePhone": "555-0100",
        "PersonMailingCity": "London",
        "PersonGenderIdentity": "Female",
        "Concord_Patient_Id__c": "pat-1",
    }
    created = await client.post(f"{V}/sobjects/Account", json=body, headers=h)
    assert created.status_code == 201
    account_id = created.json()["id"]
    assert created.json() == {"id": account_id, "success": True, "errors": []}
    assert_id(account_id, "001")

    record = (await client.get(f"{V}/sobjects/Account/{account_id}", headers=h)).json()
    assert record["attributes"] == {"type": "Account", "url": f"{V}/sobjects/Account/{account_id}"}
    assert record["IsPersonAccount"] is True and record["Name"] == "Ada Lovelace" and record["IsDeleted"] is False
    assert record["PersonBirthdate"] == "1815-12-10" and record["Concord_Patient_Id__c"] == "pat-1"
    for stamp in ("CreatedDate", "LastModifiedDate", "SystemModstamp"):
        assert DATETIME.match(record[stamp]), record[stamp]
    assert record["CreatedDate"] == "2025-06-15T15:06:40.000+0000"
    assert_id(record["PersonContactId"], "003")
    assert_id(record["RecordTypeId"], "012")

    person_type = await records(
        client, h, "SELECT Id FROM RecordType WHERE SobjectType = 'Account' AND IsPersonType = true"
    )
    assert [r["Id"] for r in person_type] == [record["RecordTypeId"]]

    only = (
        await client.get(f"{V}/sobjects/Account/{account_id}", params={"fields": "name,PersonEmail"}, headers=h)
    ).json()
    assert list(only) == ["attributes", "Name", "PersonEmail"]
    short = await client.get(f"{V}/sobjects/Account/{account_id[:15]}", params={"fields": "Id"}, headers=h)
    assert short.json()["Id"] == account_id  # 15-character ids work and come back as 18

    clock.advance(65)
    updated = await client.patch(f"{V}/sobjects/Account/{account_id}", json={"FirstName": "Augusta Ada"}, headers=h)
    assert updated.status_code == 204 and updated.content == b""
    after = (await client.get(f"{V}/sobjects/Account/{account_id}", headers=h)).json()
    assert after["Name"] == "Augusta Ada Lovelace" and after["CreatedDate"] == record["CreatedDate"]
    assert after["LastModifiedDate"] == after["SystemModstamp"] == "2025-06-15T15:07:45.000+0000"

    # The person account's contact mirrors it, and is edited only through it.
    contact = (await client.get(f"{V}/sobjects/Contact/{record['PersonContactId']}", headers=h)).json()
    assert (contact["IsPersonAccount"], contact["FirstName"], contact["Email"], contact["Birthdate"]) == (
        True, "Augusta Ada", "ada@example.com", "1815-12-10",
    )  # fmt: skip
    direct = await client.patch(f"{V}/sobjects/Contact/{contact['Id']}", json={"FirstName": "X"}, headers=h)
    assert direct.status_code == 400 and error_code(direct) == "INVALID_PERSON_ACCOUNT_OPERATION"

    assert (await client.delete(f"{V}/sobjects/Account/{account_id}", headers=h)).status_code == 204
    gone = await client.get(f"{V}/sobjects/Account/{account_id}", headers=h)
    assert gone.status_code == 404 and error_code(gone) == "ENTITY_IS_DELETED"
    assert (await client.delete(f"{V}/sobjects/Account/{account_id}", headers=h)).status_code == 404
    by_id = f"SELECT Id, IsDeleted FROM Contact WHERE Id = '{contact['Id']}'"  # noqa: S608
    all_rows = await soql(client, h, by_id, resource="queryAll")
    assert all_rows.json()["records"][0]["IsDeleted"] is True  # cascade-deleted with its account


async def test_invalid_records_get_salesforce_errors(client: httpx.AsyncClient, h: dict[str, str]) -> None:
    async def post(sobject: str, body: Any, raw: str | None = None) -> httpx.Response:
        if raw is not None:
            return await client.post(
                f"{V}/sobjects/{sobject}", content=raw, headers={**h, "Content-Type": "application/json"}
            )
        return await client.post(f"{V}/sobjects/{sobject}", json=body, headers=h)

    unknown = await post("Account", {"LastName": "X", "Foo": 1})
    assert unknown.status_code == 400
    assert unknown.json() == [
        {"message": "No such column 'Foo' on sobject of type Account", "errorCode": "INVALID_FIELD", "fields": []}
    ]
    missing = await post("Account", {"FirstName": "Only", "PersonEmail": "only@example.com"})
    assert missing.json() == [
        {
            "message": "Required fields are missing: [LastName]",
            "errorCode": "REQUIRED_FIELD_MISSING",
            "fields": ["LastName"],
        }
    ]
    business = await post("Account", {"Phone": "555"})
    assert business.json()[0]["fields"] == ["Name"]
    contact = await post("Contact", {"FirstName": "No"})
    assert contact.json()[0]["errorCode"] == "REQUIRED_FIELD_MISSING" and contact.json()[0]["fields"] == ["LastName"]

    checks = [
        (await post("Account", {"LastName": "X", "PersonBirthdate": "10/12/1815"}), 400, "JSON_PARSER_ERROR"),
        (await post("Account", {"LastName": "X", "PersonBirthdate": 1815}), 400, "INVALID_TYPE_ON_FIELD_IN_RECORD"),
        (await post("Account", {"LastName": "X", "PersonEmail": "not-an-email"}), 400, "INVALID_EMAIL_ADDRESS"),
        (await post("Account", {"LastName": "X", "IsPersonAccount": True}), 400, "INVALID_FIELD_FOR_INSERT_UPDATE"),
        (await post("Account", {"LastName": "X" * 81}), 400, "STRING_TOO_LONG"),
        (
            await post("Account", {"Name": "Clinic", "PersonEmail": "a@b.co", "RecordTypeId": None}),
            400,
            "INVALID_FIELD_FOR_INSERT_UPDATE",
        ),
        (await post("Contact", {"LastName": "X", "AccountId": "001-not-an-id"}), 400, "MALFORMED_ID"),
        (
            await post("Contact", {"LastName": "X", "AccountId": case_safe("0038c0000000001")}),
            400,
            "FIELD_INTEGRITY_EXCEPTION",
        ),
        (
            await post("Contact", {"LastName": "X", "AccountId": case_safe("0018c0000zzzzzz")}),
            400,
            "INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY",
        ),
        (await post("Contact", None, raw="{not json"), 400, "JSON_PARSER_ERROR"),
        (await post("Contact", None, raw=""), 400, "JSON_PARSER_ERROR"),
        (await post("ServiceAppointment", {"Subject": "x"}), 400, "REQUIRED_FIELD_MISSING"),
        (await post("Event", {"Subject": "x", "StartDateTime": "2025-07-01T10:00:00Z"}), 400, "REQUIRED_FIELD_MISSING"),
    ]
    for response, status, code in checks:
        assert (response.status_code, error_code(response)) == (status, code), response.text
    malformed_field = (await post("Contact", {"LastName": "X", "AccountId": "001-not-an-id"})).json()[0]
    assert malformed_field["fields"] == ["AccountId"]

    account_id = await create(client, h, "Account", {"LastName": "Unique", "Concord_Patient_Id__c": "dup-1"})
    duplicate = await post("Account", {"LastName": "Other", "Concord_Patient_Id__c": "DUP-1"})
    assert error_code(duplicate) == "DUPLICATE_VALUE" and account_id in duplicate.json()[0]["message"]
    picklist = await post("ServiceAppointment", {"ParentRecordId": account_id, "Status": "Booked"})
    assert picklist.json() == [
        {
            "message": "Status: bad value for restricted picklist field: Booked",
            "errorCode": "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
            "fields": ["Status"],
        }
    ]
    # Ids in URLs: malformed -> 404, another object's id -> 400 MALFORMED_ID.
    assert (await client.get(f"{V}/sobjects/Account/garbage", headers=h)).json() == NOT_FOUND
    wrong_object = await client.patch(f"{V}/sobjects/Account/{case_safe('0038c0000000001')}", json={}, headers=h)
    assert wrong_object.status_code == 400 and error_code(wrong_object) == "MALFORMED_ID"
    unknown_id = await client.patch(f"{V}/sobjects/Account/{case_safe('0018c0000zzzzzz')}", json={}, headers=h)
    assert unknown_id.status_code == 404 and unknown_id.json() == NOT_FOUND
    bad_checksum = await client.get(f"{V}/sobjects/Account/{account_id[:15]}zzz", headers=h)
    assert bad_checksum.status_code == 404
    bad_fields = await client.get(f"{V}/sobjects/Account/{account_id}", params={"fields": "Name,Nope"}, headers=h)
    assert bad_fields.status_code == 400 and error_code(bad_fields) == "INVALID_FIELD"


async def test_upsert_by_external_id(client: httpx.AsyncClient, h: dict[str, str]) -> None:
    url = f"{V}/sobjects/Account/Concord_Patient_Id__c/ext-7"
    created = await client.patch(url, json={"LastName": "Hopper", "FirstName": "Grace"}, headers=h)
    assert created.status_code == 201
    account_id = created.json()["id"]
    assert created.json() == {"id": account_id, "success": True, "errors": [], "created": True}
    updated = await client.patch(url, json={"PersonEmail": "grace@example.com"}, headers=h)
    assert updated.status_code == 200
    assert updated.json() == {"id": account_id, "success": True, "errors": [], "created": False}
    fetched = (await client.get(url, headers=h)).json()
    assert (fetched["Id"], fetched["PersonEmail"], fetched["Concord_Patient_Id__c"]) == (
        account_id,
        "grace@example.com",
        "ext-7",
    )

    not_external = await client.patch(f"{V}/sobjects/Account/PersonEmail/x@y.z", json={"LastName": "Q"}, headers=h)
    assert not_external.status_code == 404
    assert not_external.json() == [
        {
            "errorCode": "NOT_FOUND",
            "message": "Provided external ID field does not exist or is not accessible: PersonEmail",
        }
    ]
    # HealthCloudGA__SourceSystemId__c is an external id but not unique: two matches -> 300.
    for last in ("One", "Two"):
        await create(client, h, "Account", {"LastName": last, "HealthCloudGA__SourceSystemId__c": "ehr-9"})
    multiple = await client.patch(
        f"{V}/sobjects/Account/HealthCloudGA__SourceSystemId__c/ehr-9", json={"Phone": "1"}, headers=h
    )
    assert multiple.status_code == 300
    assert len(multiple.json()) == 2 and all(u.startswith(f"{V}/sobjects/Account/001") for u in multiple.json())
    assert (await client.delete(url, headers=h)).status_code == 204
    assert (await client.get(url, headers=h)).status_code == 404
    recreated = await client.patch(url, json={"LastName": "Hopper"}, headers=h)
    assert recreated.status_code == 201 and recreated.json()["id"] != account_id


async def test_event_and_service_appointment_fields(client: httpx.AsyncClient, h: dict[str, str]) -> None:
    account_id = await create(client, h, "Account", {"LastName": "Curie", "FirstName": "Marie"})
    contact_id = (await client.get(f"{V}/sobjects/Account/{account_id}", headers=h)).json()["PersonContactId"]
    work_type = await create(client, h, "WorkType", {"Name": "Consult", "EstimatedDuration": 30})
    appointment_id = await create(
        client,
        h,
        "ServiceAppointment",
        {
            "ParentRecordId": account_id,
            "ContactId": contact_id,
            "WorkTypeId": work_type,
            "SchedStartTime": "2025-07-01T14:00:00.000Z",
            "SchedEndTime": "2025-07-01T10:30:00-04:00",
            "Status": "Scheduled",
            "Concord_Appointment_Id__c": "appt-1",
        },
    )
    assert_id(appointment_id, "08p")
    appointment = (await client.get(f"{V}/sobjects/ServiceAppointment/{appointment_id}", headers=h)).json()
    assert appointment["AppointmentNumber"] == "SA-0001" and appointment["AccountId"] == account_id
    assert (
        appointment["SchedEndTime"] == "2025-07-01T14:30:00.000+0000" and appointment["StatusCategory"] == "Scheduled"
    )
    assert appointment["ParentRecordType"] == "Account"
    backwards = await client.patch(
        f"{V}/sobjects/ServiceAppointment/{appointment_id}", json={"SchedEndTime": "2025-07-01T13:00:00Z"}, headers=h
    )
    assert error_code(backwards) == "FIELD_INTEGRITY_EXCEPTION"
    not_updateable = await client.patch(
        f"{V}/sobjects/ServiceAppointment/{appointment_id}", json={"ParentRecordId": account_id}, headers=h
    )
    assert error_code(not_updateable) == "INVALID_FIELD_FOR_INSERT_UPDATE"

    event_id = await create(
        client,
        h,
        "Event",
        {
            "Subject": "Consult",
            "StartDateTime": "2025-07-01T14:00:00Z",
            "DurationInMinutes": 45,
            "WhoId": contact_id,
            "WhatId": appointment_id,
        },
    )
    assert_id(event_id, "00U")
    event = (await client.get(f"{V}/sobjects/Event/{event_id}", headers=h)).json()
    assert (event["EndDateTime"], event["ActivityDate"], event["ActivityDateTime"]) == (
        "2025-07-01T14:45:00.000+0000", "2025-07-01", "2025-07-01T14:00:00.000+0000",
    )  # fmt: skip
    await client.patch(f"{V}/sobjects/Event/{event_id}", json={"StartDateTime": "2025-07-02T09:00:00Z"}, headers=h)
    moved = (
        await client.get(
            f"{V}/sobjects/Event/{event_id}", params={"fields": "EndDateTime,DurationInMinutes"}, headers=h
        )
    ).json()
    assert moved["EndDateTime"] == "2025-07-02T09:45:00.000+0000" and moved["DurationInMinutes"] == 45
    wrong_who = await client.post(
        f"{V}/sobjects/Event",
        json={"StartDateTime": "2025-07-01T14:00:00Z", "DurationInMinutes": 5, "WhoId": account_id},
        headers=h,
    )
    assert error_code(wrong_who) == "FIELD_INTEGRITY_EXCEPTION"

    described = (await client.get(f"{V}/sobjects/ServiceAppointment/describe", headers=h)).json()
    fields = {f["name"]: f for f in described["fields"]}
    assert described["keyPrefix"] == "08p"
    assert fields["Concord_Appointment_Id__c"]["externalId"] and fields["Concord_Appointment_Id__c"]["unique"]
    assert fields["Status"]["restrictedPicklist"] and fields["ParentRecordId"]["updateable"] is False


async def test_updated_and_deleted_resources(client: httpx.AsyncClient, h: dict[str, str], clock: FakeClock) -> None:
    first = await create(client, h, "Account", {"LastName": "First"})
    clock.advance(120)
    second = await create(client, h, "Account", {"LastName": "Second"})
    clock.advance(120)
    await client.delete(f"{V}/sobjects/Account/{first}", headers=h)
    clock.advance(120)
    window = {"start": "2025-06-15T15:06:00+00:00", "end": "2025-06-15T15:20:00+00:00"}
    changed = (await client.get(f"{V}/sobjects/Account/updated/", params=window, headers=h)).json()
    assert changed == {"ids": [second], "latestDateCovered": "2025-06-15T15:12:00.000+0000"}
    removed = (await client.get(f"{V}/sobjects/Account/deleted/", params=window, headers=h)).json()
    assert removed["deletedRecords"] == [{"id": first, "deletedDate": "2025-06-15T15:10:40.000+0000"}]
    assert DATETIME.match(removed["earliestDateAvailable"]) and DATETIME.match(removed["latestDateCovered"])
    late = {"start": "2025-06-15T15:08:59Z", "end": "2025-06-15T15:20:00Z"}  # seconds are ignored
    assert (await client.get(f"{V}/sobjects/Account/updated", params=late, headers=h)).json()["ids"] == [second]
    backwards = await client.get(
        f"{V}/sobjects/Account/updated/", params={"start": window["end"], "end": window["start"]}, headers=h
    )
    assert backwards.status_code == 400 and error_code(backwards) == "INVALID_REPLICATION_DATE"


# --- SOQL --------------------------------------------------------------------------------------------


@pytest.fixture
async def seeded(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.post("/_sandbox/seed", json={"link_concord_ids": True})
    assert response.status_code == 201
    return response.json()


async def test_seed_from_synthea(
    client: httpx.AsyncClient, h: dict[str, str], seeded: dict[str, Any], clock: FakeClock
) -> None:
    data = synthetic.load()
    future = future_visits()
    assert (seeded["Account"], seeded["WorkType"]) == (len(data.patients), len(synthetic.SERVICES))
    assert seeded["ServiceAppointment"] == seeded["Event"] == len(data.past_visits) + len(future)
    patient = next(p for p in data.patients if not p.get("deceasedDateTime") and not p.get("deceasedBoolean"))
    account = (
        await client.get(f"{V}/sobjects/Account/HealthCloudGA__SourceSystemId__c/{patient['id']}", headers=h)
    ).json()
    name = synthetic.official_name(patient)
    assert (account["LastName"], account["FirstName"], account["PersonBirthdate"]) == (
        name["family"],
        name["given"][0],
        patient["birthDate"],
    )
    assert account["Concord_Patient_Id__c"] == patient["id"] and account["IsPersonAccount"] is True
    visits = await records(
        client,
        h,
        f"SELECT Status, SchedStartTime, ContactId, Concord_Appointment_Id__c FROM ServiceAppointment WHERE AccountId = '{account['Id']}' ORDER BY SchedStartTime",  # noqa: S608
    )
    expected = sorted([v for v in [*data.past_visits, *future] if v.patient_id == patient["id"]], key=lambda v: v.start)
    assert [r["Concord_Appointment_Id__c"] for r in visits] == [v.visit_id for v in expected]
    assert {r["Status"] for r in visits} <= {"Completed", "Scheduled"} and visits[-1]["Status"] == "Scheduled"
    assert all(r["ContactId"] == account["PersonContactId"] for r in visits)
    count = await soql(client, h, f"SELECT COUNT() FROM Event WHERE WhoId = '{account['PersonContactId']}'")  # noqa: S608
    assert count.json() == {"totalSize": len(expected), "done": True, "records": []}
    # Seeding again with the same Concord ids fails whole: nothing of it stays.
    again = await client.post("/_sandbox/seed", json={"link_concord_ids": True})
    assert again.status_code == 400 and again.json()[0]["errorCode"] == "DUPLICATE_VALUE"
    total = await soql(client, h, "SELECT COUNT() FROM Account")
    assert total.json()["totalSize"] == len(data.patients)


async def test_soql_filters_ordering_and_relationships(
    client: httpx.AsyncClient, h: dict[str, str], seeded: dict[str, Any], clock: FakeClock
) -> None:
    accounts = await records(
        client, h, "SELECT Id, LastName, PersonBirthdate FROM Account ORDER BY LastName DESC, FirstName ASC NULLS LAST"
    )
    assert len(accounts) == seeded["Account"]
    names = [a["LastName"].lower() for a in accounts]
    assert names == sorted(names, reverse=True)
    b_names = await records(client, h, "select lastname from account where LastName like 'b%' order by LastName")
    assert b_names and all(r["LastName"].lower().startswith("b") for r in b_names)
    assert list(b_names[0]) == ["attributes", "LastName"]  # canonical field names whatever the query's case
    some = [a["Id"] for a in accounts[:3]]
    picked = await records(
        client,
        h,
        f"SELECT Id FROM Account WHERE Id IN ('{some[0]}', '{some[1][:15]}', '{some[2]}')",  # noqa: S608
    )
    assert sorted(r["Id"] for r in picked) == sorted(some)
    older = await records(client, h, "SELECT Id, PersonBirthdate FROM Account WHERE PersonBirthdate < 1950-01-01")
    assert older and all(r["PersonBirthdate"] < "1950-01-01" for r in older)
    same = await records(client, h, f"SELECT Id FROM Account WHERE LastName = '{accounts[0]['LastName'].upper()}'")  # noqa: S608
    assert accounts[0]["Id"] in [r["Id"] for r in same]  # text comparisons ignore case
    grouped = await records(
        client,
        h,
        "SELECT Id FROM ServiceAppointment WHERE (Status = 'Scheduled' OR Status = 'Dispatched') AND SchedStartTime > 2025-06-15T00:00:00Z",
    )
    assert len(grouped) == len(future_visits())
    paged = await records(
        client, h, "SELECT Id FROM Account ORDER BY LastName DESC, FirstName ASC NULLS LAST LIMIT 5 OFFSET 2"
    )
    assert [r["Id"] for r in paged] == [a["Id"] for a in accounts[2:7]]
    joined = await records(
        client,
        h,
        "SELECT Id, Account.Name, Account.Concord_Patient_Id__c, WorkType.Name FROM ServiceAppointment LIMIT 1",
    )
    assert joined[0]["Account"]["attributes"]["type"] == "Account" and joined[0]["Account"]["Concord_Patient_Id__c"]
    assert joined[0]["WorkType"]["Name"] in {s[1] for s in synthetic.SERVICES}
    not_null = await records(client, h, "SELECT Id FROM Account WHERE PersonMobilePhone != null")
    assert not_null == []
    today = await soql(client, h, "SELECT COUNT() FROM Account WHERE SystemModstamp = TODAY AND IsDeleted = false")
    assert today.json()["totalSize"] == seeded["Account"]
    clock.advance(86_400 * 2)
    h = {"Authorization": f"Bearer {(await password_login(client))['access_token']}"}
    yesterday = await soql(client, h, "SELECT COUNT() FROM Account WHERE SystemModstamp = YESTERDAY")
    assert yesterday.json()["totalSize"] == 0
    recent = await soql(client, h, "SELECT COUNT() FROM Account WHERE LastModifiedDate = LAST_N_DAYS:3")
    assert recent.json()["totalSize"] == seeded["Account"]
    counted = await records(client, h, "SELECT COUNT(Id) total FROM WorkType")
    assert counted == [{"attributes": {"type": "AggregateResult"}, "total": len(synthetic.SERVICES)}]


async def test_soql_errors(client: httpx.AsyncClient, h: dict[str, str]) -> None:
    cases = [
        ("SELEC Id FROM Account", "MALFORMED_QUERY"),
        ("SELECT Id FROM Account WHERE LastName = 'a' AND FirstName = 'b' OR Phone = 'c'", "MALFORMED_QUERY"),
        ("SELECT Id FROM Account WHERE", "MALFORMED_QUERY"),
        ("SELECT Id, FROM Account", "MALFORMED_QUERY"),
        ("SELECT Id FROM Account LIMIT x", "MALFORMED_QUERY"),
        ("SELECT Id, Foo FROM Account", "INVALID_FIELD"),
        ("SELECT Id FROM Account WHERE Bar = 1", "INVALID_FIELD"),
        ("SELECT Id FROM Account WHERE LastModifiedDate > '2024-01-01T00:00:00Z'", "INVALID_FIELD"),
        ("SELECT Id FROM Account WHERE LastModifiedDate > 2024-01-01", "INVALID_FIELD"),
        ("SELECT Id FROM Account WHERE LastName = 5", "INVALID_FIELD"),
        ("SELECT Id FROM Account WHERE Id = 'abc'", "INVALID_QUERY_FILTER_OPERATOR"),
        ("SELECT Id, Nope.Name FROM Account", "INVALID_FIELD"),
        ("SELECT Id FROM Patient", "INVALID_TYPE"),
    ]
    for query, code in cases:
        response = await soql(client, h, query)
        assert response.status_code == 400 and error_code(response) == code, (query, response.text)
    unknown = (await soql(client, h, "SELECT Id, Foo FROM Account")).json()[0]["message"]
    assert "No such column 'Foo' on entity 'Account'" in unknown and "ERROR at Row:1:Column:12" in unknown
    mixed = (
        await soql(client, h, "SELECT Id FROM Account WHERE LastName = 'a' AND FirstName = 'b' OR Phone = 'c'")
    ).json()
    assert "unexpected token: OR" in mixed[0]["message"]
    assert error_code(await client.get(f"{V}/query", headers=h)) == "MALFORMED_QUERY"


async def test_query_paging_with_batch_size_and_locators(
    client: httpx.AsyncClient, h: dict[str, str], sf: Starlette, clock: FakeClock
) -> None:
    await client.post("/_sandbox/seed", json={"future_per_patient": 6})
    total = (await soql(client, h, "SELECT COUNT() FROM ServiceAppointment")).json()["totalSize"]
    assert total > 2000
    first = await client.get(
        f"{V}/query",
        params={"q": "SELECT Id FROM ServiceAppointment"},
        headers={**h, "Sforce-Query-Options": "batchSize=500"},
    )
    page = first.json()
    assert list(page) == ["totalSize", "done", "nextRecordsUrl", "records"]
    assert (page["totalSize"], page["done"], len(page["records"])) == (total, False, 500)
    assert re.fullmatch(r"/services/data/v60\.0/query/01g[0-9A-Za-z]{15}-500", page["nextRecordsUrl"])
    ids = [r["Id"] for r in page["records"]]
    pages = 1
    while not page["done"]:
        page = (await client.get(page["nextRecordsUrl"], headers=h)).json()
        ids += [r["Id"] for r in page["records"]]
        pages += 1
    assert pages == math.ceil(total / 500) and len(set(ids)) == total and "nextRecordsUrl" not in page
    default = (await soql(client, h, "SELECT Id FROM ServiceAppointment")).json()
    assert len(default["records"]) == 2000 and default["nextRecordsUrl"].endswith("-2000")
    tiny = await client.get(
        f"{V}/query", params={"q": "SELECT Id FROM Account"}, headers={**h, "Sforce-Query-Options": "batchSize=10"}
    )
    assert tiny.json()["done"] is True  # batch sizes are 200..2000

    clock.advance(16 * 60)  # an unused cursor lasts 15 minutes
    stale = await client.get(default["nextRecordsUrl"], headers=h)
    assert stale.status_code == 400
    assert stale.json() == [{"message": "invalid query locator", "errorCode": "INVALID_QUERY_LOCATOR"}]

    await client.post("/_sandbox/faults", json={"malformed_page": True})
    broken = (await soql(client, h, "SELECT Id FROM ServiceAppointment")).json()
    assert (await client.get(broken["nextRecordsUrl"], headers=h)).status_code == 400
    fine = (await soql(client, h, "SELECT Id FROM ServiceAppointment")).json()
    assert (await client.get(fine["nextRecordsUrl"], headers=h)).status_code == 200

    victim = ids[0]
    await client.delete(f"{V}/sobjects/ServiceAppointment/{victim}", headers=h)
    live = await soql(client, h, f"SELECT Id FROM ServiceAppointment WHERE Id = '{victim}'")  # noqa: S608
    assert live.json()["totalSize"] == 0
    by_id = f"SELECT Id, IsDeleted FROM ServiceAppointment WHERE Id = '{victim}'"  # noqa: S608
    everything = await soql(client, h, by_id, resource="queryAll")
    assert everything.json()["records"][0]["IsDeleted"] is True


# --- sObject Collections and Composite ----------------------------------------------------------------


async def test_sobject_collections(client: httpx.AsyncClient, h: dict[str, str]) -> None:
    def account(last: str, **extra: Any) -> dict[str, Any]:
        return {"attributes": {"type": "Account"}, "LastName": last, **extra}

    before = usage(await client.get(f"{V}/limits", headers=h))[0]
    mixed = await client.post(
        f"{V}/composite/sobjects",
        json={
            "allOrNone": False,
            "records": [account("A"), account("B", Foo=1), {"attributes": {"type": "Contact"}, "LastName": "C"}],
        },
        headers=h,
    )
    assert mixed.status_code == 200 and usage(mixed)[0] == before + 1  # one API call for the whole request
    results = mixed.json()
    assert results[0]["success"] is True and results[0]["errors"] == [] and results[0]["id"].startswith("001")
    assert results[1] == {
        "success": False,
        "errors": [
            {"statusCode": "INVALID_FIELD", "message": "No such column 'Foo' on sobject of type Account", "fields": []}
        ],
    }
    assert results[2]["id"].startswith("003")

    count_before = (await soql(client, h, "SELECT COUNT() FROM Account")).json()["totalSize"]
    rolled = await client.post(
        f"{V}/composite/sobjects",
        json={"allOrNone": True, "records": [account("D"), account("E", PersonEmail="bad"), account("F")]},
        headers=h,
    )
    assert rolled.status_code == 200
    rolled_back = {
        "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
        "message": "Record rolled back because not all records were valid and the request was using AllOrNone header",
        "fields": [],
    }
    assert rolled.json()[0] == {"success": False, "errors": [rolled_back]}
    assert rolled.json()[1]["errors"][0]["statusCode"] == "INVALID_EMAIL_ADDRESS"
    assert rolled.json()[2] == {"success": False, "errors": [rolled_back]}
    assert (await soql(client, h, "SELECT COUNT() FROM Account")).json()["totalSize"] == count_before

    too_many = await client.post(
        f"{V}/composite/sobjects", json={"records": [account(f"N{i}") for i in range(201)]}, headers=h
    )
    assert too_many.status_code == 400 and error_code(too_many) == "EXCEEDED_ID_LIMIT"
    two_hundred = await client.post(
        f"{V}/composite/sobjects", json={"records": [account(f"N{i}") for i in range(200)]}, headers=h
    )
    ids = [r["id"] for r in two_hundred.json()]
    assert len(ids) == 200 and all(r["success"] for r in two_hundred.json())

    updated = await client.patch(
        f"{V}/composite/sobjects",
        json={
            "records": [
                {"attributes": {"type": "Account"}, "id": ids[0], "Phone": "1"},
                {"attributes": {"type": "Account"}, "Phone": "2"},
            ]
        },
        headers=h,
    )
    assert updated.json()[0] == {"id": ids[0], "success": True, "errors": []}
    assert updated.json()[1]["errors"][0] == {
        "statusCode": "MISSING_ARGUMENT",
        "message": "Id not specified in an update call",
        "fields": [],
    }

    upserted = await client.patch(
        f"{V}/composite/sobjects/Account/Concord_Patient_Id__c",
        json={
            "allOrNone": False,
            "records": [
                {"attributes": {"type": "Account"}, "Concord_Patient_Id__c": "c-1", "LastName": "New"},
                {"attributes": {"type": "Account"}, "Concord_Patient_Id__c": "c-1", "LastName": "Twice"},
                {"attributes": {"type": "Account"}, "Concord_Patient_Id__c": "c-2", "LastName": "Other"},
            ],
        },
        headers=h,
    )
    first, dup, third = upserted.json()
    assert dup["errors"][0]["statusCode"] == "DUPLICATE_EXTERNAL_ID" and first["success"] is False
    assert third["created"] is True
    again = await client.patch(
        f"{V}/composite/sobjects/Account/Concord_Patient_Id__c",
        json={
            "records": [
                {"attributes": {"type": "Account"}, "Concord_Patient_Id__c": "c-2", "PersonEmail": "o@example.com"}
            ]
        },
        headers=h,
    )
    assert again.json() == [{"id": third["id"], "success": True, "errors": [], "created": False}]

    retrieved = await client.get(
        f"{V}/composite/sobjects/Account",
        params={"ids": f"{ids[0]},{case_safe('0018c0000zzzzzz')}", "fields": "Id,Phone"},
        headers=h,
    )
    assert retrieved.json() == [
        {"attributes": {"type": "Account", "url": f"{V}/sobjects/Account/{ids[0]}"}, "Id": ids[0], "Phone": "1"},
        None,
    ]
    deleted = await client.delete(f"{V}/composite/sobjects", params={"ids": f"{ids[1]},{ids[2]},nonsense"}, headers=h)
    assert [r["success"] for r in deleted.json()] == [True, True, False]
    assert deleted.json()[2]["errors"][0]["statusCode"] == "MALFORMED_ID"


async def test_composite_references_and_all_or_none(
    client: httpx.AsyncClient, h: dict[str, str], receiver: Receiver, sf: Starlette
) -> None:
    await client.post(
        "/_sandbox/cdc/subscriptions", json={"url": "https://hub.example/cdc", "channel": "/data/ChangeEvents"}
    )
    request = {
        "allOrNone": False,
        "compositeRequest": [
            {
                "method": "POST",
                "url": f"{V}/sobjects/Account",
                "referenceId": "refAccount",
                "body": {"LastName": "Turing"},
            },
            {
                "method": "GET",
                "url": f"{V}/sobjects/Account/@{{refAccount.id}}?fields=PersonContactId",
                "referenceId": "refRead",
            },
            {
                "method": "POST",
                "url": f"{V}/sobjects/ServiceAppointment",
                "referenceId": "refAppt",
                "body": {
                    "ParentRecordId": "@{refAccount.id}",
                    "ContactId": "@{refRead.PersonContactId}",
                    "Subject": "Visit",
                },
            },
            {
                "method": "GET",
                "url": f"{V}/query?q=SELECT+Id,Subject+FROM+ServiceAppointment+WHERE+Id='@{{refAppt.id}}'",
                "referenceId": "refQuery",
            },
        ],
    }
    response = await client.post(f"{V}/composite", json=request, headers=h)
    assert response.status_code == 200
    results = response.json()["compositeResponse"]
    assert [r["referenceId"] for r in results] == ["refAccount", "refRead", "refAppt", "refQuery"]
    assert [r["httpStatusCode"] for r in results] == [201, 200, 201, 200]
    account_id = results[0]["body"]["id"]
    assert results[0]["httpHeaders"] == {"Location": f"{V}/sobjects/Account/{account_id}"}
    assert results[3]["body"]["records"][0]["Id"] == results[2]["body"]["id"]
    assert usage(response)[0] == 1  # the whole composite request is one API call

    count = (await soql(client, h, "SELECT COUNT() FROM Account")).json()["totalSize"]
    await sf.state.sandbox.sender.drain()
    delivered = len(receiver.requests)
    failing = {
        "allOrNone": True,
        "compositeRequest": [
            {"method": "POST", "url": f"{V}/sobjects/Account", "referenceId": "a1", "body": {"LastName": "Kept?"}},
            {
                "method": "PATCH",
                "url": f"{V}/sobjects/Account/@{{a1.id}}",
                "referenceId": "a2",
                "body": {"Phone": "123"},
            },
            {
                "method": "POST",
                "url": f"{V}/sobjects/Contact",
                "referenceId": "bad",
                "body": {"FirstName": "no last name"},
            },
            {"method": "POST", "url": f"{V}/sobjects/Account", "referenceId": "after", "body": {"LastName": "Never"}},
        ],
    }
    rolled = (await client.post(f"{V}/composite", json=failing, headers=h)).json()["compositeResponse"]
    halted = [
        {
            "errorCode": "PROCESSING_HALTED",
            "message": "The transaction was rolled back since another operation in the same transaction failed.",
        }
    ]
    assert [r["httpStatusCode"] for r in rolled] == [400, 400, 400, 400]
    assert rolled[0]["body"] == rolled[1]["body"] == rolled[3]["body"] == halted
    assert rolled[2]["body"][0]["errorCode"] == "REQUIRED_FIELD_MISSING"
    assert (await soql(client, h, "SELECT COUNT() FROM Account")).json()["totalSize"] == count
    await sf.state.sandbox.sender.drain()
    assert len(receiver.requests) == delivered  # nothing committed, nothing published

    dangling = {
        "compositeRequest": [
            {"method": "POST", "url": f"{V}/sobjects/Contact", "referenceId": "c1", "body": {}},
            {"method": "GET", "url": f"{V}/sobjects/Contact/@{{c1.id}}", "referenceId": "c2"},
            {
                "method": "POST",
                "url": f"{V}/sobjects/Contact",
                "referenceId": "c3",
                "body": {"LastName": "Independent"},
            },
        ]
    }
    outcome = (await client.post(f"{V}/composite/", json=dangling, headers=h)).json()["compositeResponse"]
    assert [r["httpStatusCode"] for r in outcome] == [400, 400, 201]
    assert outcome[1]["body"][0]["errorCode"] == "PROCESSING_HALTED"
    too_many = {
        "compositeRequest": [{"method": "GET", "url": f"{V}/limits", "referenceId": f"r{i}"} for i in range(26)]
    }
    assert (await client.post(f"{V}/composite", json=too_many, headers=h)).status_code == 400


# --- Change Data Capture ----------------------------------------------------------------------------------


async def test_change_events_carry_origin_and_changed_fields(
    client: httpx.AsyncClient, h: dict[str, str], receiver: Receiver, sf: Starlette, clock: FakeClock
) -> None:
    sb = sf.state.sandbox
    all_url, account_url = "https://hub.example/cdc/all", "https://hub.example/cdc/accounts"
    for url, channel in ((all_url, "/data/ChangeEvents"), (account_url, "/data/AccountChangeEvent")):
        added = await client.post(
            "/_sandbox/cdc/subscriptions", json={"url": url, "channel": channel, "headers": {"X-Hub-Key": "k"}}
        )
        assert added.status_code == 201
    bad = await client.post("/_sandbox/cdc/subscriptions", json={"url": all_url, "channel": "/data/NopeChangeEvent"})
    assert bad.status_code == 400

    ours = {**h, "Sforce-Call-Options": "client=concord-sync"}
    account_id = await create(
        client, h, "Account", {"FirstName": "Ada", "LastName": "Byron", "PersonMailingCity": "London"}, headers=ours
    )
    clock.advance(30)
    await client.patch(
        f"{V}/sobjects/Account/{account_id}", json={"FirstName": "Augusta", "PersonEmail": "a@example.com"}, headers=h
    )
    work_type = await create(client, h, "WorkType", {"Name": "Consult", "EstimatedDuration": 1}, headers=ours)
    clock.advance(30)
    ui = await client.patch(f"/_sandbox/records/Account/{account_id}", json={"Phone": "555-0199"})
    assert ui.status_code == 200 and ui.json()["LastModifiedDate"] == "2025-06-15T15:07:40.000+0000"
    await sb.sender.drain()

    account_events = sorted(receiver.events(account_url), key=lambda e: e["event"]["replayId"])
    assert [e["payload"]["ChangeEventHeader"]["changeType"] for e in account_events] == ["CREATE", "UPDATE", "UPDATE"]
    created, updated, by_ui = account_events
    user_id = next(iter(sb.orgs[sb.default_org_id].users))
    header = created["payload"]["ChangeEventHeader"]
    assert header["entityName"] == "Account" and header["recordIds"] == [account_id]
    assert header["changeOrigin"] == "com/salesforce/api/rest/60.0;client=concord-sync"
    assert (header["commitUser"], header["sequenceNumber"], header["changedFields"]) == (user_id, 1, [])
    assert header["commitTimestamp"] == 1_750_000_000_000 and re.fullmatch(r"[0-9a-f-]{36}", header["transactionKey"])
    payload = created["payload"]
    assert payload["Name"] == {"Salutation": None, "FirstName": "Ada", "LastName": "Byron"}
    assert (
        payload["PersonMailingAddress"]["City"] == "London"
        and payload["LastModifiedDate"] == "2025-06-15T15:06:40.000Z"
    )
    assert "Id" not in payload and "IsDeleted" not in payload and "SystemModstamp" not in payload
    assert created["schema"] and created["event"]["replayId"] == 1

    up = updated["payload"]
    assert up["ChangeEventHeader"]["changeOrigin"] == f"com/salesforce/api/rest/60.0;client={APP_NAME}"
    assert set(up["ChangeEventHeader"]["changedFields"]) == {"LastModifiedDate", "Name.FirstName", "PersonEmail"}
    assert up["Name"] == {"FirstName": "Augusta"} and up["PersonEmail"] == "a@example.com"
    assert (
        by_ui["payload"]["ChangeEventHeader"]["changeOrigin"] == "com/salesforce/api/soap/62.0;client=SfdcInternalAPI/"
    )
    assert set(by_ui["payload"]["ChangeEventHeader"]["changedFields"]) == {"LastModifiedDate", "Phone"}

    everything = sorted(receiver.events(all_url), key=lambda e: e["event"]["replayId"])
    assert [e["payload"]["ChangeEventHeader"]["entityName"] for e in everything] == [
        "Account",
        "Account",
        "WorkType",
        "Account",
    ]
    assert all(r.headers["X-Hub-Key"] == "k" for r in receiver.requests)

    await client.delete(f"{V}/sobjects/WorkType/{work_type}", headers=h)
    assert (await client.post(f"/_sandbox/records/WorkType/{work_type}/undelete")).status_code == 200
    await sb.sender.drain()
    ordered = sorted(receiver.events(all_url), key=lambda e: e["event"]["replayId"])
    kinds = [e["payload"]["ChangeEventHeader"]["changeType"] for e in ordered][-2:]
    assert kinds == ["DELETE", "UNDELETE"]

    replay = (
        await client.get("/_sandbox/cdc/events", params={"replayId": 2, "channel": "/data/AccountChangeEvent"})
    ).json()
    assert [e["event"]["replayId"] for e in replay["events"]] == [by_ui["event"]["replayId"]]
    assert replay["latestReplayId"] == 6
    clock.advance(73 * 3600)
    expired = await client.get("/_sandbox/cdc/events", params={"replayId": 2})
    assert expired.status_code == 200 and expired.json()["events"] == []  # older than 72 hours
    await client.post("/_sandbox/records/WorkType", json={"Name": "Later", "EstimatedDuration": 2})
    gap = await client.get("/_sandbox/cdc/events", params={"replayId": 2})
    assert gap.status_code == 410 and gap.json()["earliestReplayId"] == 7
    resumed = (await client.get("/_sandbox/cdc/events", params={"replayId": 6})).json()["events"]
    assert [e["event"]["replayId"] for e in resumed] == [7]


async def test_change_event_delivery_retries_duplicates_and_reorders(
    client: httpx.AsyncClient, h: dict[str, str], receiver: Receiver, sf: Starlette
) -> None:
    sb = sf.state.sandbox
    await client.post(
        "/_sandbox/cdc/subscriptions", json={"url": "https://hub.example/cdc", "channel": "/data/ContactChangeEvent"}
    )
    receiver.statuses = [503, 500]
    await create(client, h, "Contact", {"LastName": "Retry"})
    await sb.sender.drain()
    deliveries = (await client.get("/_sandbox/cdc/deliveries")).json()
    assert deliveries[0]["attempts"] == [503, 500, 200] and deliveries[0]["delivered"] is True
    receiver.requests.clear()

    await client.post("/_sandbox/faults", json={"webhook_duplicate_rate": 1.0, "webhook_out_of_order": True})
    batch = [{"attributes": {"type": "Contact"}, "LastName": f"C{i}"} for i in range(12)]
    results = (await client.post(f"{V}/composite/sobjects", json={"records": batch}, headers=h)).json()
    await sb.sender.drain()
    headers = receiver.headers()
    replay_ids = [e["event"]["replayId"] for e in receiver.events()]
    assert len(replay_ids) == 24 and sorted(set(replay_ids)) == list(range(2, 14))
    assert all(replay_ids.count(r) == 2 for r in set(replay_ids))
    assert replay_ids != sorted(replay_ids)
    assert {h_["transactionKey"] for h_ in headers} == {headers[0]["transactionKey"]}  # one transaction
    assert sorted({h_["sequenceNumber"] for h_ in headers}) == list(range(1, 13))
    assert {h_["recordIds"][0] for h_ in headers} == {r["id"] for r in results}


async def test_a_subscription_resumes_after_a_replay_id_then_gets_new_events(
    client: httpx.AsyncClient, receiver: Receiver, sf: Starlette
) -> None:
    """Pub/Sub's Subscribe presets: CUSTOM delivers the retained events after the replay id first,
    in order, then live ones; a replay id the bus no longer holds (72 h) or never gave is refused
    with Pub/Sub's error code and subscribes nothing."""
    sb = sf.state.sandbox
    live, resumed, earliest = "https://hub.example/live", "https://hub.example/resumed", "https://hub.example/all"

    async def subscribe(url: str, **start: Any) -> httpx.Response:
        return await client.post("/_sandbox/cdc/subscriptions", json={"url": url, **start})

    async def ui_contact(name: str) -> None:
        assert (await client.post("/_sandbox/records/Contact", json={"LastName": name})).status_code == 201

    first = (await subscribe(live)).json()
    assert (first["replay_preset"], first["replayed"]) == ("LATEST", 0)
    for name in ("Before1", "Before2"):
        await ui_contact(name)
    await sb.sender.drain()
    last_seen = receiver.events(live)[-1]["event"]["replayId"]
    assert (await client.delete(f"/_sandbox/cdc/subscriptions/{first['id']}")).status_code == 204
    for name in ("Missed1", "Missed2", "Missed3"):  # the subscriber is down
        await ui_contact(name)

    again = await subscribe(resumed, replay_preset="CUSTOM", replay_id=str(last_seen))
    assert again.status_code == 201 and again.json()["replayed"] == 3
    await ui_contact("After")
    await sb.sender.drain()
    names = [e["payload"]["Name"]["LastName"] for e in receiver.events(resumed)]
    assert names == ["Missed1", "Missed2", "Missed3", "After"]
    ids = [e["event"]["replayId"] for e in receiver.events(resumed)]
    assert ids == sorted(ids) and ids[0] == last_seen + 1
    assert (await subscribe(earliest, replay_preset="EARLIEST")).json()["replayed"] == 6

    for start, code in (
        ({"replay_preset": "CUSTOM"}, "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.validation.failed"),
        (
            {"replay_preset": "CUSTOM", "replay_id": ids[-1] + 50},
            "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted",
        ),
    ):
        refused = await subscribe(resumed, **start)
        assert refused.status_code == 400 and refused.json()["errorCode"] == code
        assert refused.json()["status"] == "INVALID_ARGUMENT"
    aged = (await client.post("/_sandbox/cdc/age", json={"seconds": 72 * 3600 + 1})).json()
    assert aged == {"dropped": 6, "retained": 0}
    expired = await subscribe(resumed, replay_preset="CUSTOM", replay_id=ids[-1])
    assert expired.status_code == 400
    assert expired.json()["errorCode"] == "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted"
    subscribed = (await client.get("/_sandbox/cdc/subscriptions")).json()
    assert len(subscribed) == 2  # resumed and earliest; nothing added by a refused start
    bad = await subscribe(resumed, replay_preset="NEWEST")
    assert bad.status_code == 400


# --- simple-salesforce over real HTTP ------------------------------------------------------------------------


@pytest.fixture
async def served(clock: FakeClock, receiver: Receiver) -> AsyncIterator[tuple[Starlette, str]]:
    app = create_app(make_settings(clock, receiver))
    server = await serve_asgi(app)
    try:
        yield app, server.url
    finally:
        await server.stop()


async def test_simple_salesforce_soap_login_crud_and_upsert(served: tuple[Starlette, str]) -> None:
    app, url = served
    session, adapter = loopback_session(url)

    def scenario() -> dict[str, Any]:
        sf = Salesforce(
            username=USERNAME, password=PASSWORD, security_token=SECURITY_TOKEN, session=session, version="60.0"
        )
        out: dict[str, Any] = {"instance": sf.sf_instance}
        created = sf.Account.create({"FirstName": "Katherine", "LastName": "Johnson", "Concord_Patient_Id__c": "kj-1"})
        out["created"] = created
        out["record"] = sf.Account.get(created["id"])
        out["update"] = sf.Account.update(created["id"], {"PersonEmail": "kj@example.com"})
        out["upsert_existing"] = sf.Account.upsert("Concord_Patient_Id__c/kj-1", {"PersonMobilePhone": "555-0142"})
        out["upsert_new"] = sf.Account.upsert("Concord_Patient_Id__c/kj-2", {"LastName": "Vaughan"})
        out["by_custom"] = sf.Account.get_by_custom_id("Concord_Patient_Id__c", "kj-1")
        for last in ("Dup1", "Dup2"):
            sf.Account.create({"LastName": last, "HealthCloudGA__SourceSystemId__c": "same"})
        try:
            sf.Account.get_by_custom_id("HealthCloudGA__SourceSystemId__c", "same")
        except SalesforceMoreThanOneRecord as exc:
            out["multiple"] = exc.status
        out["delete"] = sf.Account.delete(created["id"])
        try:
            sf.Account.get(created["id"])
        except SalesforceResourceNotFound as exc:
            out["after_delete"] = exc.content[0]["errorCode"]
        out["limits"] = sf.limits()["DailyApiRequests"]
        out["usage"] = sf.api_usage["api-usage"]
        # simple-salesforce logs in again on INVALID_SESSION_ID: the session expired under it.
        app.state.sandbox.expire_all_sessions()
        out["after_expiry"] = sf.query("SELECT COUNT() FROM Account")["totalSize"]
        try:
            Salesforce(username=USERNAME, password="wrong", security_token=SECURITY_TOKEN, session=session)
        except SalesforceAuthenticationFailed as exc:
            out["bad_login"] = exc.code
        return out

    out = await asyncio.to_thread(scenario)
    assert out["instance"] == "popahealth.my.salesforce.com"
    assert {"login.salesforce.com", "popahealth.my.salesforce.com"} <= set(adapter.hosts)
    assert out["created"]["success"] is True and out["record"]["Name"] == "Katherine Johnson"
    assert (out["update"], out["upsert_existing"], out["upsert_new"], out["delete"]) == (204, 200, 201, 204)
    assert out["by_custom"]["PersonMobilePhone"] == "555-0142" and out["by_custom"]["PersonEmail"] == "kj@example.com"
    assert out["multiple"] == 300 and out["after_delete"] == "ENTITY_IS_DELETED"
    used = len(app.state.sandbox.orgs[app.state.sandbox.default_org_id].api_calls)
    assert out["usage"].total == 100_000 and out["usage"].used == out["limits"]["Max"] - out["limits"]["Remaining"]
    assert out["usage"].used == used - 1 == 12  # 11 sObject calls and limits; then the query after re-login
    assert out["after_expiry"] == 3 and out["bad_login"] == "INVALID_LOGIN"


async def test_simple_salesforce_query_all_pages_and_collections(served: tuple[Starlette, str]) -> None:
    app, url = served
    session, _ = loopback_session(url)
    async with httpx.AsyncClient(base_url=url) as plain:
        assert (await plain.post("/_sandbox/seed", json={"future_per_patient": 6})).status_code == 201
        await plain.post("/_sandbox/stats/reset")

    def scenario() -> dict[str, Any]:
        sf = Salesforce(
            username=USERNAME, password=PASSWORD, security_token=SECURITY_TOKEN, session=session, version="60.0"
        )
        out: dict[str, Any] = {}
        rows = sf.query_all(
            "SELECT Id, SchedStartTime FROM ServiceAppointment", headers={"Sforce-Query-Options": "batchSize=200"}
        )
        out["total"], out["rows"] = rows["totalSize"], len({r["Id"] for r in rows["records"]})
        records = [{"attributes": {"type": "Contact"}, "LastName": f"Bulk{i}"} for i in range(200)]
        out["collection"] = sf.restful(
            "composite/sobjects", method="POST", json={"allOrNone": True, "records": records}
        )
        try:
            sf.restful("composite/sobjects", method="POST", json={"records": [*records, records[0]]})
        except SalesforceMalformedRequest as exc:
            out["too_many"] = exc.content[0]["errorCode"]
        try:
            sf.query("SELECT Id, Nope FROM Contact")
        except SalesforceMalformedRequest as exc:
            out["bad_field"] = exc.content[0]["errorCode"]
        out["contacts"] = sf.query("SELECT COUNT() FROM Contact WHERE LastName LIKE 'Bulk%'")["totalSize"]
        return out

    out = await asyncio.to_thread(scenario)
    assert out["total"] == out["rows"] > 2000
    stats = app.state.sandbox.stats.as_json()
    assert stats["GET /services/data/{version}/query/{locator}"] == math.ceil(out["total"] / 200) - 1
    assert len(out["collection"]) == 200 and all(r["success"] for r in out["collection"])
    assert (out["too_many"], out["bad_field"], out["contacts"]) == ("EXCEEDED_ID_LIMIT", "INVALID_FIELD", 200)


async def test_simple_salesforce_oauth_password_and_jwt_logins(served: tuple[Starlette, str], clock: FakeClock) -> None:
    app, url = served
    session, adapter = loopback_session(url)
    clock.now = time.time()  # simple-salesforce dates its JWT with the real clock
    async with httpx.AsyncClient(base_url=url) as plain:
        registered = await plain.post(
            "/_sandbox/connected-apps",
            json={"consumer_key": "jwt-app", "consumer_secret": "s", "jwt_public_key_pem": public_pem(rsa_key(0))},
        )
        assert registered.status_code == 201

    def scenario() -> tuple[int, int]:
        by_password = Salesforce(
            username=USERNAME,
            password=PASSWORD + SECURITY_TOKEN,
            consumer_key=KEY,
            consumer_secret=SECRET,
            session=session,
        )
        by_jwt = Salesforce(
            username=USERNAME, consumer_key="jwt-app", privatekey=private_pem(rsa_key(0)), session=session
        )
        return by_password.query("SELECT COUNT() FROM User")["totalSize"], by_jwt.query("SELECT COUNT() FROM User")[
            "totalSize"
        ]

    assert await asyncio.to_thread(scenario) == (1, 1)
    assert app.state.sandbox.stats.as_json()["POST /services/oauth2/token"] == 2


# --- the Postman collection's requests ---------------------------------------------------------------------


def postman(path: str) -> dict[str, Any]:
    return json.loads((POSTMAN / path).read_text(encoding="utf-8"))


async def test_postman_collection_requests_are_served(
    client: httpx.AsyncClient, h: dict[str, str], sf: Starlette, clock: FakeClock
) -> None:
    """The collection's own methods, paths, headers and form keys reach the sandbox's routes."""
    account_id = await create(client, h, "Account", {"LastName": "Postman", "Concord_Patient_Id__c": "pm-1"})
    clock.advance(120)
    values = {
        "{{url}}": "",
        "{{site}}": "",
        "{{_endpoint}}": "",
        "{{version}}": "60.0",
        "{{clientId}}": KEY,
        "{{clientSecret}}": SECRET,
        "{{username}}": USERNAME,
        "{{password}}": PASSWORD,
        "{{secretToken}}": SECURITY_TOKEN,
        "{{redirectUrl}}": REDIRECT,
        "<SOBJECT_API_NAME>": "Account",
        "<RECORD_ID>": account_id,
        "<FIELD_NAME>": "Concord_Patient_Id__c",
        "<FIELD_VALUE>": "pm-1",
    }

    def fill(text: str) -> str:
        for name, value in values.items():
            text = text.replace(name, value)
        return text

    async def send(
        path: str, *, body: Any = None, query: dict[str, str] | None = None, auth: bool = True
    ) -> httpx.Response:
        item = postman(path)
        headers = {
            k: fill(v)
            for k, v in (line.split(": ", 1) for line in (item["headers"] or "").splitlines() if ": " in line)
        }
        if auth:
            headers.update(h)
        url = fill(item["url"])
        params = query
        if query is not None:
            url = url.split("?", 1)[0]  # the collection's query string only names the parameters
        form = {d["key"]: fill(d["value"]) for d in item.get("data") or []}
        if item.get("dataMode") == "raw" and item.get("rawModeData") and body is None:
            content = fill(item["rawModeData"]).encode()
            return await client.request(item["method"], url, params=params, headers=headers, content=content)
        if form and body is None:
            if item.get("dataMode") == "params":  # Postman form-data: multipart
                return await client.request(
                    item["method"], url, params=params, headers=headers, files={k: (None, v) for k, v in form.items()}
                )
            return await client.request(item["method"], url, params=params, headers=headers, data=form)
        return await client.request(item["method"], url, params=params, headers=headers, json=body)

    assert (await send("auth/oauth_username_password.json", auth=False)).status_code == 200
    soap = await send("auth/soap_login.json", auth=False)
    assert (
        soap.status_code == 200
        and "<sessionId>" in soap.text
        and f"<serverUrl>{INSTANCE}/services/Soap/u/60.0/" in soap.text
    )
    authorize = await client.get(fill(postman("auth/web_server_flow_1.json")["url"]).replace(" ", "%20"))
    assert authorize.status_code == 302
    values["{{code}}"] = parse_qs(urlsplit(authorize.headers["location"]).query)["code"][0]
    item = postman("auth/web_server_flow_2.json")
    form = {d["key"]: fill(d["value"]) for d in item["data"]} | {"code": values["{{code}}"]}
    exchanged = await client.post(fill(item["url"]), files={k: (None, v) for k, v in form.items()})
    assert exchanged.status_code == 200 and "refresh_token" in exchanged.json()
    values["{{_refreshToken}}"] = exchanged.json()["refresh_token"]
    assert (await send("auth/refresh_token.json", auth=False)).status_code == 200
    jwt_error = await send("auth/jwt_bearer_token_flow.json", auth=False)  # the collection leaves the assertion empty
    assert jwt_error.json() == {"error": "invalid_grant", "error_description": "invalid assertion"}
    values["{{_accessToken}}"] = exchanged.json()["access_token"]
    assert (await send("auth/revoke_token.json", auth=False)).status_code == 200

    expectations = {
        "rest/versions.json": 200,
        "rest/resources_by_version.json": 200,
        "rest/limit.json": 200,
        "rest/query.json": 200,
        "rest/queryall.json": 200,
        "rest/describe_global.json": 200,
        "rest/sobject_basic_information.json": 200,
        "rest/sobject_describe.json": 200,
        "rest/sobject_rows.json": 200,
        "rest/sobject_rows_by_external_id.json": 200,
        "rest/sobject_create.json": 201,  # {"Name": "test"}: a business account
    }
    for path, status in expectations.items():
        response = await send(path)
        assert response.status_code == status, (path, response.text)
    assert (await send("rest/sobject_rows_update.json", body={"Phone": "555"})).status_code == 204
    window = {"start": "2025-06-15T15:00:00+00:00", "end": "2025-06-15T15:30:00+00:00"}
    assert account_id in (await send("rest/sobject_get_updated.json", query=window)).json()["ids"]
    assert (await send("rest/sobject_get_deleted.json", query=window)).status_code == 200
    collection = {"allOrNone": False, "records": [{"attributes": {"type": "Contact"}, "LastName": "PM"}]}
    assert (await send("composite/sobject_collections_create.json", body=collection)).status_code == 200
    created = (await send("composite/sobject_collections_create.json", body=collection)).json()[0]["id"]
    update = {"records": [{"attributes": {"type": "Account"}, "id": account_id, "Phone": "1"}]}
    assert (await send("composite/sobject_collections_update.json", body=update)).json()[0]["success"] is True
    retrieved = await send("composite/sobject_collections_retrieve.json", query={"ids": account_id, "fields": "Phone"})
    assert retrieved.json()[0]["Phone"] == "1"
    deleted = await send("composite/sobject_collections_delete.json", query={"ids": created, "allOrNone": "false"})
    assert deleted.json() == [{"id": created, "success": True, "errors": []}]
    composite = {"compositeRequest": [{"method": "GET", "url": f"{V}/limits", "referenceId": "limits"}]}
    assert (await send("composite/composite.json", body=composite)).json()["compositeResponse"][0][
        "httpStatusCode"
    ] == 200
    assert (await send("rest/sobject_rows_delete.json")).status_code == 204


async def test_stats_and_reset(client: httpx.AsyncClient, h: dict[str, str], sf: Starlette) -> None:
    await client.get(f"{V}/sobjects/Account/describe", headers=h)
    await client.get(f"{V}/sobjects/Contact/describe", headers=h)
    stats = (await client.get("/_sandbox/stats")).json()
    assert stats["GET /services/data/{version}/sobjects/{sobject}/describe"] == 2
    assert stats["POST /services/oauth2/token"] == 1
    await create(client, h, "Account", {"LastName": "Gone"})
    assert (await client.post("/_sandbox/reset")).status_code == 200
    assert (await client.get(f"{V}/limits", headers=h)).status_code == 401  # sessions are gone too
    fresh = {"Authorization": f"Bearer {(await password_login(client))['access_token']}"}
    assert (await soql(client, fresh, "SELECT COUNT() FROM Account")).json()["totalSize"] == 0
    assert (await client.get("/_sandbox/stats")).json() == {
        "GET /_sandbox/stats": 1,
        "GET /services/data/{version}/limits": 1,
        "GET /services/data/{version}/query": 1,
        "POST /services/oauth2/token": 1,
    }


async def test_a_ui_merge_deletes_the_duplicates_into_the_master(
    client: httpx.AsyncClient, h: dict[str, str], receiver: Receiver, sf: Starlette
) -> None:
    url = "https://hub.example/cdc/merge"
    subscribed = await client.post("/_sandbox/cdc/subscriptions", json={"url": url, "channel": "/data/ChangeEvents"})
    assert subscribed.status_code == 201
    master = await create(client, h, "Account", {"FirstName": "Ada", "LastName": "Byron"})
    duplicate = await create(client, h, "Account", {"FirstName": "Ada", "LastName": "Lovelace"})
    refused = await client.post(f"/_sandbox/records/Account/{master}/merge", json={"merge_ids": [master]})
    assert refused.status_code == 400 and refused.json()[0]["errorCode"] == "INVALID_OPERATION"
    merged = await client.post(f"/_sandbox/records/Account/{master}/merge", json={"merge_ids": [duplicate]})
    assert merged.status_code == 200 and merged.json()["Id"] == master

    assert (await client.get(f"{V}/sobjects/Account/{duplicate}", headers=h)).status_code == 404
    by_id = f"SELECT Id, IsDeleted, MasterRecordId FROM Account WHERE Id = '{duplicate}'"  # noqa: S608
    assert await records(client, h, by_id) == []
    [gone] = (await soql(client, h, by_id, resource="queryAll")).json()["records"]
    assert (gone["IsDeleted"], gone["MasterRecordId"]) == (True, master)

    await sf.state.sandbox.sender.drain()
    headers = [e["payload"]["ChangeEventHeader"] for e in receiver.events(url)][-2:]
    assert sorted((x["changeType"], x["recordIds"][0]) for x in headers) == sorted(
        [("DELETE", duplicate), ("UPDATE", master)]
    )
