"""The Zenoti sandbox behaves like Zenoti on auth, guests, bookings, catalog, rate limits and webhooks."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import jsonschema
import pytest
from starlette.applications import Starlette

from sandbox.zenoti import OrgConfig, WebhookConfig, ZenotiSandboxSettings, create_app
from tests.sandbox import zenoti_docs as docs
from tests.sandbox.support import FakeClock

T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC).timestamp()  # Monday 10:00 in Boston
HOOK, SECRET = "https://hub.example/zenoti", "hook-secret"
OTHER_KEY = "other-org-api-key"
DENIED = {"Message": "Authorization has been denied for this request."}
ACCOUNT = OrgConfig.account_name
USER, PASSWORD = "frontdesk", "Front-desk-2024"


class Receiver:
    """Webhook endpoint behind an httpx.MockTransport; ``statuses`` are answered in turn, then 200."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.statuses: list[int] = []
        self.gate: asyncio.Event | None = None

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.gate is not None:
            await self.gate.wait()
        self.requests.append(request)
        if request.url.host == "down.example":
            return httpx.Response(500)
        return httpx.Response(self.statuses.pop(0) if self.statuses else 200)

    def events(self, host: str = "hub.example") -> list[dict[str, Any]]:
        return [json.loads(r.content) for r in self.requests if r.url.host == host]


def valid(instance: Any, example: Any) -> None:
    jsonschema.validate(instance, docs.schema_from_example(example))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def receiver() -> Receiver:
    return Receiver()


@pytest.fixture
def zen(clock: FakeClock, receiver: Receiver) -> Starlette:
    return create_app(
        ZenotiSandboxSettings(
            clock=clock,
            webhook_transport=httpx.MockTransport(receiver),
            webhook_retry_delays=(0.0,) * 5,
            orgs=[OrgConfig(), OrgConfig(account_name="otherspa", api_key=OTHER_KEY, seed=False)],
            webhooks=[WebhookConfig(HOOK, secret=SECRET)],
        )
    )


@pytest.fixture
async def client(zen: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=zen), base_url="https://api.zenoti.test") as c:
        yield c


@pytest.fixture
async def org(client: httpx.AsyncClient) -> dict[str, Any]:
    return (await client.get("/_sandbox/orgs")).json()[0]


@pytest.fixture
def key(org: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"apikey {org['api_key']}"}


def center_id(org: dict[str, Any], code: str = "BOS") -> str:
    return next(c["id"] for c in org["centers"] if c["code"] == code)


def new_guest(center: str, **overrides: Any) -> dict[str, Any]:
    body = {
        "center_id": center,
        "personal_info": {
            "first_name": "Rosa",
            "last_name": "Deo",
            "middle_name": "Ann",
            "email": "rosa.deo@example.org",
            "mobile_phone": {"country_code": 225, "number": "(617) 555-0134"},
            "gender": 0,
            "date_of_birth": "1990-09-25",
        },
        "address_info": {
            "address_1": "1 Main St",
            "city": "Boston",
            "state_id": 22,
            "zip_code": "02116",
            "country_id": 225,
        },
        "preferences": {"receive_transactional_email": True, "receive_marketing_sms": True},
        "tags": ["VIP"],
    }
    body.update(overrides)
    return body


async def login(client: httpx.AsyncClient, **extra: Any) -> httpx.Response:
    body = {
        "account_name": ACCOUNT,
        "user_name": USER,
        "password": PASSWORD,
        "grant_type": "password",
        "app_id": OrgConfig.app_id.lower(),
        "app_secret": OrgConfig.app_secret,
        "device_id": "test-device",
        **extra,
    }
    return await client.post("/v1/tokens", json=body)


def local_tomorrow(tz: str = "America/New_York") -> str:
    return (datetime.fromtimestamp(T0, ZoneInfo(tz)) + timedelta(days=1)).date().isoformat()


# --- authentication --------------------------------------------------------------------------------


async def test_api_key_auth_and_401_shapes(client: httpx.AsyncClient, org: dict[str, Any], key: dict) -> None:
    ok = await client.get("/v1/centers", headers=key)
    assert ok.status_code == 200 and {c["code"] for c in ok.json()["centers"]} == {"BOS", "CHI"}
    assert (await client.get("/v1/centers", headers={"Authorization": f"APIKEY {org['api_key']}"})).status_code == 200

    for headers in ({}, {"Authorization": "apikey wrong"}, {"Authorization": f"Basic {org['api_key']}"}):
        denied = await client.get("/v1/centers", headers=headers)
        assert (denied.status_code, denied.json()) == (401, DENIED)
        assert "RateLimit-Remaining" not in denied.headers

    rotated = (await client.post(f"/_sandbox/orgs/{ACCOUNT}/api-key")).json()["api_key"]
    assert (await client.get("/v1/centers", headers=key)).json() == DENIED
    assert (await client.get("/v1/centers", headers={"Authorization": f"apikey {rotated}"})).status_code == 200


