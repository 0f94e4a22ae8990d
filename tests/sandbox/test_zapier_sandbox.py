"""The Zapier sandbox behaves towards an app as Zapier does: REST-hook subscribe/unsubscribe, catch
hooks answering 200/410/404, polling dedupe, actions with API keys and OAuth2 (PKCE, autoRefresh),
throttle retries, autoreplay, re-subscription after expiry, faults and limits.

`FakeConcord` stands in for Concord's Zapier endpoints (a later issue) over real HTTP."""

from __future__ import annotations

import base64
import email.utils
import hashlib
import itertools
import secrets
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from libs.asgi import RunningAsgi, serve_asgi
from sandbox.zapier import ZapierSandboxSettings, create_app
from tests.sandbox.support import FakeClock

API_KEY = "ck_test_5f2b"
CLIENT_ID, CLIENT_SECRET = "zapier-client", "zapier-secret"
T0 = 1_750_000_000.0


def _challenge(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


class FakeConcord:
    """An app's Zapier surface: API-key or OAuth2 (S256 PKCE, rotating refresh tokens) auth, REST-hook
    subscriptions it delivers to (dropping one on 410), a newest-first list and a create action.
    ``*_script`` lists hold scripted answers used before the normal behaviour."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.ids = itertools.count(1)
        self.subscriptions: dict[str, dict[str, Any]] = {}
        self.subscribe_requests: list[tuple[dict[str, str], Any]] = []
        self.unsubscribed: list[str] = []
        self.subscribe_script: list[tuple[int, dict[str, Any]]] = []
        self.unsubscribe_script: list[int] = []
        self.expires_in: float | None = None
        self.patients: list[dict[str, Any]] = []  # newest first
        self.list_override: Any = None
        self.action_script: list[tuple[int, dict[str, str]]] = []
        self.action_headers: list[dict[str, str]] = []
        self.codes: dict[str, dict[str, str]] = {}
        self.authorize_params: list[dict[str, str]] = []
        self.token_forms: list[dict[str, str]] = []
        self.access: set[str] = set()
        self.refresh: set[str] = set()
        self.app = Starlette(
            routes=[
                Route("/oauth/authorize", self.authorize, methods=["GET"]),
                Route("/oauth/token", self.token, methods=["POST"]),
                Route("/zapier/hooks", self.subscribe, methods=["POST"]),
                Route("/zapier/hooks/{hook_id}", self.unsubscribe, methods=["DELETE"]),
                Route("/zapier/patients", self.list_patients, methods=["GET"]),
                Route("/zapier/patients", self.create_patient, methods=["POST"]),
            ]
        )

    def authorized(self, request: Request) -> bool:
        if request.headers.get("x-api-key") == API_KEY:
            return True
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return scheme == "Bearer" and token in self.access

    async def authorize(self, request: Request) -> Response:
        q = dict(request.query_params)
        self.authorize_params.append(q)
        if q.get("client_id") != CLIENT_ID or q.get("response_type") != "code" or not q.get("state"):
            return JSONResponse({"error": "invalid_request"}, status_code=400)
        if q.get("code_challenge_method") != "S256" or not q.get("code_challenge"):
            return JSONResponse(
                {"error": "invalid_request", "error_description": "PKCE S256 required"}, status_code=400
            )
        code = secrets.token_hex(8)
        self.codes[code] = {"challenge": q["code_challenge"], "redirect_uri": q["redirect_uri"]}
        return RedirectResponse(
            f"{q['redirect_uri']}?{urlencode({'code': code, 'state': q['state']})}", status_code=302
        )

    def _issue(self) -> JSONResponse:
        access, refresh = secrets.token_hex(8), secrets.token_hex(8)
        self.access.add(access)
        self.refresh.add(refresh)
        return JSONResponse(
            {"access_token": access, "refresh_token": refresh, "token_type": "Bearer", "expires_in": 3600}
        )

    async def token(self, request: Request) -> Response:
        form = dict(parse_qsl((await request.body()).decode()))
        self.token_forms.append(form)
        invalid = JSONResponse({"error": "invalid_grant"}, status_code=400)
        if (form.get("client_id"), form.get("client_secret")) != (CLIENT_ID, CLIENT_SECRET):
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        if form.get("grant_type") == "authorization_code":
            grant = self.codes.pop(form.get("code", ""), None)
            if grant is None or grant["redirect_uri"] != form.get("redirect_uri"):
                return invalid
            if _challenge(form.get("code_verifier", "")) != grant["challenge"]:
                return invalid
            return self._issue()
        if form.get("grant_type") == "refresh_token" and form.get("refresh_token") in self.refresh:
            self.refresh.discard(form["refresh_token"])  # rotation
            return self._issue()
        return invalid

    async def subscribe(self, request: Request) -> Response:
        if not self.authorized(request):
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        body = await request.json()
        self.subscribe_requests.append((dict(request.headers), body))
        if self.subscribe_script:
            status, answer = self.subscribe_script.pop(0)
            return JSONResponse(answer, status_code=status)
        hook_id = f"sub_{next(self.ids)}"
        self.subscriptions[hook_id] = body
        answer = {"id": hook_id}
        if self.expires_in is not None:
            answer["expiration_date"] = datetime.fromtimestamp(self.clock.now + self.expires_in, UTC).isoformat()
        return JSONResponse(answer, status_code=201)

    async def unsubscribe(self, request: Request) -> Response:
        if not self.authorized(request):
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        if self.unsubscribe_script:
            return JSONResponse({"error": "unavailable"}, status_code=self.unsubscribe_script.pop(0))
        hook_id = request.path_params["hook_id"]
        self.unsubscribed.append(hook_id)
        return Response(status_code=204 if self.subscriptions.pop(hook_id, None) else 404)

    async def list_patients(self, request: Request) -> Response:
        if not self.authorized(request):
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        return JSONResponse(self.patients if self.list_override is None else self.list_override)

    async def create_patient(self, request: Request) -> Response:
        if not self.authorized(request):
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        self.action_headers.append(dict(request.headers))
        if self.action_script:
            status, headers = self.action_script.pop(0)
            if status != 201:
                return JSONResponse({"error": f"scripted {status}"}, status_code=status, headers=headers)
        patient = {"id": f"pat_{next(self.ids)}", **(await request.json())}
        self.patients.insert(0, patient)
        return JSONResponse(patient, status_code=201)

    async def emit(self, event: str, payload: Any) -> list[httpx.Response]:
        """Delivers to every subscription for the event; a 410 drops that subscription."""
        answers = []
        async with httpx.AsyncClient() as http:
            for hook_id, sub in list(self.subscriptions.items()):
                if sub.get("event") != event:
                    continue
                answer = await http.post(sub["target_url"], json=payload)
                if answer.status_code == 410:
                    del self.subscriptions[hook_id]
                answers.append(answer)
        return answers


HOOK_TRIGGER = {
    "key": "patient_created",
    "subscribe": {
        "method": "POST",
        "path": "/zapier/hooks",
        "body_template": {"target_url": "{{bundle.targetUrl}}", "event": "patient_created"},
    },
    "unsubscribe": {"method": "DELETE", "path_template": "/zapier/hooks/{id}"},
    "perform_list": {"method": "GET", "path": "/zapier/patients"},
}
POLL_TRIGGER = {"key": "new_patient", "perform_list": {"method": "GET", "path": "/zapier/patients"}}
ACTIONS = [{"key": "create_patient", "method": "POST", "path": "/zapier/patients"}]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
async def concord(clock: FakeClock) -> AsyncIterator[tuple[FakeConcord, str]]:
    fake = FakeConcord(clock)
    served: RunningAsgi = await serve_asgi(fake.app)
    yield fake, served.url
    await served.stop()


@pytest.fixture
async def zapier(clock: FakeClock) -> AsyncIterator[tuple[Starlette, httpx.AsyncClient]]:
    app = create_app(ZapierSandboxSettings(clock=clock, sleep=clock.sleep))
    served = await serve_asgi(app)
    async with httpx.AsyncClient(base_url=served.url) as http:
        yield app, http
    await app.state.sandbox.aclose()
    await served.stop()


@pytest.fixture
def fake(concord: tuple[FakeConcord, str]) -> FakeConcord:
    return concord[0]


@pytest.fixture
def http(zapier: tuple[Starlette, httpx.AsyncClient]) -> httpx.AsyncClient:
    return zapier[1]


def key_app(url: str, app_id: str = "concord-key") -> dict[str, Any]:
    auth = {"type": "api_key", "header": "X-API-Key", "key": API_KEY}
    return {
        "app_id": app_id,
        "base_url": url,
        "auth": auth,
        "triggers": [HOOK_TRIGGER, POLL_TRIGGER],
        "actions": ACTIONS,
    }


def oauth_app(url: str) -> dict[str, Any]:
    auth = {
        "type": "oauth2",
        "authorize_url": "/oauth/authorize",
        "token_url": f"{url}/oauth/token",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "scopes": ["patients:read", "patients:write"],
        "pkce": True,
    }
    return {"app_id": "concord-oauth", "base_url": url, "auth": auth, "triggers": [HOOK_TRIGGER], "actions": ACTIONS}


@pytest.fixture
async def key_zap(concord: tuple[FakeConcord, str], http: httpx.AsyncClient) -> dict[str, Any]:
    assert (await http.post("/_sandbox/apps", json=key_app(concord[1]))).status_code == 201
    created = await http.post("/_sandbox/zaps", json={"app_id": "concord-key", "trigger": "patient_created"})
    assert created.status_code == 201
    return created.json()


async def zap(http: httpx.AsyncClient, zap_id: int) -> dict[str, Any]:
    return (await http.get(f"/_sandbox/zaps/{zap_id}")).json()


# --- REST hooks ------------------------------------------------------------------------------------


async def test_zap_on_subscribes_and_catch_hook_records_deliveries(
    fake: FakeConcord, http: httpx.AsyncClient, key_zap: dict[str, Any]
) -> None:
    assert key_zap["state"] == "on"
    assert key_zap["target_url"].startswith(f"{str(http.base_url).rstrip('/')}/hooks/catch/{key_zap['id']}/")
    [(headers, body)] = fake.subscribe_requests
    assert body == {"target_url": key_zap["target_url"], "event": "patient_created"}
    assert headers["x-api-key"] == API_KEY and headers["user-agent"] == "Zapier"
    assert key_zap["subscribe_data"] == {"id": "sub_1"} and list(fake.subscriptions) == ["sub_1"]

    [one] = await fake.emit("patient_created", {"id": "p1", "first_name": "Ada"})
    assert one.status_code == 200
    answer = one.json()
    assert set(answer) == {"attempt", "id", "request_id", "status"} and answer["status"] == "success"
    assert uuid.UUID(answer["request_id"]).version == 4
    [batch] = await fake.emit("patient_created", [{"id": "p2"}, {"id": "p3"}])
    assert batch.status_code == 200

    deliveries = (await http.get(f"/_sandbox/zaps/{key_zap['id']}/deliveries")).json()
    assert [d["status"] for d in deliveries] == [200, 200]
    assert deliveries[0]["body"] == {"id": "p1", "first_name": "Ada"} and deliveries[0]["id"] == answer["request_id"]
    assert deliveries[0]["headers"]["content-type"] == "application/json" and deliveries[0]["at"] == T0
    assert len(deliveries[1]["run_ids"]) == 2
    runs = (await http.get(f"/_sandbox/zaps/{key_zap['id']}/runs")).json()
    assert [r["data"]["id"] for r in runs] == ["p1", "p2", "p3"]

    unknown = await http.post(f"/hooks/catch/{key_zap['id']}/nope00/", json={})
    assert unknown.status_code == 404
    assert (await http.post("/hooks/catch/999/abc/", json={})).status_code == 404


async def test_zap_off_unsubscribes_and_app_drops_subscription_on_410(
    fake: FakeConcord, http: httpx.AsyncClient, key_zap: dict[str, Any]
) -> None:
    zap_id = key_zap["id"]
    off = await http.post(f"/_sandbox/zaps/{zap_id}/off")
    assert off.json()["state"] == "off" and off.json()["subscribe_data"] is None
    assert fake.unsubscribed == ["sub_1"] and fake.subscriptions == {}
    late = await http.post(key_zap["target_url"], json={"id": "late"})
    assert late.status_code == 410

    again = await http.post(f"/_sandbox/zaps/{zap_id}/on")
    assert again.json()["state"] == "on" and again.json()["subscribe_data"] == {"id": "sub_2"}
    assert fake.subscriptions["sub_2"]["target_url"] == key_zap["target_url"]  # the Zap keeps its URL

    fake.unsubscribe_script = [503]  # the app misses the unsubscribe: Zapier deletes the Zap anyway
    deleted = await http.delete(f"/_sandbox/zaps/{zap_id}")
    assert deleted.json()["state"] == "deleted"
    assert [h for h in deleted.json()["history"] if h["op"] == "unsubscribe"][-1] == {
        "at": T0, "op": "unsubscribe", "ok": False, "status": 503, "error": "HTTP 503"
    }  # fmt: skip
    assert list(fake.subscriptions) == ["sub_2"]
    [gone] = await fake.emit("patient_created", {"id": "p9"})
    assert gone.status_code == 410 and fake.subscriptions == {}  # the app dropped it
    deliveries = (await http.get(f"/_sandbox/zaps/{zap_id}/deliveries")).json()
    assert [d["status"] for d in deliveries] == [410, 410] and all(d["run_ids"] == [] for d in deliveries)
    assert (await http.post(f"/_sandbox/zaps/{zap_id}/on")).status_code == 409


async def test_failed_subscribe_leaves_the_zap_off_with_the_error(
    concord: tuple[FakeConcord, str], http: httpx.AsyncClient
) -> None:
    fake, url = concord
    await http.post("/_sandbox/apps", json=key_app(url))
    fake.subscribe_script = [(200, {"id": "sub_x"}), (201, {"ok": True}), (500, {"error": "boom"})]
    errors = []
    for _ in range(3):
        created = await http.post("/_sandbox/zaps", json={"app_id": "concord-key", "trigger": "patient_created"})
        assert created.status_code == 201 and created.json()["state"] == "off"
        errors.append(created.json()["error"])
        assert created.json()["history"][-1]["ok"] is False
    assert errors == [
        "subscribe answered HTTP 200 instead of 201",
        "subscribe answered HTTP 201 without an id",
        "subscribe answered HTTP 500 instead of 201",
    ]
    target = created.json()["target_url"]
    assert (await http.post(target, json={"id": "x"})).status_code == 410
    assert (await http.post(f"/_sandbox/zaps/{created.json()['id']}/poll")).status_code == 409


async def test_expiration_date_makes_zapier_resubscribe(
    fake: FakeConcord, http: httpx.AsyncClient, concord: tuple[FakeConcord, str], clock: FakeClock
) -> None:
    fake.expires_in = 3600
    await http.post("/_sandbox/apps", json=key_app(concord[1]))
    created = (await http.post("/_sandbox/zaps", json={"app_id": "concord-key", "trigger": "patient_created"})).json()
    assert created["expires_at"] == T0 + 3600
    assert (await http.post("/_sandbox/tick")).json()["resubscribed"] == []

    clock.now += 3600
    assert (await http.post("/_sandbox/tick")).json()["resubscribed"] == [created["id"]]
    assert [body["target_url"] for _, body in fake.subscribe_requests] == [created["target_url"]] * 2
    renewed = await zap(http, created["id"])
    assert renewed["subscribe_data"]["id"] == "sub_2" and renewed["expires_at"] == clock.now + 3600
    assert renewed["history"][-1]["op"] == "resubscribe"

    fake.subscribe_script = [(500, {"error": "down"})]
    clock.now += 3600
    assert (await http.post("/_sandbox/tick")).json()["resubscribe_failed"] == [created["id"]]
    lapsed = await zap(http, created["id"])
    assert lapsed["state"] == "off" and lapsed["error"] == "resubscribe answered HTTP 500 instead of 201"


# --- polling --------------------------------------------------------------------------------------


async def test_polling_dedupes_by_id_like_zapier(
    concord: tuple[FakeConcord, str], http: httpx.AsyncClient, clock: FakeClock
) -> None:
    fake, url = concord
    fake.patients = [{"id": 3}, {"id": 2}, {"id": 1}]
    await http.post("/_sandbox/apps", json=key_app(url))
    created = (await http.post("/_sandbox/zaps", json={"app_id": "concord-key", "trigger": "new_patient"})).json()
    assert created["mode"] == "polling" and created["dedupe"] == {"seeded": True, "seen": 3}
    seeding = created["history"][-1]
    assert (seeding["op"], seeding["seeded"], seeding["triggered"]) == ("poll", True, [])

    fake.patients[:0] = [{"id": 5, "name": "e"}, {"id": 4}, {"id": 4}]
    polled = (await http.post(f"/_sandbox/zaps/{created['id']}/poll")).json()
    assert polled["ok"] and len(polled["triggered"]) == 2 and polled["held"] == 0
    runs = (await http.get(f"/_sandbox/zaps/{created['id']}/runs")).json()
    assert [(r["source"], r["data"]["id"]) for r in runs] == [("poll", 5), ("poll", 4)]
    assert (await http.post(f"/_sandbox/zaps/{created['id']}/poll")).json()["triggered"] == []

    fake.patients[:0] = [{"id": n} for n in range(1000, 1102)]
    burst = (await http.post(f"/_sandbox/zaps/{created['id']}/poll")).json()
    assert (len(burst["triggered"]), burst["held"]) == (100, 2)
    assert (await http.post(f"/_sandbox/zaps/{created['id']}/poll")).json()["triggered"] == []

    fake.list_override = {"patients": fake.patients}
    not_array = (await http.post(f"/_sandbox/zaps/{created['id']}/poll")).json()
    assert (not_array["ok"], not_array["error"]) == (False, "Results must be an array, got: dict")
    fake.list_override = [{"name": "no id"}]
    no_id = (await http.post(f"/_sandbox/zaps/{created['id']}/poll")).json()
    assert (no_id["ok"], no_id["error"]) == (False, 'Got a result missing the "id" property')

    fake.list_override = None
    fake.patients.insert(0, {"id": 7})
    clock.now += 900
    assert (await http.post("/_sandbox/tick")).json()["polled"] == [created["id"]]
    assert len((await http.get(f"/_sandbox/zaps/{created['id']}/runs")).json()) == 103

    off = (await http.post(f"/_sandbox/zaps/{created['id']}/off")).json()
    assert off["dedupe"] == {"seeded": False, "seen": 0}  # turning off clears the seen ids


# --- OAuth2 ---------------------------------------------------------------------------------------


async def test_oauth2_with_pkce_and_refresh_on_401(concord: tuple[FakeConcord, str], http: httpx.AsyncClient) -> None:
    fake, url = concord
    assert (await http.post("/_sandbox/apps", json=oauth_app(url))).status_code == 201
    early = (await http.post("/_sandbox/zaps", json={"app_id": "concord-oauth", "trigger": "patient_created"})).json()
    assert early["state"] == "off" and "not connected" in early["error"]

    connected = await http.post("/_sandbox/apps/concord-oauth/connect", json={})
    assert connected.status_code == 200 and connected.json()["connection"]["connected"] is True
    [params] = fake.authorize_params
    redirect = f"{str(http.base_url).rstrip('/')}/dashboard/auth/oauth/return/concord-oauth/"
    assert params["redirect_uri"] == redirect and params["scope"] == "patients:read patients:write"
    assert params["code_challenge_method"] == "S256" and len(params["state"]) >= 32
    [exchange] = fake.token_forms
    assert exchange["grant_type"] == "authorization_code" and exchange["client_secret"] == CLIENT_SECRET
    assert _challenge(exchange["code_verifier"]) == params["code_challenge"]

    on = (await http.post(f"/_sandbox/zaps/{early['id']}/on")).json()
    assert on["state"] == "on"
    assert fake.subscribe_requests[-1][0]["authorization"].startswith("Bearer ")

    await http.post("/_sandbox/faults", json={"expire_all_tokens": True})
    run = (await http.post(f"/_sandbox/zaps/{early['id']}/actions/create_patient", json={"first_name": "Ada"})).json()
    assert run["ok"] and run["result"]["first_name"] == "Ada" and len(run["attempts"]) == 1
    calls = [(c["purpose"], c["status"]) for c in (await http.get("/_sandbox/calls")).json()]
    assert calls[-3:] == [("action", 401), ("refresh", 200), ("action", 201)]
    refresh = fake.token_forms[-1]
    assert (refresh["grant_type"], refresh["client_id"], refresh["client_secret"]) == (
        "refresh_token", CLIENT_ID, CLIENT_SECRET
    )  # fmt: skip
    assert (await http.get("/_sandbox/apps/concord-oauth")).json()["connection"]["refreshes"] == 1

    fake.access.clear()
    fake.refresh.clear()  # the user revoked Zapier in the app
    denied = (await http.post(f"/_sandbox/zaps/{early['id']}/actions/create_patient", json={})).json()
    assert not denied["ok"] and denied["error"].startswith("authentication expired: refresh failed: HTTP 400")
    calls_before = len((await http.get("/_sandbox/calls")).json())
    unusable = (await http.post(f"/_sandbox/zaps/{early['id']}/actions/create_patient", json={})).json()
    assert "not usable" in unusable["error"] and len((await http.get("/_sandbox/calls")).json()) == calls_before


async def test_oauth2_browser_leg_through_the_redirect_page(
    concord: tuple[FakeConcord, str], http: httpx.AsyncClient
) -> None:
    fake, url = concord
    await http.post("/_sandbox/apps", json=oauth_app(url))
    started = await http.post("/_sandbox/apps/concord-oauth/connect", json={"follow": False})
    assert started.status_code == 202
    consent = await http.get(started.json()["authorize_url"])  # the user's browser, already logged in
    assert consent.status_code == 302
    back = urlsplit(consent.headers["location"])
    forged = dict(parse_qsl(back.query)) | {"state": "forged"}
    assert (await http.get(back.path, params=forged)).status_code == 400
    landed = await http.get(back.path, params=dict(parse_qsl(back.query)))
    assert landed.status_code == 200 and "connected" in landed.text
    assert (await http.get("/_sandbox/apps/concord-oauth")).json()["connection"]["connected"] is True
    replay = await http.get(back.path, params=dict(parse_qsl(back.query)))
    assert replay.status_code == 400  # the flow is over; a replayed redirect is refused


# --- actions --------------------------------------------------------------------------------------


async def test_actions_with_api_key_throttling_and_autoreplay(
    fake: FakeConcord, http: httpx.AsyncClient, key_zap: dict[str, Any], clock: FakeClock
) -> None:
    action = f"/_sandbox/zaps/{key_zap['id']}/actions/create_patient"
    done = (await http.post(action, json={"first_name": "Grace"})).json()
    assert done["ok"] and done["result"]["first_name"] == "Grace"
    assert fake.action_headers[-1]["x-api-key"] == API_KEY

    http_date = email.utils.formatdate(clock.now + 42, usegmt=True)
    fake.action_script = [
        (429, {"Retry-After": "7"}),
        (429, {}),
        (429, {"Retry-After": "1000"}),
        (429, {"Retry-After": http_date}),
    ]
    throttled = (await http.post(action, json={"first_name": "Lin"})).json()
    assert throttled["ok"] and [a["status"] for a in throttled["attempts"]] == [429, 429, 429, 429, 201]
    assert clock.sleeps == [7, 60, 300, 0]  # the HTTP date had passed after the 367 s waited

    clock.sleeps.clear()
    fake.action_script = [(400, {})]
    bad = (await http.post(action, json={"first_name": ""})).json()
    assert (bad["ok"], bad["error"], bad["response"], len(bad["attempts"])) == (
        False,
        "HTTP 400",
        {"error": "scripted 400"},
        1,
    )
    assert clock.sleeps == []

    fake.action_script = [(500, {}), (503, {})]
    replayed = (await http.post(action, json={"first_name": "Ida"})).json()
    assert replayed["ok"] and [a["status"] for a in replayed["attempts"]] == [500, 503, 201]
    assert clock.sleeps == [300, 1800]

    no_replay = (
        await http.post(
            "/_sandbox/zaps", json={"app_id": "concord-key", "trigger": "patient_created", "autoreplay": False}
        )
    ).json()
    fake.action_script = [(502, {})]
    failed = (await http.post(f"/_sandbox/zaps/{no_replay['id']}/actions/create_patient", json={})).json()
    assert (failed["ok"], failed["error"], len(failed["attempts"])) == (False, "HTTP 502", 1)
    assert (await http.post(f"/_sandbox/zaps/{key_zap['id']}/actions/nope", json={})).status_code == 404

    seeded = await http.post("/_sandbox/seed", json={"zap_id": key_zap["id"], "action": "create_patient", "count": 3})
    assert seeded.status_code == 201 and seeded.json()["succeeded"] == 3
    assert all(p["first_name"] and p["birth_date"] and p["external_id"] for p in fake.patients[:3])


# --- faults, limits, stats, reset -----------------------------------------------------------------


async def test_catch_hook_faults_limits_stats_and_reset(
    fake: FakeConcord, http: httpx.AsyncClient, key_zap: dict[str, Any], clock: FakeClock
) -> None:
    target = key_zap["target_url"]
    await http.post("/_sandbox/faults", json={"outage_until": T0 + 60})
    outage = await http.post(target, json={"id": 1})
    assert outage.status_code == 503 and outage.headers["content-type"].startswith("text/html")
    await http.post("/_sandbox/faults", json={"outage_until": None, "rate_limit_storm": 1})
    storm = await http.post(target, json={"id": 1})
    assert (storm.status_code, storm.headers["retry-after"]) == (429, "60")
    await http.post("/_sandbox/faults", json={"status_5xx_rate": 1.0})
    assert (await http.post(target, json={"id": 1})).status_code == 500
    await http.delete("/_sandbox/faults")
    assert (await http.get(f"/_sandbox/zaps/{key_zap['id']}/deliveries")).json() == []  # Zapier never saw them

    statuses = [(await http.post(target, json={"id": n})).status_code for n in range(31)]
    assert statuses == [200] * 30 + [429]
    clock.now += 1
    assert (await http.post(target, json={"id": 31})).status_code == 200
    big = await http.post(
        target, content=b'"' + b"x" * (10 * 1024 * 1024) + b'"', headers={"content-type": "application/json"}
    )
    assert big.status_code == 413

    stats = (await http.get("/_sandbox/stats")).json()
    assert stats["POST /hooks/catch/{zap_id}/{token}/"] == 36

    paused = await http.delete(target)  # an app may turn a Zap off by DELETE on its target URL
    assert paused.status_code == 200 and fake.unsubscribed == ["sub_1"]
    assert (await zap(http, key_zap["id"]))["state"] == "off"

    assert (await http.post("/_sandbox/reset")).status_code == 200
    assert (await http.post(target, json={"id": 1})).status_code == 404
    assert (await http.get("/_sandbox/zaps")).json() == [] and (await http.get("/_sandbox/apps")).json() == []
    assert (await http.get("/_sandbox/stats")).json() == {
        "GET /_sandbox/apps": 1, "GET /_sandbox/stats": 1, "GET /_sandbox/zaps": 1, "POST /hooks/catch/{zap_id}/{token}/": 1
    }  # fmt: skip


async def test_app_definition_is_validated(http: httpx.AsyncClient) -> None:
    bad = {
        "app_id": "x",
        "base_url": "http://127.0.0.1:9",
        "auth": {"type": "api_key", "key": "k"},
        "triggers": [{"key": "t", "subscribe": {"path": "/hooks"}}],
    }
    answer = await http.post("/_sandbox/apps", json=bad)
    assert answer.status_code == 400 and "needs both subscribe and unsubscribe" in answer.json()["error"]
    unknown = await http.post("/_sandbox/apps", json={**bad, "triggers": [], "extra": 1})
    assert unknown.status_code == 400 and "extra" in unknown.json()["error"]
    oauth = {**bad, "triggers": [], "auth": {"type": "oauth2", "authorize_url": "/a"}}
    assert "missing" in (await http.post("/_sandbox/apps", json=oauth)).json()["error"]
