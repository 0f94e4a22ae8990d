"""Request parsing shared by the vendor routes: JSON bodies, ids, paging, dates."""

from __future__ import annotations

import json
import uuid
from datetime import date, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .errors import TOO_MANY_ITEMS, api_error, bad_request, not_found
from .model import Center, Org
from .state import Sandbox


async def json_object(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = json.loads(raw) if raw.strip() else None
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise bad_request("The request body is invalid.")
    return body


def guid(value: str | None, what: str) -> str:
    """Zenoti ids are GUIDs, matched case-insensitively."""
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise bad_request(f"Invalid {what}.") from None


def center_of(org: Org, value: str | None, what: str = "center_id") -> Center:
    if not value:
        raise bad_request(f"{what} is required.")
    center = org.centers.get(guid(value, what))
    if center is None:
        raise not_found("Center")
    return center


def paging(request: Request) -> tuple[int, int]:
    """``page`` (default 1) and ``size`` (default 10, at most 100: guides/pagination.md)."""
    try:
        page = int(request.query_params.get("page") or 1)
        size = int(request.query_params.get("size") or 10)
    except ValueError:
        raise bad_request("page and size must be integers.") from None
    if size > 100:
        raise api_error(422, TOO_MANY_ITEMS)
    if page < 1 or size < 1:
        raise bad_request("page and size must be positive.")
    return page, size


def page_of(items: list[Any], page: int, size: int) -> tuple[list[Any], dict[str, int]]:
    return items[(page - 1) * size : page * size], {"total": len(items), "page": page, "size": size}


def parse_day(value: str | None, name: str) -> datetime:
    """A date (``YYYY-MM-DD``) or a wall-clock datetime (``YYYY-MM-DDTHH:MM:SS``), naive."""
    if not value:
        raise bad_request(f"{name} is required.")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", ""))
    except ValueError:
        raise bad_request(f"Invalid {name}.") from None
    return parsed.replace(tzinfo=None)


def parse_date(value: Any, name: str) -> date | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise bad_request(f"Invalid {name}.")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "")).date()
    except ValueError:
        raise bad_request(f"Invalid {name}.") from None
    return None if parsed.year == 1 else parsed


def listing(sb: Sandbox, body: Any) -> Response:
    """A list response; under the malformed_page fault the body is cut off mid-JSON, as a dropped
    connection behind Zenoti's gateway delivers it (status 200, application/json)."""
    if sb.gate.take_malformed_page():
        raw = json.dumps(body).encode()
        return Response(raw[: max(1, len(raw) // 2)], media_type="application/json; charset=utf-8")
    return JSONResponse(body)