async def test_token_flow_expiry_refresh_and_revoke(client: httpx.AsyncClient, clock: FakeClock) -> None:
    issued = await login(client)
    assert issued.status_code == 200
    valid(issued.json(), docs.TOKEN)
    creds = issued.json()["credentials"]
    assert (creds["token_type"], creds["user_type"], issued.json()["error"]) == ("bearer", "Employee", None)
    assert creds["access_token_expiry"] == "2026-03-03T15:00:00.0000000Z"
    assert creds["refresh_token_expiry"] == "2026-05-31T15:00:00.0000000Z"
    bearer = {"Authorization": f"bearer {creds['access_token']}"}
    assert (await client.get("/v1/centers", headers=bearer)).status_code == 200

    clock.now += 86_400
    assert (await client.get("/v1/centers", headers=bearer)).json() == DENIED
    refreshed = await client.post(
        "/v1/tokens", json={"grant_type": "refresh_token", "refresh_token": creds["refresh_token"]}
    )
    assert refreshed.status_code == 200
    new = refreshed.json()["credentials"]
    assert new["token_id"] == creds["token_id"] and new["access_token"] != creds["access_token"]
    stale = await client.post(
        "/v1/tokens", json={"grant_type": "refresh_token", "refresh_token": creds["refresh_token"]}
    )
    assert stale.status_code == 401 and stale.json()["error"]["message"] == "Invalid refresh token."
    bearer = {"Authorization": f"Bearer {new['access_token']}"}
    assert (await client.get("/v1/centers", headers=bearer)).status_code == 200

    revoked = await client.delete("/v1/tokens/sessions/revoke", headers=bearer)
    assert (revoked.status_code, revoked.json()) == (200, True)
    assert (await client.get("/v1/centers", headers=bearer)).json() == DENIED
    again = await client.post("/v1/tokens", json={"grant_type": "refresh_token", "refresh_token": new["refresh_token"]})
    assert again.status_code == 401


async def test_token_rejections_and_token_faults(client: httpx.AsyncClient, key: dict) -> None:
    wrong = await login(client, password="nope")
    assert wrong.status_code == 401
    assert wrong.json() == {
        "credentials": None,
        "login_policy_evaluation": None,
        "error": {"code": 401, "message": "Invalid user name or password."},
    }
    assert (await login(client, app_secret="nope")).status_code == 401
    assert (await login(client, account_name="nobody")).status_code == 400
    assert (await login(client, grant_type="client_credentials")).json()["error"][
        "message"
    ] == "Unsupported grant type."
    assert (await client.post("/v1/tokens", content=b"user=x")).status_code == 400
    apikey_revoke = await client.delete("/v1/tokens/sessions/revoke", headers=key)
    assert apikey_revoke.status_code == 400

    creds = (await login(client)).json()["credentials"]
    bearer = {"Authorization": f"bearer {creds['access_token']}"}
    await client.post("/_sandbox/faults", json={"expire_all_tokens": True})
    assert (await client.get("/v1/centers", headers=bearer)).status_code == 401
    assert (await client.get("/v1/centers", headers=key)).status_code == 200  # API keys do not expire
    refresh = {"grant_type": "refresh_token", "refresh_token": creds["refresh_token"]}
    renewed = await client.post("/v1/tokens", json=refresh)
    assert renewed.status_code == 200
    await client.post("/_sandbox/faults", json={"revoke_tokens": True})
    refresh["refresh_token"] = renewed.json()["credentials"]["refresh_token"]
    assert (await client.post("/v1/tokens", json=refresh)).status_code == 401


# --- guests ----------------------------------------------------------------------------------------


async def test_guest_create_get_and_full_replace(client: httpx.AsyncClient, org: dict, key: dict) -> None:
    center = center_id(org)
    created = await client.post("/v1/guests", json=new_guest(center, unknown_field=1), headers=key)
    assert created.status_code == 200, created.text
    guest = created.json()
    valid(guest, docs.GUEST)
    info = guest["personal_info"]
    assert info["mobile_phone"] == {"country_code": 225, "number": "6175550134"}
    assert (info["date_of_birth"], info["anniversary_date"]) == ("1990-09-25T00:00:00", "0001-01-01T00:00:00")
    assert guest["address_info"]["state_id"] == 22 and guest["preferences"]["receive_marketing_sms"] is True
    assert "unknown_field" not in guest

    fetched = await client.get(f"/v1/guests/{guest['id'].upper()}", params={"expand": "preferences"}, headers=key)
    assert fetched.json() == guest
    changed = await client.get(
        "/v1/guests", params={"center_id": center, "last_updated": "2026-03-02T14:59:00"}, headers=key
    )
    assert [g["id"] for g in changed.json()["guests"]] == [guest["id"]] and changed.json()["page_info"]["total"] == 1
    everyone = await client.get("/v1/guests", params={"center_id": center, "size": 100}, headers=key)
    assert everyone.json()["page_info"]["total"] == 31  # 30 seeded guests of this center and the new one

    # PUT is a full replace: everything the body leaves out is cleared, not kept.
    replaced = await client.put(
        f"/v1/guests/{guest['id']}",
        json={"personal_info": {"first_name": "Rosa", "last_name": "Deo-Lee", "email": "rosa.deo@example.org"}},
        headers=key,
    )
    assert replaced.status_code == 200
    after = replaced.json()
    assert after["personal_info"]["last_name"] == "Deo-Lee" and after["center_id"] == center
    assert after["personal_info"]["mobile_phone"] is None and after["personal_info"]["middle_name"] == ""
    assert after["personal_info"]["date_of_birth"] == "0001-01-01T00:00:00"
    assert after["address_info"] == docs.GUEST["address_info"]
    assert after["preferences"]["receive_transactional_email"] is False and after["tags"] is None
    assert (await client.get(f"/v1/guests/{guest['id']}", headers=key)).json() == after

    # Sending back everything from GET with one change keeps the rest.
    full = {**after, "personal_info": {**after["personal_info"], "middle_name": "B"}}
    assert (await client.put(f"/v1/guests/{guest['id']}", json=full, headers=key)).json() == {
        **after,
        "personal_info": {**after["personal_info"], "middle_name": "B"},
    }


