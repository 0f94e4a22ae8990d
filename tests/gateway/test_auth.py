"""Bearer JWT refusals (401 with WWW-Authenticate: Bearer) and role refusals (403)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable

import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from services.gateway.auth import DevIssuer
from tests.gateway.conftest import Client, assert_problem


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(issuer: DevIssuer, **changes: object) -> dict:
    now = int(time.time())
    claims = {
        "iss": issuer.issuer,
        "aud": issuer.audience,
        "sub": "mallory",
        "practice_id": "p-target",
        "role": "admin",
        "iat": now,
        "exp": now + 600,
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def _signed(issuer: DevIssuer, key: RSAKey | None = None, **changes: object) -> str:
    key = key or issuer.key
    return jwt.encode({"alg": "RS256", "kid": key.kid}, _claims(issuer, **changes), key)


def _alg_none(issuer: DevIssuer) -> str:
    header = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{header}.{_b64(json.dumps(_claims(issuer)).encode())}."


def _hs256_with_public_key(issuer: DevIssuer) -> str:
    # The classic key-confusion forgery: HMAC keyed with the issuer's public key.
    signing = f"{_b64(json.dumps({'alg': 'HS256', 'kid': issuer.key.kid}).encode())}.{_b64(json.dumps(_claims(issuer)).encode())}"
    mac = hmac.new(issuer.key.as_pem(private=False), signing.encode(), hashlib.sha256).digest()
    return f"{signing}.{_b64(mac)}"


def _other_key(kid: str | None) -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": kid} if kid else None, private=True)


FORGERIES: dict[str, Callable[[DevIssuer], str]] = {
    "expired": lambda i: _signed(i, exp=int(time.time()) - 120, iat=int(time.time()) - 900),
    "wrong audience": lambda i: _signed(i, aud="someone-else"),
    "wrong issuer": lambda i: _signed(i, iss="https://evil.example"),
    "alg none": _alg_none,
    "another RSA key, same kid": lambda i: _signed(i, key=_other_key(i.key.kid)),
    "another RSA key, own kid": lambda i: _signed(i, key=_other_key("attacker")),
    "HS256 keyed with the public key": _hs256_with_public_key,
    "no role": lambda i: _signed(i, role=None),
    "unknown role": lambda i: _signed(i, role="superuser"),
    "no practice": lambda i: _signed(i, practice_id=None),
    "no subject": lambda i: _signed(i, sub=None),
    "not before in the future": lambda i: _signed(i, nbf=int(time.time()) + 3600),
    "garbage": lambda i: "not.a.jwt",
}


@pytest.mark.parametrize("forgery", sorted(FORGERIES))
async def test_invalid_tokens_are_refused_with_401(client: Client, forgery: str) -> None:
    token = FORGERIES[forgery](client.stack.gateway.issuer)  # type: ignore[union-attr]
    response = await client.http.get("/patients", headers={"Authorization": f"Bearer {token}"})
    body = assert_problem(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"
    assert body["reason"] in ("INVALID_TOKEN", "INVALID_TOKEN_CLAIMS")
    assert token not in response.text


@pytest.mark.parametrize("authorization", [None, "", "Bearer", "Basic YWRtaW46YWRtaW4=", "Token abc"])
async def test_a_missing_bearer_token_is_refused_with_401(client: Client, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = await client.http.get("/integrations/hl/status", headers=headers)
    assert_problem(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"


async def test_authentication_comes_before_body_validation(client: Client) -> None:
    # Without a valid token a caller learns nothing, not even what the body should look like.
    forged = _alg_none(client.stack.gateway.issuer)  # type: ignore[union-attr]
    for headers in ({}, {"Authorization": f"Bearer {forged}"}):
        response = await client.http.post(
            "/patients", content=b"{not json", headers={**headers, "Content-Type": "application/json"}
        )
        assert_problem(response, 401)
        response = await client.http.post("/practice", json={"name": 42}, headers=headers)
        assert_problem(response, 401)


ADMIN_ONLY = [
    ("POST", "/practice", {"name": "Staff Clinic"}),
    ("GET", "/integrations/hl/authorize", None),
    ("POST", "/integrations/hl/disconnect", None),
    ("POST", "/integrations/hl/patients/sync-settings", {"active": False}),
    ("GET", "/audit/verify", None),
]


@pytest.mark.parametrize("role", ["staff", "provider"])
async def test_non_admins_are_refused_admin_endpoints_with_403(client: Client, role: str) -> None:
    for method, path, body in ADMIN_ONLY:
        response = await client.http.request(method, path, json=body, headers=client.headers(role))
        assert_problem(response, 403, reason="ROLE_FORBIDDEN")
    # The refused POST /practice wrote nothing: the admin can still create the practice.
    created = await client.http.post("/practice", json={"name": "Admin Clinic"}, headers=client.headers("admin"))
    assert created.status_code == 201, created.text


async def test_staff_may_read_but_not_start_a_sync(client: Client) -> None:
    staff = client.headers("staff")
    assert (await client.http.get("/patients", headers=staff)).status_code == 200
    response = await client.http.post("/integrations/hl/patients/sync", json={}, headers=staff)
    assert_problem(response, 403, reason="ROLE_FORBIDDEN")
