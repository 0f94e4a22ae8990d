"""Salesforce's web server flow with PKCE through the gateway and the real stack: an admin's
browser follows /integrations/salesforce/authorize to the sandbox's consent, is sent back to the
gateway's callback, and the connection then reads the org; a replayed callback is refused."""

from __future__ import annotations

import base64
import time
from urllib.parse import parse_qs, urlsplit

import httpx

from services.demo import run_sync
from tests.gateway.conftest import assert_problem


async def test_web_server_flow_with_pkce_connects_through_the_gateway(stack) -> None:  # noqa: ANN001
    token = stack.gateway.issuer.mint("sf-admin", "sf-web-practice", "admin")
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=600) as http:
        assert (await http.post("/practice", json={"name": "Web Flow Clinic"}, headers=headers)).status_code == 201
        started = await http.get("/integrations/salesforce/authorize", headers=headers)
        assert started.status_code == 200, started.text
        url = urlsplit(started.json()["authorization_url"])
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        assert url.path == "/services/oauth2/authorize"
        assert query["response_type"] == "code" and query["state"] == started.json()["state"]
        # PKCE: an S256 challenge of a 43+ character verifier that never leaves the connection service.
        assert query["code_challenge_method"] == "S256"
        assert len(base64.urlsafe_b64decode(query["code_challenge"] + "=")) == 32
        assert query["redirect_uri"].endswith("/integrations/salesforce/callback")

        consent = await http.get(started.json()["authorization_url"], follow_redirects=False)
        assert consent.status_code == 302, consent.text
        back = consent.headers["location"]
        assert back.startswith(query["redirect_uri"] + "?")
        callback = await http.get(back)
        assert callback.status_code == 200, callback.text
        assert callback.json() == {"status": "connected", "config_id": started.json()["config_id"]}

        status = (await http.get("/integrations/salesforce/status", headers=headers)).json()
        assert status["connected"] is True and status["account_id"]
        # The token works against the org's instance: a patient a user made in Salesforce is pulled.
        made = await http.post(
            f"{stack.sandboxes['salesforce'].url}/_sandbox/records/Account",
            json={"FirstName": "Wren", "LastName": "Okafor", "PersonBirthdate": "1988-04-12"},
        )
        assert made.status_code < 300, made.text
        # Salesforce reads a change only once its SystemModstamp has settled (changes.py): pull until it lands.
        created, deadline = 0, time.monotonic() + 30
        while created == 0 and time.monotonic() < deadline:
            pulled = await run_sync(http, headers, "pull", vendor="salesforce")
            assert pulled["status"] == "succeeded" and pulled["vendor_requests"] >= 1, pulled
            created += pulled["records_created"]
        assert created == 1

        # The browser's back button: the same state and code again are refused, nothing changes.
        assert_problem(await http.get(back), 400)
        again = (await http.get("/integrations/salesforce/status", headers=headers)).json()
        assert again["connected"] is True