async def test_guest_errors(client: httpx.AsyncClient, org: dict, key: dict) -> None:
    center = center_id(org)
    missing = await client.get("/v1/guests/00000000-0000-4000-8000-000000000000", headers=key)
    assert (missing.status_code, missing.json()) == (404, {"error": {"code": 404, "message": "Guest not found."}})
    assert (await client.get("/v1/guests/not-a-guid", headers=key)).status_code == 400
    cases = [
        ({**new_guest(center), "personal_info": {"first_name": "A"}}, "last_name is required."),
        (new_guest(center, personal_info={"first_name": "A", "last_name": "B", "email": "x@"}), "Invalid email."),
        (new_guest(center, personal_info={"first_name": "A", "last_name": "B", "gender": "male"}), "Invalid gender."),
        (new_guest("11111111-1111-4111-8111-111111111111"), "Center not found."),
    ]
    for body, message in cases:
        response = await client.post("/v1/guests", json=body, headers=key)
        assert response.json()["error"]["message"] == message, body
        assert response.status_code in (400, 404)
    assert (await client.post("/v1/guests", json=new_guest(center), headers=key)).status_code == 200
    duplicate = await client.post("/v1/guests", json=new_guest(center), headers=key)
    assert duplicate.json()["error"] == {"code": 400, "message": "A guest with the same email already exists."}


async def test_guest_search_and_paging(client: httpx.AsyncClient, org: dict, key: dict) -> None:
    center = center_id(org)
    await client.post("/_sandbox/faults", json={"rate_limit_enabled": False})
    for n in range(23):
        body = new_guest(
            center,
            personal_info={
                "first_name": f"P{n:02d}",
                "last_name": "Paging",
                "email": f"p{n}@x.org",
                "mobile_phone": {"country_code": 225, "number": f"617555{n:04d}"},
            },
        )
        assert (await client.post("/v1/guests", json=body, headers=key)).status_code == 200
    seen, pages = [], []
    for page in (1, 2, 3, 4):
        params = {"center_id": center, "last_name": "paging", "page": page, "size": 10}
        body = (await client.get("/v1/guests/search", params=params, headers=key)).json()
        valid(body, {"guests": [docs.GUEST]} if body["guests"] else {"guests": []})
        seen += [g["personal_info"]["first_name"] for g in body["guests"]]
        pages.append(body["page_Info"])
    assert seen == [f"P{n:02d}" for n in range(23)]
    assert pages[0] == {"total": 23, "page": 1, "size": 10} and pages[3]["page"] == 4
    valid(pages[0], docs.page_info_example())

    seeded = (await client.get("/_sandbox/orgs")).json()[0]
    assert seeded["guests"] == 60 + 23
    ali = await client.get("/v1/guests/search", params={"center_id": center, "phone": "+1 (555) 871-8805"}, headers=key)
    assert [g["personal_info"]["last_name"] for g in ali.json()["guests"]] == ["Harris"]
    by_email = await client.get(
        "/v1/guests/search", params={"center_id": center, "email": "ALI.HARRIS@example.com"}, headers=key
    )
    assert by_email.json()["guests"][0]["id"] == ali.json()["guests"][0]["id"]

    too_big = await client.get(
        "/v1/guests/search", params={"center_id": center, "last_name": "p", "size": 101}, headers=key
    )
    assert (too_big.status_code, too_big.json()) == (
        422,
        {"error": {"code": 422, "message": "You cannot request more than 100 items."}},
    )
    no_criteria = await client.get("/v1/guests/search", params={"center_id": center}, headers=key)
    assert no_criteria.status_code == 400


# --- booking and appointments ----------------------------------------------------------------------


async def catalog(client: httpx.AsyncClient, center: str, key: dict) -> dict[str, dict]:
    services = (await client.get(f"/v1/centers/{center}/services", params={"size": 100}, headers=key)).json()
    return {s["code"]: s for s in services["services"]}


async def book(
    client: httpx.AsyncClient, key: dict, center: str, guest: str, service: str, therapist: str | None = None
) -> tuple[str, list[dict]]:
    item: dict[str, Any] = {"item": {"id": service}, "therapist": {"id": therapist}}
    body = {"center_id": center, "date": local_tomorrow(), "is_only_catalog_employees": False,
            "guests": [{"id": guest, "items": [item]}]}  # fmt: skip
    created = await client.post("/v1/bookings", params={"is_double_booking_enabled": "false"}, json=body, headers=key)
    assert created.status_code == 200, created.text
    valid(created.json(), docs.BOOKING)
    booking_id = created.json()["id"]
    slots = await client.get(f"/v1/bookings/{booking_id}/slots", headers=key)
    assert slots.json()["Error"] is None
    return booking_id, slots.json()["slots"]


