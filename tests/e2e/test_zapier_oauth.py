"""Zapier authenticated by OAuth 2.0 with Concord as the authorization server (authorization code +
PKCE S256, consent by a one-time admin ticket), driven by the Zapier sandbox's oauth2 app definition
over real HTTP against the gateway and the real stack, each database backend."""

from __future__ import annotations

import base64
import hashlib
import secrets
from urllib.parse import parse_qs, urlsplit

import httpx

from libs.grpc_client import call, open_channel
from libs.protos.concord.audit.v1 import audit_pb2, audit_pb2_grpc
from services.dev_vendors import zapier_app
from tests.e2e.conftest import ok


def _admin(stack, practice_id: str) -> dict[str, str]:  # noqa: ANN001
    return {"Authorization": f"Bearer {stack.gateway.issuer.mint('admin-user', practice_id, 'admin')}"}


def _pkce() -> tuple[str, str]:
    verifier = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    return verifier, base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


async def _client(stack, http: httpx.AsyncClient, practice_id: str, app_id: str) -> tuple[dict, dict, str]:  # noqa: ANN001
    headers = _admin(stack, practice_id)
    assert (await http.post("/practice", json={"name": practice_id}, headers=headers)).status_code == 201
    redirect = f"{stack.sandboxes['zapier'].url}/dashboard/auth/oauth/return/{app_id}/"
    created = await http.post("/integrations/zapier/oauth/clients", json={"redirect_uri": redirect}, headers=headers)
    assert created.status_code == 201, created.text
    return created.json(), headers, redirect


async def _ticket(http: httpx.AsyncClient, headers: dict, client_id: str) -> str:
    answer = await http.post("/integrations/zapier/oauth/tickets", json={"client_id": client_id}, headers=headers)
    assert answer.status_code == 201, answer.text
    return answer.json()["ticket"]


async def _code(http: httpx.AsyncClient, headers: dict, client: dict, redirect: str, challenge: str) -> str:
    """A fresh consent ticket spent at the authorize endpoint as Zapier's browser would; the code."""
    ticket = await _ticket(http, headers, client["client_id"])
    answer = await http.get(
        "/zapier/oauth/authorize",
        params={
            "response_type": "code",
            "client_id": client["client_id"],
            "redirect_uri": redirect,
            "state": "s1",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "ticket": ticket,
        },
    )
    assert answer.status_code == 302, answer.text
    location = urlsplit(answer.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == redirect
    query = parse_qs(location.query)
    assert query["state"] == ["s1"]
    return query["code"][0]


def _form(client: dict, redirect: str, code_value: str, verifier: str) -> dict[str, str]:
    return {
        "grant_type": "authorization_code",
        "code": code_value,
        "client_id": client["client_id"],
        "client_secret": client["client_secret"],
        "redirect_uri": redirect,
        "code_verifier": verifier,
    }


async def test_zapier_connects_by_oauth_runs_actions_and_refreshes_after_expiry(stack) -> None:  # noqa: ANN001
    zapier = stack.sandboxes["zapier"].url
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=120) as http:
        client, headers, _ = await _client(stack, http, "zap-oauth", "app-oauth")
        ticket = await _ticket(http, headers, client["client_id"])
        definition = zapier_app("app-oauth", stack.gateway_url, "unused")
        definition["auth"] = {
            "type": "oauth2",
            "authorize_url": f"/zapier/oauth/authorize?ticket={ticket}",
            "token_url": "/zapier/oauth/token",
            "client_id": client["client_id"],
            "client_secret": client["client_secret"],
            "scopes": [],
            "pkce": True,
            "test": {"method": "GET", "path": "/zapier/me"},
        }
        assert (await http.post(f"{zapier}/_sandbox/apps", json=definition)).status_code == 201
        connected = await http.post(f"{zapier}/_sandbox/apps/app-oauth/connect", json={})
        assert connected.status_code == 200, connected.text
        zap = await http.post(f"{zapier}/_sandbox/zaps", json={"app_id": "app-oauth", "trigger": "patient_created"})
        assert zap.status_code == 201 and zap.json()["state"] == "on", zap.text
        zap_id = zap.json()["id"]
        patient = {"external_id": "oauth-1", "first_name": "Ada", "last_name": "Quill", "email": "ada@example.org"}
        run = await http.post(f"{zapier}/_sandbox/zaps/{zap_id}/actions/create_or_update_patient", json=patient)
        assert run.json()["ok"], run.text

        assert (await http.post(f"{zapier}/_sandbox/faults", json={"expire_all_tokens": True})).is_success
        again = await http.post(f"{zapier}/_sandbox/zaps/{zap_id}/actions/create_or_update_patient", json=patient)
        assert again.json()["ok"], again.text
        calls = (await http.get(f"{zapier}/_sandbox/calls")).json()
        calls = calls["calls"] if isinstance(calls, dict) else calls
        token_calls = [c for c in calls if c["path"] == "/zapier/oauth/token"]
        assert [c["status"] for c in token_calls] == [200, 200]  # the code exchange, then one refresh
        assert any(c["status"] == 401 for c in calls)  # the expired token was refused first

        listed = await http.get("/patients", params={"page_size": 50}, headers=headers)
        patients = listed.json()["patients"]
        assert len(patients) == 1  # the retried action matched by external id: no duplicate
        me = await http.get("/zapier/me", headers={"Authorization": "Bearer zat_" + "x" * 43})
        assert me.status_code == 401 and me.json()["reason"] == "INVALID_ACCESS_TOKEN"


