"""The FHIR RESTful API (http://hl7.org/fhir/R4/http.html) on one tenant: read, vread, history, create
(with If-None-Exist), update (with If-Match), delete, search and paging through stored search results."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.requests import Request
from starlette.responses import Response

from . import search, subscriptions
from .auth import Grant, require
from .outcome import FhirError, bad_request, error, issue, not_found, outcome
from .state import Sandbox
from .store import Record, Snapshot, Tenant, Version, http_date, instant
from .validation import RESOURCE_TYPES, validate

FHIR_JSON = "application/fhir+json"
JSON_BODY_TYPES = ("application/fhir+json", "application/json", "application/json+fhir")
_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_ETAG = re.compile(r'^\s*(?:W/)?"?([0-9]+)"?\s*$')


@dataclass
class Ctx:
    sb: Sandbox
    tenant: Tenant
    base: str  # [base] of this tenant, e.g. http://host/fhir/default
    media: str = FHIR_JSON
    pretty: bool = False
    grant: Grant | None = None
    prefer: dict[str, str] = field(default_factory=dict)

    def require(self, kind: str, perm: str) -> None:
        assert self.grant is not None
        require(self.grant, kind, perm)


def render(body: Any, status: int, headers: dict[str, str] | None, media: str, pretty: bool) -> Response:
    text = json.dumps(body, indent=2 if pretty else None, separators=None if pretty else (",", ":"), ensure_ascii=False)
    return Response(text, status_code=status, headers=headers, media_type=f"{media};charset=utf-8")


def respond(ctx: Ctx, body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return render(body, status, headers, ctx.media, ctx.pretty)


def parse_prefer(request: Request) -> dict[str, str]:
    prefs = {}
    for part in re.split(r"[,;]", request.headers.get("prefer", "")):
        key, _, value = part.strip().partition("=")
        if key:
            prefs[key.lower()] = value.strip().strip('"').lower()
    return prefs


def resource_type(request: Request) -> str:
    kind = request.path_params["type"]
    if kind not in RESOURCE_TYPES:
        shown = f" '{kind}'" if kind.isalnum() and len(kind) <= 64 else ""
        raise not_found(f"Unknown resource type{shown} - Server knows how to handle: [{', '.join(RESOURCE_TYPES)}]")
    return kind


def resource_id(request: Request) -> str:
    rid = request.path_params["id"]
    if not _ID.match(rid):
        raise bad_request("Invalid resource ID: ids are 1-64 characters of A-Z, a-z, 0-9, '-' and '.'")
    return rid


async def json_body(request: Request, interaction: str) -> Any:
    mime = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if mime not in JSON_BODY_TYPES:
        raise error(
            415,
            "not-supported",
            f"Incorrect Content-Type header value was provided in the request. A FHIR Content-Type is required "
            f'for "{interaction}" operation (application/fhir+json)',
        )
    try:
        return json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        raise bad_request("Failed to parse request body as JSON resource", "structure") from None


def _version_headers(ctx: Ctx, record: Record, version: Version) -> dict[str, str]:
    location = f"{ctx.base}/{record.type}/{record.id}/_history/{version.vid}"
    return {
        "ETag": record.etag(version.vid),
        "Last-Modified": http_date(version.stamp_ms),
        "Location": location,
        "Content-Location": location,
    }


def _written(ctx: Ctx, record: Record, version: Version, status: int, verb: str) -> Response:
    headers = _version_headers(ctx, record, version)
    preference = ctx.prefer.get("return", "representation")
    if preference == "minimal":
        return Response(status_code=status, headers=headers)
    if preference == "operationoutcome":
        text = f'Successfully {verb} resource "{record.type}/{record.id}/_history/{version.vid}"'
        return respond(ctx, outcome(issue("informational", text, severity="information")), status, headers)
    return respond(ctx, version.resource, status, headers)


def _check_write(ctx: Ctx, kind: str, body: Any) -> dict[str, Any]:
    resource = validate(kind, body)
    if kind == "Subscription":
        settings = ctx.sb.settings
        subscriptions.check(resource, default_count=settings.default_count, max_count=settings.max_count)
    return resource


# --- instance interactions ----------------------------------------------------------------------------


def _record(ctx: Ctx, kind: str, rid: str) -> Record:
    record = ctx.tenant.get(kind, rid)
    if record is None:
        raise not_found(f"Resource {kind}/{rid} is not known")
    return record


def _gone(record: Record) -> FhirError:
    return error(
        410,
        "deleted",
        f"Resource was deleted at {instant(record.current.stamp_ms)}",
        headers={"ETag": record.etag(), "Last-Modified": http_date(record.current.stamp_ms)},
    )


async def read(request: Request, ctx: Ctx) -> Response:
    kind = resource_type(request)
    ctx.require(kind, "r")
    record = _record(ctx, kind, resource_id(request))
    if record.deleted:
        raise _gone(record)
    headers = _version_headers(ctx, record, record.current)
    del headers["Location"]
    wanted = _ETAG.match(request.headers.get("if-none-match", ""))
    if wanted and int(wanted.group(1)) == record.current.vid:
        return Response(status_code=304, headers=headers)
    return respond(ctx, record.current.resource, 200, headers)


async def vread(request: Request, ctx: Ctx) -> Response:
    kind = resource_type(request)
    ctx.require(kind, "r")
    record = _record(ctx, kind, resource_id(request))
    vid = request.path_params["vid"]
    if not vid.isdigit() or not 0 < int(vid) <= len(record.versions):
        raise not_found(f"Version is not valid for resource {kind}/{record.id}")
    version = record.versions[int(vid) - 1]
    headers = _version_headers(ctx, record, version)
    del headers["Location"]
    if version.resource is None:
        raise error(410, "deleted", f"Version {vid} of resource {kind}/{record.id} is a deletion", headers=headers)
    return respond(ctx, version.resource, 200, headers)


async def history(request: Request, ctx: Ctx) -> Response:
    kind = resource_type(request)
    ctx.require(kind, "r")
    record = _record(ctx, kind, resource_id(request))
    entries = []
    for version in reversed(record.versions):
        entry: dict[str, Any] = {"fullUrl": f"{ctx.base}/{kind}/{record.id}"}
        if version.resource is not None:
            entry["resource"] = version.resource
        entry["request"] = {"method": version.method, "url": f"{kind}/{record.id}"}
        created = version.vid == 1 or record.versions[version.vid - 2].resource is None
        status = "200 OK" if version.resource is None else "201 Created" if created else "200 OK"
        entry["response"] = {
            "status": status,
            "etag": record.etag(version.vid),
            "lastModified": instant(version.stamp_ms),
        }
        entries.append(entry)
    bundle = {
        "resourceType": "Bundle",
        "id": ctx.sb.new_id(),
        "meta": {"lastUpdated": instant(ctx.sb.stamp_ms())},
        "type": "history",
        "total": len(entries),
        "link": [{"relation": "self", "url": f"{ctx.base}/{kind}/{record.id}/_history"}],
        "entry": entries,
    }
    return respond(ctx, bundle)


async def create(request: Request, ctx: Ctx) -> Response:
    kind = resource_type(request)
    ctx.require(kind, "c")
    resource = _check_write(ctx, kind, await json_body(request, "CREATE"))
    condition = request.headers.get("if-none-exist")
    if condition is not None:
        matches = _conditional_matches(ctx, kind, condition)
        if len(matches) > 1:
            raise error(
                412,
                "multiple-matches",
                f"Failed to CREATE resource with match URL because this search matched {len(matches)} resources",
            )
        if matches:
            record = matches[0]
            return _written(ctx, record, record.current, 200, "found")
    rid = ctx.sb.new_id()
    record, version = ctx.sb.write(ctx.tenant, kind, rid, resource, "POST")
    return _written(ctx, record, version, 201, "created")


def _conditional_matches(ctx: Ctx, kind: str, condition: str) -> list[Record]:
    query_text = condition.split("?", 1)[1] if "?" in condition else condition
    items = parse_qsl(query_text, keep_blank_values=True)
    settings = ctx.sb.settings
    query = search.parse(kind, items, strict=True, default_count=settings.default_count,
                         max_count=settings.max_count, base=ctx.base)  # fmt: skip
    if not query.clauses:
        raise bad_request("Invalid If-None-Exist header: no search parameters", "invalid")
    return [ctx.tenant.records[kind][r["id"]] for r in ctx.tenant.live(kind) if query.matches(r)]


async def update(request: Request, ctx: Ctx) -> Response:
    kind = resource_type(request)
    ctx.require(kind, "u")
    rid = resource_id(request)
    body = await json_body(request, "UPDATE")
    if isinstance(body, dict) and body.get("resourceType") == kind:
        if "id" not in body:
            raise bad_request(
                "Can not update resource, resource body must contain an ID element for update (PUT) operation"
            )
        if body["id"] != rid:
            raise bad_request(
                "Can not update resource, resource body must contain an ID element which matches the request "
                "URL for update (PUT) operation"
            )
    resource = _check_write(ctx, kind, body)
    record = ctx.tenant.get(kind, rid)
    if_match = request.headers.get("if-match")
    if if_match is not None:
        wanted = _ETAG.match(if_match)
        if wanted is None:
            raise bad_request('Invalid If-Match header: expected W/"<versionId>"')
        if record is None or record.deleted:
            raise error(412, "conflict", f"Precondition failed: resource {kind}/{rid} does not exist")
        if int(wanted.group(1)) != record.current.vid:
            raise error(
                412,
                "conflict",
                f"Precondition failed: trying to update {kind}/{rid}/_history/{wanted.group(1)} but this is not "
                f"the current version (current is {record.current.vid})",
            )
    if record is None and not ctx.sb.settings.allow_update_create:
        raise error(
            405,
            "not-supported",
            f"Resource {kind}/{rid} does not exist and this server does not allow client-defined ids",
        )
    status = 201 if record is None or record.deleted else 200
    record, version = ctx.sb.write(ctx.tenant, kind, rid, resource, "PUT")
    return _written(ctx, record, version, status, "updated")


async def delete(request: Request, ctx: Ctx) -> Response:
    kind = resource_type(request)
    ctx.require(kind, "d")
    record = _record(ctx, kind, resource_id(request))
    if record.deleted:
        return respond(ctx, outcome(issue("informational", "Resource was already deleted", severity="information")),
                       200, {"ETag": record.etag()})  # fmt: skip
    ctx.sb.write(ctx.tenant, kind, record.id, None, "DELETE")
    text = f'Successfully deleted 1 resource(s) ("{kind}/{record.id}")'
    return respond(ctx, outcome(issue("informational", text, severity="information")), 200, {"ETag": record.etag()})


# --- search ---------------------------------------------------------------------------------------------


async def search_type(request: Request, ctx: Ctx) -> Response:
    kind = resource_type(request)
    ctx.require(kind, "s")
    items = list(request.query_params.multi_items())
    if request.method == "POST":
        mime = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if mime != "application/x-www-form-urlencoded":
            raise error(415, "not-supported", "POST _search requires application/x-www-form-urlencoded")
        items += parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)
    settings = ctx.sb.settings
    handling = ctx.prefer.get("handling")
    strict = handling == "strict" or (settings.strict_search and handling != "lenient")
    query = search.parse(
        kind, items, strict=strict, default_count=settings.default_count, max_count=settings.max_count, base=ctx.base
    )
    matched = query.order([r for r in ctx.tenant.live(kind) if query.matches(r)])
    self_url = f"{ctx.base}/{kind}" + (f"?{urlencode(query.used)}" if query.used else "")
    ids = [r["id"] for r in matched]
    snapshot = Snapshot(ctx.sb.new_id(), kind, ids, query, ctx.sb.clock(), self_url, ctx.sb.stamp_ms())
    searches = ctx.tenant.searches
    searches[snapshot.id] = snapshot
    while len(searches) > settings.max_searches:
        searches.popitem(last=False)
    return respond(ctx, _page(ctx, snapshot, 0, query.count))


async def page(request: Request, ctx: Ctx) -> Response:
    """GET [base]?_getpages=<search id>&_getpagesoffset=<n>&_count=<n> (HAPI's paging links)."""
    params = request.query_params
    search_id = params.get("_getpages")
    if search_id is None:
        raise bad_request(
            "Invalid request: this server does not support system-level search or history", "not-supported"
        )
    snapshot = ctx.tenant.searches.get(search_id)
    if snapshot is not None and ctx.sb.clock() > snapshot.created + ctx.sb.settings.search_ttl:
        del ctx.tenant.searches[search_id]
        snapshot = None
    if snapshot is None:
        shown = search_id if _ID.match(search_id) else ""
        raise error(410, "not-found", f'Search ID "{shown}" does not exist and may have expired')
    ctx.require(snapshot.resource_type, "s")
    offset, count = params.get("_getpagesoffset", "0"), params.get("_count", str(snapshot.query.count))
    if not offset.isdigit() or not count.isdigit():
        raise bad_request("Invalid _getpagesoffset or _count: expected non-negative integers", "value")
    return respond(ctx, _page(ctx, snapshot, int(offset), min(int(count), ctx.sb.settings.max_count)))


def _page_url(ctx: Ctx, search_id: str, offset: int | str, count: int) -> str:
    query = urlencode({"_getpages": search_id, "_getpagesoffset": offset, "_count": count, "_bundletype": "searchset"})
    return f"{ctx.base}?{query}"


def _page(ctx: Ctx, snapshot: Snapshot, offset: int, count: int) -> dict[str, Any]:
    sb, kind, query = ctx.sb, snapshot.resource_type, snapshot.query
    total = len(snapshot.ids)
    entries: list[dict[str, Any]] = []
    if not query.summary_count and count > 0:
        for rid in snapshot.ids[offset : offset + count]:
            resource = ctx.tenant.resource(kind, rid)
            if resource is not None:
                entries.append(
                    {"fullUrl": f"{ctx.base}/{kind}/{rid}", "resource": resource, "search": {"mode": "match"}}
                )
        entries += _includes(ctx, query, [e["resource"] for e in entries])
    links = [
        {"relation": "self", "url": snapshot.self_url if offset == 0 else _page_url(ctx, snapshot.id, offset, count)}
    ]
    has_next = not query.summary_count and count > 0 and offset + count < total
    if has_next:
        links.append({"relation": "next", "url": _page_url(ctx, snapshot.id, offset + count, count)})
    if offset > 0 and count > 0:
        links.append({"relation": "previous", "url": _page_url(ctx, snapshot.id, max(offset - count, 0), count)})
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "id": sb.new_id(),
        "meta": {"lastUpdated": instant(snapshot.stamp_ms)},
        "type": "searchset",
        "total": total,
        "link": links,
    }
    if entries:
        bundle["entry"] = entries
    if sb.gate.take_malformed_page():
        _malform(ctx, bundle, has_next)
    return bundle