async def test_booking_flow_and_date_window(
    client: httpx.AsyncClient, org: dict, key: dict, clock: FakeClock, zen: Starlette, receiver: Receiver
) -> None:
    center = center_id(org)
    guest = (await client.post("/v1/guests", json=new_guest(center), headers=key)).json()
    facial = (await catalog(client, center, key))["FACIAL"]
    booking_id, slots = await book(client, key, center, guest["id"], facial["id"])
    assert slots[0]["Time"] == f"{local_tomorrow()}T09:00:00" and slots[-1]["Time"] == f"{local_tomorrow()}T16:00:00"
    chosen = next(s["Time"] for s in slots if s["Available"])

    reserved = await client.post(f"/v1/bookings/{booking_id}/slots/reserve", json={"slot_time": chosen}, headers=key)
    assert reserved.json()["is_reserved"] is True and reserved.json()["error"] is None
    confirmed = await client.post(f"/v1/bookings/{booking_id}/slots/confirm", json={"notes": "first"}, headers=key)
    assert confirmed.status_code == 200 and confirmed.json()["is_confirmed"] is True
    invoice = confirmed.json()["invoice"]
    appointment_id = invoice["appointments"][0]["id"]
    assert invoice["total_price"]["sum_total"] == facial["price_info"]["final_price"]
    again = await client.post(f"/v1/bookings/{booking_id}/slots/confirm", headers=key)
    assert again.status_code == 400 and again.json()["is_confirmed"] is False

    day = local_tomorrow()
    window = {"center_id": center, "start_date": day, "end_date": day}
    listed = await client.get("/v1/appointments", params=window, headers=key)
    assert isinstance(listed.json(), list)
    mine = [a for a in listed.json() if a["appointment_id"] == appointment_id]
    assert len(mine) == 1
    valid(mine[0], docs.APPOINTMENT)
    start_local = datetime.fromisoformat(chosen).replace(tzinfo=ZoneInfo("America/New_York"))
    assert mine[0]["start_time"] == chosen
    assert mine[0]["start_time_utc"] == start_local.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    assert (mine[0]["status"], mine[0]["notes"], mine[0]["guest"]["id"]) == (0, "first", guest["id"])
    fetched = await client.get(f"/v1/appointments/{appointment_id}", headers=key)
    assert fetched.json() == mine[0]
    chicago = await client.get("/v1/appointments", params={**window, "center_id": center_id(org, "CHI")}, headers=key)
    assert appointment_id not in {a["appointment_id"] for a in chicago.json()}

    too_long = await client.get(
        "/v1/appointments", params={**window, "start_date": "2026-03-01", "end_date": "2026-03-09"}, headers=key
    )
    assert too_long.status_code == 400 and "7 days" in too_long.json()["error"]["message"]
    seven = await client.get(
        "/v1/appointments", params={**window, "start_date": "2026-03-01", "end_date": "2026-03-08"}, headers=key
    )
    assert seven.status_code == 200
    backwards = await client.get(
        "/v1/appointments", params={**window, "start_date": "2026-03-05", "end_date": "2026-03-04"}, headers=key
    )
    assert backwards.status_code == 400

    history = (await client.get(f"/v1/guests/{guest['id']}/appointments", headers=key)).json()
    valid(history, docs.GUEST_APPOINTMENTS)
    assert history["appointments"][0]["appointment_services"][0]["appointment_id"] == appointment_id

    await zen.state.sandbox.webhooks.drain()
    created = [e for e in receiver.events() if e["event_type"] == "AppointmentGroup.Created"]
    assert len(created) == 1
    valid(created[0], docs.doc_json("reference/appointment-group-created.md"))
    item = created[0]["data"]["appointments"][0]
    assert (item["id"], item["start_time_in_center"]) == (appointment_id, chosen)
    assert item["start_time"] == mine[0]["start_time_utc"]


async def test_reservations_block_and_expire(client: httpx.AsyncClient, org: dict, key: dict, clock: FakeClock) -> None:
    center = center_id(org)
    guests = [(await client.post("/v1/guests", json=new_guest(center, personal_info={
        "first_name": f"R{n}", "last_name": "Res", "email": f"r{n}@x.org"}), headers=key)).json()["id"] for n in range(2)]  # fmt: skip
    therapists = (await client.get(f"/v1/centers/{center}/therapists", headers=key)).json()["therapists"]
    peel = (await catalog(client, center, key))["PEEL"]["id"]
    first, slots = await book(client, key, center, guests[0], peel, therapists[0]["id"])
    chosen = next(s["Time"] for s in slots if s["Available"])
    await client.post(f"/v1/bookings/{first}/slots/reserve", json={"slot_time": chosen}, headers=key)

    second, slots = await book(client, key, center, guests[1], peel, therapists[0]["id"])
    assert next(s for s in slots if s["Time"] == chosen)["Available"] is False  # held by the first booking
    taken = await client.post(f"/v1/bookings/{second}/slots/reserve", json={"slot_time": chosen}, headers=key)
    assert taken.status_code == 400 and taken.json()["is_reserved"] is False

    clock.now += 601
    expired = await client.post(f"/v1/bookings/{first}/slots/confirm", headers=key)
    assert expired.status_code == 400 and expired.json()["error"]["message"] == "The slot reservation has expired."
    retaken = await client.post(f"/v1/bookings/{second}/slots/reserve", json={"slot_time": chosen}, headers=key)
    assert retaken.json()["is_reserved"] is True
    bad = await client.post(
        f"/v1/bookings/{second}/slots/reserve", json={"slot_time": f"{local_tomorrow()}T09:07:00"}, headers=key
    )
    assert bad.status_code == 400