async def test_a_reused_code_and_a_wrong_verifier_are_refused(stack) -> None:  # noqa: ANN001
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=120) as http:
        client, headers, redirect = await _client(stack, http, "zap-oauth-2", "app-oauth-2")

        async def code(challenge: str) -> str:
            return await _code(http, headers, client, redirect, challenge)

        def form(code_value: str, verifier: str) -> dict[str, str]:
            return _form(client, redirect, code_value, verifier)

        verifier, challenge = _pkce()
        wrong = await http.post("/zapier/oauth/token", data=form(await code(challenge), _pkce()[0]))
        assert wrong.status_code == 400 and wrong.json() == {"error": "invalid_grant"}

        good = await code(challenge)
        first = await http.post("/zapier/oauth/token", data=form(good, verifier))
        assert first.status_code == 200 and first.json()["token_type"] == "Bearer"
        assert first.headers["cache-control"] == "no-store"
        reused = await http.post("/zapier/oauth/token", data=form(good, verifier))
        assert reused.status_code == 400 and reused.json() == {"error": "invalid_grant"}
        bearer = {"Authorization": f"Bearer {first.json()['access_token']}"}
        assert (await http.get("/zapier/me", headers=bearer)).status_code == 401  # the replay ended the grant

        spent = await http.get(
            "/zapier/oauth/authorize",
            params={
                "response_type": "code",
                "client_id": client["client_id"],
                "redirect_uri": redirect,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
                "ticket": "ct_" + "y" * 43,
            },
        )
        assert spent.status_code == 302 and parse_qs(urlsplit(spent.headers["location"]).query)["error"] == [
            "access_denied"
        ]
        evil = await http.get(
            "/zapier/oauth/authorize",
            params={
                "response_type": "code",
                "client_id": client["client_id"],
                "redirect_uri": "https://evil.example/",
                "code_challenge": challenge,
                "code_challenge_method": "S256",
                "ticket": "ct_" + "y" * 43,
            },
        )
        assert evil.status_code == 400 and "location" not in evil.headers
        bad_client = await http.post("/zapier/oauth/token", data={**form(good, verifier), "client_secret": "nope"})
        assert bad_client.status_code == 401 and bad_client.json() == {"error": "invalid_client"}


