"""Centers and their catalog: services with prices, categories, memberships, therapists."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from . import render
from .api import center_of, guid, listing, page_of, paging
from .auth import Caller
from .errors import not_found
from .state import Sandbox


def _expand(request: Request) -> set[str]:
    return {p.strip().lower() for v in request.query_params.getlist("expand") for p in v.split(",")}


async def centers(request: Request, sb: Sandbox, caller: Caller) -> Response:
    page, size = paging(request)
    hours = "working_hours" in _expand(request)
    found = sorted(caller.org.centers.values(), key=lambda c: c.code)
    items, info = page_of(found, page, size)
    return listing(sb, {"centers": [render.center(c, working_hours=hours) for c in items], "page_info": info})


async def center(request: Request, sb: Sandbox, caller: Caller) -> Response:
    found = center_of(caller.org, request.path_params["center_id"])
    return JSONResponse(
        {"center": render.center(found, working_hours="working_hours" in _expand(request)), "error": None}
    )


async def services(request: Request, sb: Sandbox, caller: Caller) -> Response:
    org = caller.org
    found_center = center_of(org, request.path_params["center_id"])
    page, size = paging(request)
    found = sorted(org.services.values(), key=lambda s: s.name)
    items, info = page_of(found, page, size)
    return listing(sb, {"services": [render.service(org, s, found_center) for s in items], "page_info": info})


async def service(request: Request, sb: Sandbox, caller: Caller) -> Response:
    org = caller.org
    found_center = center_of(org, request.path_params["center_id"])
    found = org.services.get(guid(request.path_params["service_id"], "service id"))
    if found is None:
        raise not_found("Service")
    return JSONResponse(render.service(org, found, found_center))


async def categories(request: Request, sb: Sandbox, caller: Caller) -> Response:
    org = caller.org
    center_of(org, request.path_params["center_id"])
    page, size = paging(request)
    found = sorted(org.categories.values(), key=lambda c: c.display_order)
    items, info = page_of(found, page, size)
    return listing(sb, {"categories": [render.category(c) for c in items], "page_info": info, "error": None})


async def memberships(request: Request, sb: Sandbox, caller: Caller) -> Response:
    org = caller.org
    found_center = center_of(org, request.path_params["center_id"])
    page, size = paging(request)
    found = sorted(org.memberships.values(), key=lambda m: m.name)
    items, info = page_of(found, page, size)
    body = {
        "memberships": [render.membership(m, found_center) for m in items],
        "total_no_of_memberships": len(found),
        "benefits": None,
        "page_info": info,
        "error": None,
    }
    return listing(sb, body)


async def therapists(request: Request, sb: Sandbox, caller: Caller) -> Response:
    """GET /v1/centers/{center_id}/therapists: every therapist of the center, no paging (as documented)."""
    org = caller.org
    found_center = center_of(org, request.path_params["center_id"])
    staff = sorted((t for t in org.therapists.values() if t.center_id == found_center.id), key=lambda t: t.code)
    return listing(sb, {"therapists": [render.therapist(t) for t in staff]})