async def test_reschedule_moves_the_booked_appointment(client: httpx.AsyncClient, org: dict, key: dict) -> None:
    """Reschedule = POST /v1/bookings with the first booking's invoice_id and invoice_item_id, then
    slots, reserve, confirm: the same appointment (id, invoice) moves; its old slot is free again."""
    center = center_id(org)
    guest = (await client.post("/v1/guests", json=new_guest(center), headers=key)).json()["id"]
    therapist = (await client.get(f"/v1/centers/{center}/therapists", headers=key)).json()["therapists"][5]["id"]
    peel = (await catalog(client, center, key))["PEEL"]["id"]
    first, slots = await book(client, key, center, guest, peel, therapist)
    chosen = next(s["Time"] for s in slots if s["Available"])
    await client.post(f"/v1/bookings/{first}/slots/reserve", json={"slot_time": chosen}, headers=key)
    invoice = (await client.post(f"/v1/bookings/{first}/slots/confirm", json={}, headers=key)).json()["invoice"]
    history = (await client.get(f"/v1/guests/{guest}/appointments", headers=key)).json()["appointments"]
    booked = history[0]["appointment_services"][0]

    item = {"item": {"id": peel}, "therapist": {"id": therapist}, "invoice_item_id": booked["invoice_item_id"]}
    body = {"center_id": center, "date": local_tomorrow(), "is_only_catalog_employees": False,
            "guests": [{"id": guest, "invoice_id": invoice["id"], "items": [item]}]}  # fmt: skip
    moving = (await client.post("/v1/bookings", json=body, headers=key)).json()["id"]
    slots = (await client.get(f"/v1/bookings/{moving}/slots", headers=key)).json()["slots"]
    assert next(s for s in slots if s["Time"] == chosen)["Available"] is True  # its own slot does not block it
    later = [s["Time"] for s in slots if s["Available"] and s["Time"] > chosen][3]
    await client.post(f"/v1/bookings/{moving}/slots/reserve", json={"slot_time": later}, headers=key)
    confirmed = await client.post(f"/v1/bookings/{moving}/slots/confirm", json={}, headers=key)
    assert confirmed.json()["is_confirmed"] is True
    moved = (await client.get(f"/v1/appointments/{booked['appointment_id']}", headers=key)).json()
    assert (moved["start_time"], moved["invoice_id"]) == (later, invoice["id"])
    again = (await client.get(f"/v1/guests/{guest}/appointments", headers=key)).json()["appointments"]
    assert len(again) == 1  # moved, not booked twice

    wrong = {
        **body,
        "guests": [{"id": guest, "invoice_id": invoice["id"], "items": [{**item, "invoice_item_id": "0" * 32}]}],
    }
    assert (await client.post("/v1/bookings", json=wrong, headers=key)).status_code == 400
    await client.put(f"/v1/invoices/{invoice['id']}/cancel", json={}, headers=key)
    cancelled = await client.post("/v1/bookings", json=body, headers=key)
    assert cancelled.status_code == 400 and "cannot be rescheduled" in cancelled.json()["error"]["message"]