async def test_an_admin_lists_and_revokes_single_grants_and_lists_keys(stack) -> None:  # noqa: ANN001
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=120) as http:
        client, headers, redirect = await _client(stack, http, "zap-grants", "app-grants")
        tokens = []
        for _ in range(2):
            verifier, challenge = _pkce()
            code = await _code(http, headers, client, redirect, challenge)
            tokens.append(ok(await http.post("/zapier/oauth/token", data=_form(client, redirect, code, verifier))))
        bearers = [{"Authorization": f"Bearer {t['access_token']}"} for t in tokens]
        assert (await http.get("/zapier/me", headers=bearers[0])).status_code == 200

        staff = {"Authorization": f"Bearer {stack.gateway.issuer.mint('staff-user', 'zap-grants', 'staff')}"}
        for call_as_staff in (
            http.get("/integrations/zapier/oauth/grants", headers=staff),
            http.delete("/integrations/zapier/oauth/grants/anything", headers=staff),
            http.get("/integrations/zapier/keys", headers=staff),
        ):
            forbidden = await call_as_staff
            assert forbidden.status_code == 403 and forbidden.json()["reason"] == "ROLE_FORBIDDEN"

        listed = await http.get("/integrations/zapier/oauth/grants", headers=headers)
        grants = ok(listed)["grants"]
        assert len(grants) == 2
        for value in (client["client_secret"], *(t[k] for t in tokens for k in ("access_token", "refresh_token"))):
            assert value not in listed.text
        assert {(g["client_id"], tuple(g["scopes"]), g["last_refreshed_at"]) for g in grants} == {
            (client["client_id"], ("zapier",), None)
        }
        assert all(g["created_at"] and g["expires_at"] for g in grants)
        (used,) = [g for g in grants if g["last_used_at"]]  # the first grant's token called /zapier/me

        # Another practice, with a Zapier config of its own: the grant is not there for it.
        other, other_headers, _ = await _client(stack, http, "zap-grants-other", "app-grants-other")
        assert ok(await http.get("/integrations/zapier/oauth/grants", headers=other_headers))["grants"] == []
        foreign = await http.delete(f"/integrations/zapier/oauth/grants/{used['id']}", headers=other_headers)
        assert foreign.status_code == 404 and foreign.json()["reason"] == "GRANT_NOT_FOUND"
        assert foreign.headers["content-type"].startswith("application/problem+json")
        assert (await http.get("/zapier/me", headers=bearers[0])).status_code == 200

        revoked = await http.delete(f"/integrations/zapier/oauth/grants/{used['id']}", headers=headers)
        assert revoked.status_code == 204, revoked.text
        refused = await http.get("/zapier/me", headers=bearers[0])
        assert refused.status_code == 401 and refused.json()["reason"] == "INVALID_ACCESS_TOKEN"
        assert (await http.get("/zapier/me", headers=bearers[1])).status_code == 200
        refresh = {
            "grant_type": "refresh_token",
            "client_id": client["client_id"],
            "client_secret": client["client_secret"],
        }
        dead = await http.post("/zapier/oauth/token", data={**refresh, "refresh_token": tokens[0]["refresh_token"]})
        assert dead.status_code == 400 and dead.json() == {"error": "invalid_grant"}
        alive = await http.post("/zapier/oauth/token", data={**refresh, "refresh_token": tokens[1]["refresh_token"]})
        assert alive.status_code == 200, alive.text
        (left,) = ok(await http.get("/integrations/zapier/oauth/grants", headers=headers))["grants"]
        assert left["id"] != used["id"] and left["last_refreshed_at"]
        again = await http.delete(f"/integrations/zapier/oauth/grants/{used['id']}", headers=headers)
        assert again.status_code == 404 and again.json()["reason"] == "GRANT_NOT_FOUND"

        key = ok(await http.post("/integrations/zapier/keys", json={"label": "zaps"}, headers=headers), 201)
        (fresh,) = ok(await http.get("/integrations/zapier/keys", headers=headers))["keys"]
        assert (fresh["id"], fresh["label"], fresh["last_used_at"]) == (key["key_id"], "zaps", None)
        assert (await http.get("/zapier/me", headers={"X-API-Key": key["api_key"]})).status_code == 200
        keys = await http.get("/integrations/zapier/keys", headers=headers)
        assert ok(keys)["keys"][0]["last_used_at"] and key["api_key"] not in keys.text
        assert ok(await http.get("/integrations/zapier/keys", headers=other_headers))["keys"] == []

    async with open_channel(stack.services["audit"].address) as channel:
        answer = await call(
            audit_pb2_grpc.AuditServiceStub(channel).Query,
            audit_pb2.QueryRequest(practice_id="zap-grants", action="credential.revoke"),
        )
    assert [(e.resource, e.user_id, e.integration_type) for e in answer.events] == [
        (f"IssuedOAuthGrant/{used['id']}", "admin-user", "zapier")
    ]
