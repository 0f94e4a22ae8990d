"""Guests: create, retrieve, full-replace update, search, list by center, history and memberships."""

from __future__ import annotations

import re
from datetime import UTC, date, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from . import render
from .api import center_of, guid, json_object, listing, page_of, paging, parse_date, parse_day
from .auth import Caller
from .errors import bad_request, not_found
from .model import US, Org, new_guid, utc
from .state import Sandbox

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
PREFERENCE_DEFAULTS = {
    "receive_transactional_email": False,
    "receive_transactional_sms": False,
    "receive_marketing_email": False,
    "receive_marketing_sms": False,
    "recieve_lp_stmt": True,
}


def _section(body: dict[str, Any], key: str) -> dict[str, Any]:
    value = body.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise bad_request(f"Invalid {key}.")
    return value


def _text(section: dict[str, Any], key: str) -> str:
    value = section.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise bad_request(f"Invalid {key}.")
    return value.strip()


def _int(section: dict[str, Any], key: str, default: int) -> int:
    value = section.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad_request(f"Invalid {key}.")
    return value


def _bool(section: dict[str, Any], key: str, default: bool) -> bool:
    value = section.get(key, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise bad_request(f"Invalid {key}.")
    return value


def _phone(section: dict[str, Any], key: str) -> dict[str, Any] | None:
    value = section.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise bad_request(f"Invalid {key}.")
    number = value.get("number")
    if number in (None, ""):
        return None
    digits = re.sub(r"[\s\-().+]", "", str(number))
    if not digits.isdigit() or not 4 <= len(digits) <= 15:
        raise bad_request(f"Invalid {key} number.")
    return {"country_code": _int(value, "country_code", US), "number": digits}


def _reference(org: Org, value: Any, key: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not value.get("id"):
        raise bad_request(f"Invalid {key}.")
    therapist = org.therapists.get(guid(value["id"], key))
    if therapist is None:
        raise bad_request(f"Invalid {key}.")
    return {"id": therapist.id, "name": f"{therapist.first_name} {therapist.last_name}"}


def build(org: Org, body: dict[str, Any], today: date) -> dict[str, Any]:
    """The guest's fields from a request body. Every field the body omits takes its empty value: that
    is what makes PUT a full replace. Unknown fields are ignored, as Zenoti's model binder does."""
    personal, address, prefs = _section(body, "personal_info"), _section(body, "address_info"), {}
    for key in ("first_name", "last_name"):
        if not _text(personal, key):
            raise bad_request(f"{key} is required.")
    email = _text(personal, "email")
    if email and not EMAIL.match(email):
        raise bad_request("Invalid email.")
    gender = _int(personal, "gender", -1)
    if gender not in (-1, 0, 1):
        raise bad_request("Invalid gender.")
    dob = parse_date(personal.get("date_of_birth"), "date_of_birth")
    if dob and dob > today:
        raise bad_request("Invalid date_of_birth.")
    country_id, state_id = _int(address, "country_id", -1), _int(address, "state_id", -1)
    if country_id == US and not (state_id in (-1, -2) or 1 <= state_id <= 51):
        raise bad_request("Invalid state_id.")
    preferences = _section(body, "preferences")
    for key, default in PREFERENCE_DEFAULTS.items():
        prefs[key] = _bool(preferences, key, default)
    prefs["preferred_therapist"] = _reference(org, preferences.get("preferred_therapist"), "preferred_therapist")
    tags = body.get("tags")
    if tags is not None and (not isinstance(tags, list) or not all(isinstance(t, str) for t in tags)):
        raise bad_request("Invalid tags.")
    referral = body.get("referral")
    if referral is not None and not isinstance(referral, dict):
        raise bad_request("Invalid referral.")
    return {
        "code": _text(body, "code"),
        "personal_info": {
            "user_name": _text(personal, "user_name"),
            "first_name": _text(personal, "first_name"),
            "last_name": _text(personal, "last_name"),
            "middle_name": _text(personal, "middle_name"),
            "email": email,
            "mobile_phone": _phone(personal, "mobile_phone"),
            "work_phone": _phone(personal, "work_phone"),
            "home_phone": _phone(personal, "home_phone"),
            "gender": gender,
            "date_of_birth": dob,
            "is_minor": _bool(personal, "is_minor", False),
            "nationality_id": _int(personal, "nationality_id", -1),
            "anniversary_date": parse_date(personal.get("anniversary_date"), "anniversary_date"),
            "lock_guest_custom_data": _bool(personal, "lock_guest_custom_data", False),
            "pan": _text(personal, "pan"),
        },
        "address_info": {
            "address_1": _text(address, "address_1"),
            "address_2": _text(address, "address_2"),
            "city": _text(address, "city"),
            "country_id": country_id,
            "state_id": state_id,
            "state_other": _text(address, "state_other"),
            "zip_code": _text(address, "zip_code"),
        },
        "preferences": prefs,
        "tags": list(tags) if tags is not None else None,
        "referral": referral,
        "primary_employee": _reference(org, body.get("primary_employee"), "primary_employee"),
    }


def check_duplicates(org: Org, fields: dict[str, Any], exclude: str | None = None) -> None:
    if not org.config.reject_duplicate_guests:
        return
    email = fields["personal_info"]["email"].casefold()
    mobile = (fields["personal_info"]["mobile_phone"] or {}).get("number")
    for other in org.guests.values():
        if other["id"] == exclude:
            continue
        info = other["personal_info"]
        if email and info["email"].casefold() == email:
            raise bad_request("A guest with the same email already exists.")
        if mobile and (info["mobile_phone"] or {}).get("number") == mobile:
            raise bad_request("A guest with the same mobile number already exists.")


def find(org: Org, guest_id: str) -> dict[str, Any]:
    record = org.guests.get(guid(guest_id, "guest id"))
    if record is None:
        raise not_found("Guest")
    return record


async def create(request: Request, sb: Sandbox, caller: Caller) -> Response:
    org, body = caller.org, await json_object(request)
    center = center_of(org, body.get("center_id"))
    fields = build(org, body, utc(sb.clock()).date())
    check_duplicates(org, fields)
    now = sb.clock()
    org.next_guest_number += 1
    record = {"id": new_guid(sb.rng), "_id": org.next_guest_number, "center_id": center.id, **fields}
    record.update(created=now, updated=now)
    org.guests[record["id"]] = record
    sb.webhooks.emit(org.account_name, "Guest.Created", render.guest_event(org, record))
    return JSONResponse(render.guest(record))


async def get(request: Request, sb: Sandbox, caller: Caller) -> Response:
    # `expand` (tags, referrals, address_info, preferences, login_info) is accepted; everything is returned.
    return JSONResponse(render.guest(find(caller.org, request.path_params["guest_id"])))


async def update(request: Request, sb: Sandbox, caller: Caller) -> Response:
    """PUT /v1/guests/{guest_id} replaces the whole guest: fields the body omits are cleared."""
    org = caller.org
    record = find(org, request.path_params["guest_id"])
    body = await json_object(request)
    center_id = center_of(org, body["center_id"]).id if body.get("center_id") else record["center_id"]
    fields = build(org, body, utc(sb.clock()).date())
    check_duplicates(org, fields, exclude=record["id"])
    record.update(fields, center_id=center_id, updated=sb.clock())
    sb.webhooks.emit(org.account_name, "Guest.Updated", render.guest_event(org, record))
    return JSONResponse(render.guest(record))


SEARCH_KEYS = ("first_name", "last_name", "zip_code", "phone", "email", "tags", "user_name", "user_code")


def _matches(record: dict[str, Any], criteria: dict[str, str]) -> bool:
    info, address = record["personal_info"], record["address_info"]
    for key, wanted in criteria.items():
        want = wanted.strip().casefold()
        if key in ("first_name", "last_name") and not info[key].casefold().startswith(want):
            return False
        if key == "email" and info["email"].casefold() != want:
            return False
        if key == "zip_code" and address["zip_code"].casefold() != want:
            return False
        if key == "user_name" and info["user_name"].casefold() != want:
            return False
        if key == "user_code" and record["code"].casefold() != want:
            return False
        if key == "tags" and not {t.strip().casefold() for t in want.split(",")} & {
            t.casefold() for t in record["tags"] or []
        }:
            return False
        if key == "phone":
            digits = re.sub(r"\D", "", want)
            numbers = [p["number"] for p in (info["mobile_phone"], info["home_phone"], info["work_phone"]) if p]
            if not digits or not any(n == digits or (len(digits) >= 7 and n.endswith(digits)) or
                                     digits.endswith(n) and len(n) >= 7 for n in numbers):  # fmt: skip
                return False
    return True


async def search(request: Request, sb: Sandbox, caller: Caller) -> Response:
    """GET /v1/guests/search: the page object is spelled ``page_Info`` in this response."""
    org, params = caller.org, request.query_params
    center = center_of(org, params.get("center_id"))
    page, size = paging(request)
    criteria = {k: params[k] for k in SEARCH_KEYS if params.get(k, "").strip()}
    if not criteria:
        raise bad_request("At least one search parameter is required.")
    scope = org.guests.values() if org.config.search_across_centers else (
        g for g in org.guests.values() if g["center_id"] == center.id
    )  # fmt: skip
    found = sorted(
        (g for g in scope if _matches(g, criteria)),
        key=lambda g: (
            g["personal_info"]["last_name"].casefold(),
            g["personal_info"]["first_name"].casefold(),
            g["id"],
        ),
    )
    items, info = page_of(found, page, size)
    return listing(sb, {"guests": [render.guest(g) for g in items], "page_Info": info})


async def list_guests(request: Request, sb: Sandbox, caller: Caller) -> Response:
    """GET /v1/guests?center_id=&last_updated=: guests of a center changed since a UTC time."""
    org = caller.org
    center = center_of(org, request.query_params.get("center_id"))
    page, size = paging(request)
    since = request.query_params.get("last_updated")
    cutoff = parse_day(since, "last_updated").replace(tzinfo=UTC).timestamp() if since else float("-inf")
    found = sorted(
        (g for g in org.guests.values() if g["center_id"] == center.id and g["updated"] >= cutoff),
        key=lambda g: (g["updated"], g["id"]),
    )
    items, info = page_of(found, page, size)
    return listing(sb, {"guests": [render.guest(g) for g in items], "page_info": info})


async def appointments(request: Request, sb: Sandbox, caller: Caller) -> Response:
    """GET /v1/guests/{guest_id}/appointments: the guest's appointment groups, oldest first."""
    org = caller.org
    record = find(org, request.path_params["guest_id"])
    page, size = paging(request)
    params = request.query_params
    start = parse_day(params["start_date"], "start_date") if params.get("start_date") else None
    end = parse_day(params["end_date"], "end_date") if params.get("end_date") else None
    if end is not None and len(params["end_date"]) <= 10:
        end += timedelta(days=1)  # a date-only end_date includes that day
    groups: dict[str, list[Any]] = {}
    for appt in org.appointments.values():
        if appt.guest_id != record["id"]:
            continue
        local = org.centers[appt.center_id].local(appt.start)
        if (start and local < start) or (end and local >= end):
            continue
        groups.setdefault(appt.group_id, []).append(appt)
    ordered = sorted((sorted(g, key=lambda a: a.start) for g in groups.values()), key=lambda g: (g[0].start, g[0].id))
    items, info = page_of(ordered, page, size)
    body = {"appointments": [render.guest_appointment_group(org, g) for g in items], "page_info": info}
    return listing(sb, body)


async def memberships(request: Request, sb: Sandbox, caller: Caller) -> Response:
    org = caller.org
    record = find(org, request.path_params["guest_id"])
    page, size = paging(request)
    found = sorted(
        (m for m in org.guest_memberships.values() if m.guest_id == record["id"]), key=lambda m: (m.start, m.id)
    )
    items, info = page_of(found, page, size)
    body = {"memberships": [render.guest_membership(org, m) for m in items], "page_info": info, "error": None}
    return listing(sb, body)