def _malform(ctx: Ctx, bundle: dict[str, Any], has_next: bool) -> None:
    """Cycles through three breakages: a next link to an expired search (410), one with a corrupt offset
    (400), and a Bundle without its required ``type``."""
    modes = ("gone", "bad_offset", "no_type")
    mode = modes[ctx.sb.malformed_served % len(modes)]
    ctx.sb.malformed_served += 1
    link = next((lk for lk in bundle["link"] if lk["relation"] == "next"), None)
    if mode == "no_type" or not has_next or link is None:
        del bundle["type"]
    elif mode == "gone":
        link["url"] = _page_url(ctx, ctx.sb.new_id(), 0, 20)
    else:
        link["url"] = link["url"].replace("_getpagesoffset=", "_getpagesoffset=-")


def _includes(ctx: Ctx, query: search.Query, resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    seen = {(r["resourceType"], r["id"]) for r in resources}
    assert ctx.grant is not None
    for param, target in query.includes:
        for resource in resources:
            for kind, rid in param.extract(resource):
                if (target and kind != target) or (kind, rid) in seen or kind not in RESOURCE_TYPES:
                    continue
                included = ctx.tenant.resource(kind, rid)
                if included is None or not ctx.grant.allows(kind, "r"):
                    continue
                seen.add((kind, rid))
                found.append(
                    {"fullUrl": f"{ctx.base}/{kind}/{rid}", "resource": included, "search": {"mode": "include"}}
                )
    return found


def retry_after(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))
