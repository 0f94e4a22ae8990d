"""Contacts endpoints (apps/contacts.json, Version 2021-07-28)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse

from . import model, scheduling
from .errors import bad_request, forbidden, unprocessable
from .state import Grant, Location, Sandbox

SEARCH_KEYS = ("locationId", "pageLimit", "page", "searchAfter", "filters", "sort", "query")
LIST_KEYS = ("locationId", "limit", "startAfterId", "startAfter", "query")
_DATE_FIELDS = ("dateAdded", "dateUpdated")
_FILTER_FIELDS = (
    "id", "email", "phone", "firstName", "lastName", "name", "companyName", "address1", "city", "state",
    "postalCode", "country", "source", "type", "tags", "dnd", "assignedTo", "gender", "timezone",
    "website", "dateOfBirth", *_DATE_FIELDS,
)  # fmt: skip
_SORT_FIELDS = ("firstName", "lastName", "firstNameLowerCase", "lastNameLowerCase", "email", *_DATE_FIELDS)
_OPERATORS = ("eq", "not_eq", "contains", "not_contains", "exists", "not_exists", "range")
_RANGE_KEYS = ("gt", "gte", "lt", "lte")
_MAX_PAGED_RESULTS = 10_000


async def json_body(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise bad_request(f"Unexpected token in JSON at position {exc.pos}") from None


def _location(sb: Sandbox, grant: Grant, location_id: Any) -> Location:
    if location_id != grant.location_id:
        raise forbidden()
    return sb.locations[location_id]


def _guard_body_location(grant: Grant, body: Any) -> None:
    """A token for another location is refused before the body is validated."""
    if isinstance(body, dict) and isinstance(body.get("locationId"), str) and body["locationId"]:
        if body["locationId"] != grant.location_id:
            raise forbidden()


def _contact(sb: Sandbox, grant: Grant, contact_id: str) -> tuple[Location, dict[str, Any]]:
    found = sb.find_contact(contact_id)
    if found is None:
        raise bad_request(f"Contact with id {contact_id} not found")
    location, contact = found
    _location(sb, grant, location.id)
    return location, contact


async def create(request: Request, sb: Sandbox, grant: Grant) -> JSONResponse:
    body = await json_body(request)
    _guard_body_location(grant, body)
    values = model.validate(body, model.CREATE_DTO)
    location = _location(sb, grant, values["locationId"])
    if match := model.find_duplicate(location, values.get("email"), values.get("phone")):
        raise model.duplicate_error(location, match)
    contact = model.create_contact(sb, location, values)
    return JSONResponse({"contact": model.render(contact)}, status_code=201)


async def get(request: Request, sb: Sandbox, grant: Grant) -> JSONResponse:
    _, contact = _contact(sb, grant, request.path_params["contactId"])
    return JSONResponse({"contact": model.render(contact)})


async def update(request: Request, sb: Sandbox, grant: Grant) -> JSONResponse:
    location, contact = _contact(sb, grant, request.path_params["contactId"])
    values = model.validate(await json_body(request), model.UPDATE_DTO, contact.get("country") or "US")
    if match := model.find_duplicate(location, values.get("email"), values.get("phone"), exclude=contact["id"]):
        raise model.duplicate_error(location, match)
    model.update_contact(sb, location, contact, values)
    return JSONResponse({"succeded": True, "contact": model.render(contact)})


async def delete(request: Request, sb: Sandbox, grant: Grant) -> JSONResponse:
    location, contact = _contact(sb, grant, request.path_params["contactId"])
    model.delete_contact(sb, location, contact)
    return JSONResponse({"succeded": True})


async def upsert(request: Request, sb: Sandbox, grant: Grant) -> JSONResponse:
    body = await json_body(request)
    _guard_body_location(grant, body)
    values = model.validate(body, model.UPSERT_DTO)
    location = _location(sb, grant, values["locationId"])
    match = model.find_duplicate(location, values.get("email"), values.get("phone"))
    if match is None:
        contact, new = model.create_contact(sb, location, values), True
    else:
        contact, new = location.contacts[match[0]], False
        # A second contact holding the other identifier keeps it: GHL ignores that field rather than duplicate.
        for key, index in (("email", location.by_email), ("phone", location.by_phone)):
            if values.get(key) and index.get(values[key].lower(), contact["id"]) != contact["id"]:
                del values[key]
        model.update_contact(sb, location, contact, values)
    return JSONResponse({"new": new, "contact": model.render(contact), "traceId": str(uuid.uuid4())})


# --- search ---------------------------------------------------------------------------------------


def _to_ms(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, str):
        if value.strip().lstrip("-").isdigit():
            return int(value)
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return int(parsed.timestamp() * 1000)
    raise ValueError(value)


def _eq(field: str, actual: Any, expected: Any) -> bool:
    if isinstance(expected, list):
        return any(_eq(field, actual, e) for e in expected)
    if field in _DATE_FIELDS:
        return actual == _to_ms(expected)
    if field == "phone" and isinstance(expected, str):
        expected = model.normalize_phone(expected) or expected
    if field == "tags":
        return isinstance(expected, str) and expected.strip().lower() in actual
    if isinstance(actual, str) and isinstance(expected, str):
        return actual.casefold() == expected.casefold()
    return actual == expected


def _compile_filter(spec: Any, path: str) -> tuple[Callable[[dict[str, Any]], bool] | None, list[str]]:
    if not isinstance(spec, dict):
        return None, [f"{path} must be an object"]
    if "group" in spec:
        group, children = spec.get("group"), spec.get("filters")
        if group not in ("AND", "OR") or not isinstance(children, list):
            return None, [f"{path}.group must be one of the following values: AND, OR"]
        compiled, errors = _compile_filters(children, f"{path}.filters")
        combine = all if group == "AND" else any
        return (lambda c: combine(f(c) for f in compiled)), errors
    field, operator, value = spec.get("field"), spec.get("operator"), spec.get("value")
    if field not in _FILTER_FIELDS:
        return None, [f"{path}.field must be one of the following values: {', '.join(_FILTER_FIELDS)}"]
    if operator not in _OPERATORS:
        return None, [f"{path}.operator must be one of the following values: {', '.join(_OPERATORS)}"]
    if operator in ("exists", "not_exists"):
        wanted = operator == "exists"
        return (lambda c: (c.get(field) not in (None, "", [])) == wanted), []
    if operator == "range":
        if field not in _DATE_FIELDS or not isinstance(value, dict) or not value:
            return None, [f"{path}.value must be a range {{gt|gte|lt|lte}} on dateAdded or dateUpdated"]
        try:
            bounds = {k: _to_ms(v) for k, v in value.items() if k in _RANGE_KEYS}
        except ValueError:
            return None, [f"{path}.value bounds must be ISO 8601 dates or epoch milliseconds"]
        if len(bounds) != len(value):
            return None, [f"{path}.value may only hold gt, gte, lt, lte"]
        return (lambda c: _in_range(c[field], bounds)), []
    if operator in ("contains", "not_contains"):
        needle, wanted = str(value).casefold(), operator == "contains"
        if field == "tags":
            return (lambda c: (needle in c["tags"]) == wanted), []
        return (lambda c: (needle in str(c.get(field) or "").casefold()) == wanted), []
    try:
        if field in _DATE_FIELDS:
            _to_ms(value)
    except ValueError:
        return None, [f"{path}.value must be an ISO 8601 date or epoch milliseconds"]
    wanted = operator == "eq"
    return (lambda c: (c.get(field) is not None and _eq(field, c[field], value)) == wanted), []


def _compile_filters(specs: list[Any], path: str) -> tuple[list[Callable[[dict[str, Any]], bool]], list[str]]:
    compiled, errors = [], []
    for i, spec in enumerate(specs):
        f, errs = _compile_filter(spec, f"{path}.{i}")
        errors += errs
        if f is not None:
            compiled.append(f)
    return compiled, errors


def _in_range(ms: int, bounds: dict[str, int]) -> bool:
    return (
        ("gt" not in bounds or ms > bounds["gt"])
        and ("gte" not in bounds or ms >= bounds["gte"])
        and ("lt" not in bounds or ms < bounds["lt"])
        and ("lte" not in bounds or ms <= bounds["lte"])
    )


def _sort_value(contact: dict[str, Any], field: str) -> int | str:
    if field in _DATE_FIELDS:
        return contact[field]
    return str(contact.get(field.removesuffix("LowerCase")) or "").lower()


def _compare(a: list[Any], b: list[Any], directions: list[str]) -> int:
    for x, y, direction in zip(a, b, directions, strict=True):
        if x != y:
            result = -1 if x < y else 1
            return result if direction == "asc" else -result
    return 0


def _matches_query(contact: dict[str, Any], query: str) -> bool:
    needle = query.casefold()
    haystack = (contact.get(k) for k in ("name", "firstName", "lastName", "email", "phone", "companyName"))
    return any(needle in str(v).casefold() for v in haystack if v)


async def search(request: Request, sb: Sandbox, grant: Grant) -> JSONResponse:
    body = await json_body(request)
    _guard_body_location(grant, body)
    if not isinstance(body, dict):
        raise bad_request("Bad Request")
    errors = [f"property {k} should not exist" for k in body if k not in SEARCH_KEYS]
    location_id = body.get("locationId")
    if not isinstance(location_id, str) or not location_id:
        errors += ["locationId must be a string", "locationId should not be empty"]
    page_limit, page, cursor = body.get("pageLimit"), body.get("page"), body.get("searchAfter")
    if not isinstance(page_limit, int) or isinstance(page_limit, bool) or not 1 <= page_limit <= 500:
        errors.append("pageLimit must be an integer between 1 and 500")
    if page is not None and (not isinstance(page, int) or isinstance(page, bool) or page < 1):
        errors.append("page must be a positive integer")
    if page is not None and cursor is not None:
        errors.append("page and searchAfter cannot be used together")
    if not errors and page is not None and page * page_limit > _MAX_PAGED_RESULTS:
        errors.append(f"page * pageLimit must not exceed {_MAX_PAGED_RESULTS}; use searchAfter beyond it")
    query = body.get("query")
    if query is not None and (not isinstance(query, str) or len(query) > 75):
        errors.append("query must be a string of at most 75 characters")
    filters: list[Callable[[dict[str, Any]], bool]] = []
    if not isinstance(body.get("filters") or [], list):
        errors.append("filters must be an array")
    else:
        filters, filter_errors = _compile_filters(body.get("filters") or [], "filters")
        errors += filter_errors
    sort_specs = body.get("sort") or [{"field": "dateAdded", "direction": "desc"}]
    sort_ok = isinstance(sort_specs, list) and all(
        isinstance(s, dict) and s.get("field") in _SORT_FIELDS and s.get("direction", "asc") in ("asc", "desc")
        for s in sort_specs
    )
    if not sort_ok:
        errors.append(f"sort must be [{{field, direction}}] with field in {', '.join(_SORT_FIELDS)}")
    if errors:
        raise unprocessable(errors)
    sort_fields = [s["field"] for s in sort_specs]
    directions = [s.get("direction", "asc") for s in sort_specs] + ["asc"]
    location = _location(sb, grant, location_id)

    def key(contact: dict[str, Any]) -> list[Any]:
        return [*(_sort_value(contact, f) for f in sort_fields), contact["id"]]

    keyed = [
        (key(c), c)
        for c in location.contacts.values()
        if all(f(c) for f in filters) and (not query or _matches_query(c, query))
    ]
    # Stable sorts from the least significant key up; the id tiebreaker is always ascending.
    keyed.sort(key=lambda kc: kc[0][-1])
    for i in reversed(range(len(sort_fields))):
        keyed.sort(key=lambda kc: kc[0][i], reverse=directions[i] == "desc")
    if cursor is not None:
        after = _parse_cursor(cursor, sort_fields)
        page_items = [kc for kc in keyed if _compare(kc[0], after, directions) > 0][:page_limit]
    else:
        start = ((page or 1) - 1) * page_limit
        page_items = keyed[start : start + page_limit]
    broken = bool(page_items) and sb.gate.take_malformed_page()
    contacts = [
        {**model.render(c), "searchAfter": [None] * len(sort_fields) + [c["id"]] if broken else k}
        for k, c in page_items
    ]
    return JSONResponse({"contacts": contacts, "total": len(keyed)})


def _parse_cursor(cursor: Any, sort_fields: list[str]) -> list[Any]:
    error = unprocessable(["searchAfter must be the searchAfter array of the last contact of the previous page"])
    if not isinstance(cursor, list) or len(cursor) != len(sort_fields) + 1:
        raise error
    values: list[Any] = []
    for field, raw in zip([*sort_fields, "id"], cursor, strict=True):
        if field in _DATE_FIELDS:
            try:
                values.append(_to_ms(raw))
            except ValueError:
                raise error from None
        elif isinstance(raw, str):
            values.append(raw)
        else:
            raise error
    return values


# --- deprecated list ------------------------------------------------------------------------------


async def list_contacts(request: Request, sb: Sandbox, grant: Grant) -> JSONResponse:
    params = request.query_params
    errors = [f"property {k} should not exist" for k in params if k not in LIST_KEYS]
    location_id = params.get("locationId")
    if location_id and location_id != grant.location_id:
        raise forbidden()
    if not location_id:
        errors += ["locationId must be a string", "locationId should not be empty"]
    limit, start_after = 20, None
    try:
        limit = int(params.get("limit", "20"))
        if not 1 <= limit <= 100:
            errors.append("limit must not be greater than 100" if limit > 100 else "limit must be a positive number")
    except ValueError:
        errors.append("limit must be a number conforming to the specified constraints")
    try:
        start_after = int(float(params["startAfter"])) if "startAfter" in params else None
    except ValueError:
        errors.append("startAfter must be a number conforming to the specified constraints")
    if errors:
        raise unprocessable(errors)
    location = _location(sb, grant, location_id)
    query = params.get("query")
    ordered = sorted(
        (c for c in location.contacts.values() if not query or _matches_query(c, query)),
        key=lambda c: (c["dateAdded"], c["id"]),
        reverse=True,
    )
    after_id = params.get("startAfterId")
    if after_id and start_after is None and after_id in location.contacts:
        start_after = location.contacts[after_id]["dateAdded"]
    skipped = 0
    if start_after is not None:
        # Descending order: everything at or above the cursor was on earlier pages.
        bound = (start_after, after_id or "")
        skipped = sum(1 for c in ordered if (c["dateAdded"], c["id"]) >= bound)
    page_items = ordered[skipped : skipped + limit]
    has_more = skipped + limit < len(ordered)
    current = skipped // limit + 1
    last = page_items[-1] if page_items else None
    meta: dict[str, Any] = {
        "total": len(ordered),
        "nextPageUrl": None,
        "startAfterId": last["id"] if last else None,
        "startAfter": last["dateAdded"] if last else None,
        "currentPage": current,
        "nextPage": current + 1 if has_more else None,
        "prevPage": current - 1 if current > 1 else None,
    }
    if last and sb.gate.take_malformed_page():
        meta["startAfter"], meta["startAfterId"] = "NaN", ""
    if has_more and last:
        next_params = {
            "locationId": location_id,
            "startAfter": meta["startAfter"],
            "startAfterId": meta["startAfterId"],
        }
        if "limit" in params:
            next_params["limit"] = limit
        if query:
            next_params["query"] = query
        meta["nextPageUrl"] = f"{sb.settings.base_url}/contacts/?{urlencode(next_params)}"
    return JSONResponse({"contacts": [model.render(c) for c in page_items], "meta": meta})


# --- sub-resources: tags, workflows, appointments ---------------------------------------------------


def _whitelist(body: Any, allowed: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise bad_request("Bad Request")
    if errors := [f"property {k} should not exist" for k in body if k not in allowed]:
        raise unprocessable(errors)
    return body


async def _tags_body(request: Request) -> list[str]:
    body = _whitelist(await json_body(request), ("tags",))
    tags = body.get("tags")
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise unprocessable(["tags must be an array", "each value in tags must be a string"])
    return list(dict.fromkeys(t.strip().lower() for t in tags if t.strip()))


async def add_tags(request: Request, sb: Sandbox, grant: Grant) -> JSONResponse:
    location, contact = _contact(sb, grant, request.path_params["contactId"])
    model.change_tags(sb, location, contact, await _tags_body(request), add=True)
    return JSONResponse({"tags": contact["tags"]}, status_code=201)


async def remove_tags(request: Request, sb: Sandbox, grant: Grant) -> JSONResponse:
    location, contact = _contact(sb, grant, request.path_params["contactId"])
    model.change_tags(sb, location, contact, await _tags_body(request), add=False)
    return JSONResponse({"tags": contact["tags"]})


async def _workflow(request: Request, sb: Sandbox, grant: Grant) -> tuple[Location, dict[str, Any], str, Any]:
    location, contact = _contact(sb, grant, request.path_params["contactId"])
    body = _whitelist(await json_body(request), ("eventStartTime",))
    start = body.get("eventStartTime")
    if start is not None and scheduling.parse_time(start, location.timezone) is None:
        raise unprocessable(["eventStartTime must be a valid ISO 8601 date string"])
    workflow_id = request.path_params["workflowId"]
    if workflow_id not in location.workflows:
        raise bad_request(f"Workflow with id {workflow_id} not found")
    return location, contact, workflow_id, start


async def add_to_workflow(request: Request, sb: Sandbox, grant: Grant) -> JSONResponse:
    location, contact, workflow_id, start = await _workflow(request, sb, grant)
    enrolled = location.enrollments.setdefault(contact["id"], {})
    enrolled[workflow_id] = {"eventStartTime": start, "enrolledAt": model.iso_ms(sb.stamp_ms())}
    return JSONResponse({"succeded": True})


async def remove_from_workflow(request: Request, sb: Sandbox, grant: Grant) -> JSONResponse:
    location, contact, workflow_id, _ = await _workflow(request, sb, grant)
    location.enrollments.get(contact["id"], {}).pop(workflow_id, None)
    return JSONResponse({"succeded": True})


async def appointments(request: Request, sb: Sandbox, grant: Grant) -> JSONResponse:
    location, contact = _contact(sb, grant, request.path_params["contactId"])
    found = sorted((a for a in location.appointments.values() if a["contactId"] == contact["id"]), key=_by_start)
    return JSONResponse({"events": [scheduling.render_contact_event(location, a) for a in found]})


def _by_start(appt: dict[str, Any]) -> tuple[int, str]:
    return appt["start"], appt["id"]