async def test_therapist_availability(client: httpx.AsyncClient, org: dict, key: dict) -> None:
    center = center_id(org)
    listing = (await client.get(f"/v1/centers/{center}/therapists", headers=key)).json()
    valid(listing, docs.THERAPISTS)
    therapists = listing["therapists"]
    assert len(therapists) == 25 and all(t["personal_info"]["gender"] in ("0", "1") for t in therapists)
    other_center = (await client.get(f"/v1/centers/{center_id(org, 'CHI')}/therapists", headers=key)).json()
    assert not {t["id"] for t in therapists} & {t["id"] for t in other_center["therapists"]}

    guest = (await client.post("/v1/guests", json=new_guest(center), headers=key)).json()["id"]
    massage = (await catalog(client, center, key))["MASSAGE"]["id"]
    pick = therapists[3]["id"]
    booking_id, slots = await book(client, key, center, guest, massage, pick)
    free = {s["Time"] for s in slots if s["Available"]}

    def shift(time: str, minutes: int) -> str:
        return (datetime.fromisoformat(time) + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S")

    # A slot whose neighbours 45 minutes before and 60 minutes after are free too.
    target = next(t for t in sorted(free) if shift(t, -45) in free and shift(t, 60) in free)
    await client.post(
        "/_sandbox/appointments",
        json={
            "center_id": center,
            "guest_id": guest,
            "service_id": massage,
            "therapist_id": pick,
            "start_time": target,
        },
    )
    slots_after = (await client.get(f"/v1/bookings/{booking_id}/slots", headers=key)).json()["slots"]
    after = {s["Time"]: s["Available"] for s in slots_after}
    # The new 60-minute massage blocks every 60-minute start that would overlap it, and nothing else.
    assert (after[shift(target, -45)], after[target], after[shift(target, 45)]) == (False, False, False)
    assert (after[shift(target, -60)] if shift(target, -60) in free else True, after[shift(target, 60)]) == (True, True)

    anyone, slots = await book(client, key, center, guest, massage)
    assert next(s for s in slots if s["Time"] == target)["Available"] is True  # another therapist is free
    future = await client.get(
        f"/v1/bookings/{anyone}/slots", params={"check_future_day_availability": "true"}, headers=key
    )
    assert len(future.json()["future_days"]) == 7 and future.json()["next_available_day"]


async def test_status_changes_and_polling(
    client: httpx.AsyncClient, org: dict, key: dict, zen: Starlette, receiver: Receiver
) -> None:
    center = center_id(org)
    guest = (await client.post("/v1/guests", json=new_guest(center), headers=key)).json()["id"]
    service = (await catalog(client, center, key))["BOTOX"]["id"]
    made = await client.post(
        "/_sandbox/appointments",
        json={
            "center_id": center,
            "guest_id": guest,
            "service_id": service,
            "start_time": f"{local_tomorrow()}T11:00:00",
        },
    )
    appt = made.json()
    group, appt_id = appt["appointment_group_id"], appt["appointment_id"]

    async def status() -> int:
        return (await client.get(f"/v1/appointments/{appt_id}", headers=key)).json()["status"]

    assert (await client.put(f"/v1/appointments/{group}/check_in", headers=key)).json() == {
        "success": True,
        "error": None,
    }
    assert await status() == 2
    assert (await client.put(f"/v1/appointments/{group}/check_in", headers=key)).status_code == 400
    await client.put(f"/v1/appointments/{group}/undo_check_in", headers=key)
    assert await status() == 0
    progress = await client.put(f"/v1/appointments/{appt_id}/progress", json={"progress": 1}, headers=key)
    assert progress.status_code == 200
    await client.put(f"/v1/appointments/{group}/no_show", json={"comments": "did not come"}, headers=key)
    assert await status() == -2

    window = {"center_id": center, "start_date": local_tomorrow(), "end_date": local_tomorrow()}
    hidden = (await client.get("/v1/appointments", params=window, headers=key)).json()
    assert appt_id not in {a["appointment_id"] for a in hidden}
    shown = (
        await client.get("/v1/appointments", params={**window, "include_no_show_cancel": "true"}, headers=key)
    ).json()
    assert appt_id in {a["appointment_id"] for a in shown}

    second = (await client.post("/_sandbox/appointments", json={
        "center_id": center, "guest_id": guest, "service_id": service, "start_time": f"{local_tomorrow()}T13:00:00"})).json()  # fmt: skip
    # Rescheduling in the web app sends no webhook: only polling by date window sees it.
    await zen.state.sandbox.webhooks.drain()
    before = len(receiver.requests)
    await client.patch(
        f"/_sandbox/appointments/{second['appointment_id']}", json={"start_time": f"{local_tomorrow()}T15:30:00"}
    )
    await zen.state.sandbox.webhooks.drain()
    assert len(receiver.requests) == before
    polled = await client.get(f"/v1/appointments/{second['appointment_id']}", headers=key)
    assert polled.json()["start_time"] == f"{local_tomorrow()}T15:30:00"
    cancelled = await client.put(f"/v1/invoices/{second['invoice_id']}/cancel", json={"comments": "x"}, headers=key)
    assert cancelled.status_code == 200
    assert (await client.get(f"/v1/appointments/{second['appointment_id']}", headers=key)).json()["status"] == -1
    closed = next(a for a in zen.state.sandbox.orgs[ACCOUNT].appointments.values() if a.status == 1)
    assert (await client.put(f"/v1/invoices/{closed.invoice_id}/cancel", headers=key)).status_code == 400

    await zen.state.sandbox.webhooks.drain()
    events = [(e["event_type"], e["data"].get("appointment_group_status")) for e in receiver.events()]
    assert events == [
        ("Guest.Created", None),
        ("AppointmentGroup.Created", None),
        ("AppointmentGroup.Status", 2),
        ("AppointmentGroup.Status", 0),
        ("Appointment.Started", None),
        ("AppointmentGroup.Status", -2),
        ("AppointmentGroup.Created", None),
        ("AppointmentGroup.Status", -1),
    ]
    status_event = next(e for e in receiver.events() if e["event_type"] == "AppointmentGroup.Status")
    valid(status_event, docs.doc_json("reference/appointment-group-status.md"))


# --- catalog and memberships -----------------------------------------------------------------------


async def test_catalog_prices_and_categories(client: httpx.AsyncClient, org: dict, key: dict) -> None:
    boston, chicago = center_id(org), center_id(org, "CHI")
    page = (await client.get(f"/v1/Centers/{boston}/services", headers=key)).json()
    valid(page, docs.SERVICES)
    bos, chi = await catalog(client, boston, key), await catalog(client, chicago, key)
    assert len(bos) == 8 and page["page_info"]["total"] == 8
    consult, botox = bos["CONSULT"]["price_info"], bos["BOTOX"]["price_info"]
    assert (consult["sale_price"], consult["tax"], consult["final_price"]) == (150.0, 0.0, 150.0)
    assert (botox["sale_price"], botox["tax"], botox["final_price"]) == (350.0, 21.88, 371.88)
    assert chi["BOTOX"]["price_info"]["sale_price"] == 385.0 and chi["BOTOX"]["id"] == bos["BOTOX"]["id"]
    assert bos["BOTOX"]["additional_info"]["category"]["name"] == "Injectables"
    one = await client.get(f"/v1/centers/{boston}/services/{bos['LASER']['id']}", headers=key)
    assert one.json() == bos["LASER"]

    categories = (await client.get(f"/v1/centers/{boston}/categories", headers=key)).json()
    assert [c["name"] for c in categories["categories"]] == ["Body", "Injectables", "Laser", "Medical", "Skin care"]
    assert {s["additional_info"]["category"]["id"] for s in bos.values()} == {c["id"] for c in categories["categories"]}
    center = await client.get(f"/v1/centers/{boston}", params={"expand": "working_hours"}, headers=key)
    valid(center.json(), docs.CENTER)
    assert center.json()["center"]["working_hours"][0]["start_time"] == "09:00:00"
    assert (await client.get("/v1/centers/11111111-1111-4111-8111-111111111111", headers=key)).status_code == 404


async def test_memberships(client: httpx.AsyncClient, org: dict, key: dict, zen: Starlette) -> None:
    boston = center_id(org)
    offered = (await client.get(f"/v1/centers/{boston}/memberships", headers=key)).json()
    valid(offered, docs.MEMBERSHIPS)
    assert offered["total_no_of_memberships"] == 3
    assert {m["name"]: m["price"]["final"] for m in offered["memberships"]} == {
        "Glow Monthly": 99.0,
        "Injectables VIP": 199.0,
        "Wellness Annual": 899.0,
    }
    state = zen.state.sandbox.orgs[ACCOUNT]
    holder = next(iter(state.guest_memberships.values())).guest_id
    held = (await client.get(f"/v1/guests/{holder}/memberships", headers=key)).json()
    assert held["error"] is None and held["page_info"]["total"] >= 1
    assert held["memberships"][0]["membership"]["name"] in {m["name"] for m in offered["memberships"]}
    assert held["memberships"][0]["status"] in {"Active", "Expired", "Cancelled"}
    assert sum(1 for m in state.guest_memberships.values()) == 15
    fresh = (await client.post("/v1/guests", json=new_guest(boston), headers=key)).json()["id"]
    assert (await client.get(f"/v1/guests/{fresh}/memberships", headers=key)).json()["memberships"] == []


async def test_seed_is_deterministic_and_complete(clock: FakeClock) -> None:
    runs = []
    for _ in range(2):
        app = create_app(ZenotiSandboxSettings(clock=clock))
        state = app.state.sandbox.orgs[ACCOUNT]
        runs.append((sorted(state.guests), sorted((a.id, a.start, a.status) for a in state.appointments.values())))
    assert runs[0] == runs[1]
    state = app.state.sandbox.orgs[ACCOUNT]
    past = [a for a in state.appointments.values() if a.status == 1]
    future = [a for a in state.appointments.values() if a.status == 0]
    assert len(past) == 1771 and len(future) > 40
    assert all(a.start.timestamp() > T0 for a in future) and all(a.progress == 2 for a in past)
    assert len(state.centers) == 2 and len(state.therapists) == 50 and len(state.guests) == 60
    for appt in future:
        assert state.therapists[appt.therapist_id].center_id == appt.center_id
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://z") as c:
        key = {"Authorization": f"apikey {OrgConfig.api_key}"}
        guest = max(state.guests, key=lambda g: sum(a.guest_id == g for a in past))
        history = (await c.get(f"/v1/guests/{guest}/appointments", params={"size": 100}, headers=key)).json()
        assert history["page_info"]["total"] == sum(a.guest_id == guest for a in state.appointments.values())
        starts = [g["appointment_services"][0]["start_time"] for g in history["appointments"]]
        assert starts == sorted(starts)


# --- rate limit ------------------------------------------------------------------------------------


async def test_61st_call_in_a_minute_is_429(client: httpx.AsyncClient, key: dict, clock: FakeClock) -> None:
    for n in range(60):
        ok = await client.get("/v1/centers", headers=key)
        assert ok.status_code == 200
        assert ok.headers["RateLimit-Remaining"] == str(59 - n)
        clock.now += 0.5
    limited = await client.get("/v1/centers", headers=key)
    assert limited.status_code == 429
    assert limited.json() == {"statusCode": 429, "message": "Rate limit is exceeded. Try again in 30 seconds."}
    assert {
        k: limited.headers[k]
        for k in ("Organization-RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "Retry-After")
    } == {
        "Organization-RateLimit-Limit": "60;w=60;b=60",
        "RateLimit-Remaining": "0",
        "RateLimit-Reset": "30",
        "Retry-After": "30",
    }
    other = await client.get("/v1/centers", headers={"Authorization": f"apikey {OTHER_KEY}"})
    assert other.status_code == 200  # the limit is per organization

    clock.now += 30  # the bucket refills a minute after the window opened
    refilled = await client.get("/v1/centers", headers=key)
    assert refilled.status_code == 200 and refilled.headers["RateLimit-Remaining"] == "59"

    await client.post("/_sandbox/faults", json={"rate_limit_enabled": False})
    for _ in range(80):
        response = await client.get("/v1/centers", headers=key)
        assert response.status_code == 200 and "RateLimit-Remaining" not in response.headers
    await client.post("/_sandbox/faults", json={"rate_limit_storm": 2})
    storm = [(await client.get("/v1/centers", headers=key)).status_code for _ in range(3)]
    assert storm == [429, 429, 200]


# --- webhooks --------------------------------------------------------------------------------------


def verified(request: httpx.Request, secret: str = SECRET) -> bool:
    expected = hmac.new(secret.encode(), request.content, hashlib.sha256).hexdigest()
    return hmac.compare_digest(request.headers["X-Zenoti-Signature"], expected)


async def test_guest_webhooks_signed_and_documented(
    client: httpx.AsyncClient, org: dict, key: dict, zen: Starlette, receiver: Receiver
) -> None:
    center = center_id(org)
    guest = (await client.post("/v1/guests", json=new_guest(center), headers=key)).json()
    await client.patch(f"/_sandbox/guests/{guest['id']}", json={"address_info": {"city": "Salem"}})
    await client.delete(f"/_sandbox/guests/{guest['id']}")
    await zen.state.sandbox.webhooks.drain()

    assert all(verified(r) for r in receiver.requests) and {str(r.url) for r in receiver.requests} == {HOOK}
    events = receiver.events()
    assert [e["event_type"] for e in events] == ["Guest.Created", "Guest.Updated", "Guest.Deleted"]
    for event in events:  # guest-deleted.md shows dob_incomplete_year as "" where the others show null
        valid(event, docs.doc_json("reference/guest-created.md"))
        valid(event, docs.doc_json("reference/guest-updated.md"))
        valid(event, docs.doc_json("guides/webhooks-event-response-structure.md"))
    created, updated = events[0]["data"], events[1]["data"]
    assert created["id"] == guest["id"] and created["personal_info"]["date_of_birth"] == "1990-09-25T00:00:00"
    assert updated["address_info"]["city"] == "Salem" and updated["address_info"]["address_1"] == "1 Main St"
    assert events[0]["event_timestamp"] == "2026-03-02T15:00:00.0000000Z"
    assert len({e["id"] for e in events}) == 3 and all(len(e["event_id"]) == 24 for e in events)


async def test_webhook_retries_and_deactivation(
    client: httpx.AsyncClient, org: dict, key: dict, zen: Starlette, receiver: Receiver
) -> None:
    center = center_id(org)
    receiver.statuses = [500, 503, 200]
    guest = (await client.post("/v1/guests", json=new_guest(center), headers=key)).json()
    await zen.state.sandbox.webhooks.drain()
    deliveries = (await client.get("/_sandbox/webhooks/deliveries")).json()["deliveries"]
    assert [(d["attempts"], d["delivered"]) for d in deliveries] == [([500, 503, 200], True)]
    assert len({r.content for r in receiver.requests}) == 1  # a retry resends the same signed bytes

    hook = await client.post("/_sandbox/webhooks", json={"url": "https://down.example/h", "events": ["Guest.Updated"]})
    hook_id = hook.json()["id"]
    for n in range(21):
        await client.patch(f"/_sandbox/guests/{guest['id']}", json={"personal_info": {"middle_name": f"M{n}"}})
        await zen.state.sandbox.webhooks.drain()
    down = [r for r in receiver.requests if r.url.host == "down.example"]
    assert len(down) == 20 * 6  # 20 events, each tried 6 times, then the webhook is deactivated
    registration = next(r for r in (await client.get("/_sandbox/webhooks")).json() if r["id"] == hook_id)
    assert (registration["active"], registration["consecutive_failures"]) == (False, 20)
    assert len(receiver.events()) == 3 + 21  # the healthy webhook got every event (the first one on try 3)
    await client.post(f"/_sandbox/webhooks/{hook_id}/activate")
    await client.patch(f"/_sandbox/guests/{guest['id']}", json={"personal_info": {"middle_name": "Z"}})
    await zen.state.sandbox.webhooks.drain()
    assert len([r for r in receiver.requests if r.url.host == "down.example"]) == 20 * 6 + 6


async def test_webhook_duplicate_and_out_of_order_faults(
    client: httpx.AsyncClient, org: dict, key: dict, zen: Starlette, receiver: Receiver
) -> None:
    center = center_id(org)
    await client.post("/_sandbox/faults", json={"webhook_duplicate_rate": 1.0})
    guest = (await client.post("/v1/guests", json=new_guest(center), headers=key)).json()
    await zen.state.sandbox.webhooks.drain()
    assert [e["event_type"] for e in receiver.events()] == ["Guest.Created", "Guest.Created"]
    assert receiver.requests[0].content == receiver.requests[1].content  # same call id: a redelivery

    receiver.requests.clear()
    await client.post("/_sandbox/faults", json={"webhook_duplicate_rate": 0.0, "webhook_out_of_order": True})
    for n in range(6):
        await client.patch(f"/_sandbox/guests/{guest['id']}", json={"personal_info": {"middle_name": f"N{n}"}})
    assert receiver.requests == []  # held until released together
    await zen.state.sandbox.webhooks.drain()
    names = [e["data"]["personal_info"]["middle_name"] for e in receiver.events()]
    assert sorted(names) == [f"N{n}" for n in range(6)] and names != sorted(names)


# --- faults, routing, stats ------------------------------------------------------------------------


async def test_5xx_outage_and_malformed_page(client: httpx.AsyncClient, org: dict, key: dict, clock: FakeClock) -> None:
    center = center_id(org)
    await client.post("/_sandbox/faults", json={"status_5xx_rate": 1.0})
    failed = await client.get("/v1/centers", headers=key)
    assert (failed.status_code, failed.json()) == (500, {"Message": "An error has occurred."})
    await client.delete("/_sandbox/faults")

    await client.post("/_sandbox/faults", json={"outage_until": T0 + 60})
    down = await client.get("/v1/centers", headers=key)
    assert down.status_code == 503 and down.headers["content-type"].startswith("text/html")
    assert (await client.post("/v1/tokens", json={})).status_code == 503
    clock.now += 61
    assert (await client.get("/v1/centers", headers=key)).status_code == 200

    await client.post("/_sandbox/faults", json={"malformed_page": True})
    params = {"center_id": center, "last_name": "h"}
    broken = await client.get("/v1/guests/search", params=params, headers=key)
    assert broken.status_code == 200 and broken.headers["content-type"].startswith("application/json")
    with pytest.raises(json.JSONDecodeError):
        broken.json()
    assert (await client.get("/v1/guests/search", params=params, headers=key)).json()["guests"]


async def test_routing_like_aspnet_and_stats(client: httpx.AsyncClient, org: dict, key: dict) -> None:
    center = center_id(org)
    assert (await client.get(f"/V1/Centers/{center.upper()}/Services/", headers=key)).status_code == 200
    missing = await client.get("/v1/nothing", headers=key)
    assert missing.status_code == 404 and missing.json()["Message"].startswith("No HTTP resource was found")
    wrong = await client.delete("/v1/centers", headers=key)
    assert (wrong.status_code, wrong.json()) == (
        405,
        {"Message": "The requested resource does not support http method 'DELETE'."},
    )
    await client.post("/_sandbox/stats/reset")
    await client.get(f"/v1/centers/{center}/therapists", headers=key)
    await client.get(f"/v1/centers/{center}/therapists", headers=key)
    await client.get("/v1/guests/search", headers=key)
    stats = (await client.get("/_sandbox/stats")).json()
    assert stats["GET /v1/centers/{center_id}/therapists"] == 2 and stats["GET /v1/guests/search"] == 1

    await client.post("/_sandbox/faults", json={"latency_ms": 1, "rate_limit_enabled": False})
    await client.post("/_sandbox/reset")
    faults = (await client.get("/_sandbox/faults")).json()
    assert (faults["latency_ms"], faults["rate_limit_enabled"]) == (0, True)
    assert (await client.get("/_sandbox/orgs")).json()[0]["guests"] == 60


async def test_webhook_delivery_does_not_block(
    client: httpx.AsyncClient, org: dict, key: dict, zen: Starlette, receiver: Receiver
) -> None:
    receiver.gate = asyncio.Event()
    created = await client.post("/v1/guests", json=new_guest(center_id(org)), headers=key)
    assert created.status_code == 200 and receiver.requests == []
    receiver.gate.set()
    await zen.state.sandbox.webhooks.drain()
    assert [e["event_type"] for e in receiver.events()] == ["Guest.Created"]
