"""REST resources: versions, resources, describe, sObject rows (by id and by external id), updated /
deleted, SOQL query and queryAll with cursors, limits."""

from __future__ import annotations

from typing import Any

from . import dml, schema, soql, timefmt
from .api import ApiRequest, ApiResponse, Ctx
from .errors import RecordError, SfError, not_found, sf_error
from .state import Cursor, Sandbox

RELEASES = {
    50: "Winter '21",
    51: "Spring '21",
    52: "Summer '21",
    53: "Winter '22",
    54: "Spring '22",
    55: "Summer '22",
    56: "Winter '23",
    57: "Spring '23",
    58: "Summer '23",
    59: "Winter '24",
    60: "Spring '24",
    61: "Summer '24",
    62: "Winter '25",
}
MAX_CURSORS_PER_USER = 10


def versions(sb: Sandbox) -> list[dict[str, str]]:
    return [
        {"label": RELEASES.get(v, f"API {v}"), "url": f"/services/data/v{v}.0", "version": f"{v}.0"}
        for v in range(sb.settings.min_api_version, sb.settings.max_api_version + 1)
    ]


def resources(ctx: Ctx, req: ApiRequest) -> ApiResponse:
    base = f"/services/data/v{ctx.version}.0"
    names = ("sobjects", "query", "queryAll", "limits", "composite", "search", "recent", "tooling", "jobs")
    return ApiResponse(200, {name: f"{base}/{name}" for name in names})


def _sobject(name: str) -> schema.SObject:
    obj = schema.sobject(name)
    if obj is None:
        raise not_found()
    return obj


def _urls(ctx: Ctx, obj: schema.SObject) -> dict[str, str]:
    base = f"/services/data/v{ctx.version}.0/sobjects/{obj.name}"
    return {"sobject": base, "describe": f"{base}/describe", "rowTemplate": f"{base}/{{ID}}"}


def _summary(ctx: Ctx, obj: schema.SObject) -> dict[str, Any]:
    return {
        "name": obj.name,
        "label": obj.label,
        "labelPlural": obj.label_plural,
        "keyPrefix": obj.key_prefix,
        "custom": False,
        "createable": obj.createable,
        "updateable": obj.updateable,
        "deletable": obj.deletable,
        "queryable": True,
        "retrieveable": True,
        "replicateable": obj.cdc,
        "urls": _urls(ctx, obj),
    }


def describe_global(ctx: Ctx, req: ApiRequest) -> ApiResponse:
    return ApiResponse(
        200,
        {"encoding": "UTF-8", "maxBatchSize": 200, "sobjects": [_summary(ctx, o) for o in schema.SOBJECTS.values()]},
    )


def basic_info(ctx: Ctx, req: ApiRequest) -> ApiResponse:
    obj = _sobject(req.path_params["sobject"])
    return ApiResponse(200, {"objectDescribe": _summary(ctx, obj), "recentItems": []})


def describe(ctx: Ctx, req: ApiRequest) -> ApiResponse:
    obj = _sobject(req.path_params["sobject"])
    body = _summary(ctx, obj)
    body["fields"] = [f.describe() for f in obj.fields.values()]
    if obj is schema.ACCOUNT:
        body["recordTypeInfos"] = [
            {
                "active": True,
                "available": True,
                "defaultRecordTypeMapping": rt["IsPersonType"],
                "developerName": rt["DeveloperName"],
                "master": False,
                "name": rt["Name"],
                "recordTypeId": rt["Id"],
            }
            for rt in ctx.org.table("RecordType").values()
        ]
    return ApiResponse(200, body)


def record_json(
    ctx: Ctx, obj: schema.SObject, record: dict[str, Any], names: list[str] | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {"attributes": soql.attributes(obj, record["Id"], ctx.version)}
    for name in names or list(obj.fields):
        out[name] = soql.value_out(obj.fields[name], record.get(name))
    return out


def field_list(obj: schema.SObject, raw: str | None) -> list[str] | None:
    if raw is None:
        return None
    names = []
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        f = obj.field(part)
        if f is None:
            raise sf_error(
                400,
                "INVALID_FIELD",
                f"No such column '{part}' on entity '{obj.name}'. If you are attempting to use a custom field, be "
                "sure to append the '__c' after the custom field name. Please reference your WSDL or the describe "
                "call for the appropriate names.",
            )
        if f.name not in names:
            names.append(f.name)
    return names


def _body_object(req: ApiRequest) -> dict[str, Any]:
    if not isinstance(req.body, dict):
        raise sf_error(
            400,
            "JSON_PARSER_ERROR",
            "Cannot deserialize instance of sobject from START_ARRAY value [ or request may be missing a required field",
        )
    return req.body


def create(ctx: Ctx, req: ApiRequest) -> ApiResponse:
    obj = _sobject(req.path_params["sobject"])
    body = _body_object(req)
    try:
        with ctx.transaction() as txn:
            record_id = txn.insert(obj, body)
    except RecordError as err:
        raise err.rest() from None
    return ApiResponse(
        201,
        {"id": record_id, "success": True, "errors": []},
        {"Location": f"/services/data/v{ctx.version}.0/sobjects/{obj.name}/{record_id}"},
    )


def _get_live(ctx: Ctx, obj: schema.SObject, raw_id: str) -> dict[str, Any]:
    try:
        record_id = dml.resolve_id(obj, raw_id)
    except RecordError as err:
        raise err.rest() from None
    record = ctx.org.table(obj.name).get(record_id)
    if record is None:
        raise not_found()
    if record.get("IsDeleted"):
        raise sf_error(404, "ENTITY_IS_DELETED", "entity is deleted", [])
    return record


def get_record(ctx: Ctx, req: ApiRequest) -> ApiResponse:
    obj = _sobject(req.path_params["sobject"])
    names = field_list(obj, req.query.get("fields"))
    record = _get_live(ctx, obj, req.path_params["record_id"])
    return ApiResponse(200, record_json(ctx, obj, record, names))


def _write(ctx: Ctx, action: Any) -> Any:
    try:
        with ctx.transaction() as txn:
            return action(txn)
    except RecordError as err:
        rest = err.rest()
        if rest.status == 404 and err.code == "INVALID_CROSS_REFERENCE_KEY":
            raise not_found() from None
        raise rest from None


def update_record(ctx: Ctx, req: ApiRequest) -> ApiResponse:
    obj = _sobject(req.path_params["sobject"])
    body = _body_object(req) if req.body is not None else {}
    _write(ctx, lambda txn: txn.update(obj, req.path_params["record_id"], body))
    return ApiResponse(204)


def delete_record(ctx: Ctx, req: ApiRequest) -> ApiResponse:
    obj = _sobject(req.path_params["sobject"])
    _write(ctx, lambda txn: txn.delete(obj, req.path_params["record_id"]))
    return ApiResponse(204)


# -- external ids ------------------------------------------------------------------------------------


def _external(ctx: Ctx, req: ApiRequest) -> tuple[schema.SObject, schema.Field, str, list[str]]:
    obj = _sobject(req.path_params["sobject"])
    name = req.path_params["field"]
    f = obj.field(name)
    if f is None or not (f.external_id or f.name == "Id"):
        raise not_found(f"Provided external ID field does not exist or is not accessible: {name}")
    value = req.path_params["value"]
    if f.name == "Id":
        record_id = dml.resolve_id(obj, value) if value else None
        record = ctx.org.table(obj.name).get(record_id) if record_id else None
        matches = [record_id] if record and not record["IsDeleted"] else []
    else:
        matches = ctx.org.by_external_id(obj, f.name, value)
    return obj, f, value, matches


def _multiple(ctx: Ctx, obj: schema.SObject, matches: list[str]) -> ApiResponse:
    return ApiResponse(300, [f"/services/data/v{ctx.version}.0/sobjects/{obj.name}/{i}" for i in matches])


def get_by_external_id(ctx: Ctx, req: ApiRequest) -> ApiResponse:
    obj, _, _, matches = _external(ctx, req)
    names = field_list(obj, req.query.get("fields"))
    if not matches:
        raise not_found()
    if len(matches) > 1:
        return _multiple(ctx, obj, matches)
    return ApiResponse(200, record_json(ctx, obj, ctx.org.table(obj.name)[matches[0]], names))


def upsert(ctx: Ctx, req: ApiRequest) -> ApiResponse:
    obj, f, value, matches = _external(ctx, req)
    body = dict(_body_object(req))
    if len(matches) > 1:
        return _multiple(ctx, obj, matches)
    for key in list(body):
        if key.lower() == f.name.lower():
            if str(body[key]).lower() != value.lower():
                raise sf_error(
                    400,
                    "INVALID_FIELD",
                    f"The value of {f.name} in the request body doesn't match the value in the request URL",
                    [f.name],
                )
            del body[key]
    if matches:
        record_id = _write(ctx, lambda txn: txn.update(obj, matches[0], body))
        return ApiResponse(200, {"id": record_id, "success": True, "errors": [], "created": False})
    if f.name == "Id":
        raise not_found()
    body[f.name] = value
    record_id = _write(ctx, lambda txn: txn.insert(obj, body))
    return ApiResponse(
        201,
        {"id": record_id, "success": True, "errors": [], "created": True},
        {"Location": f"/services/data/v{ctx.version}.0/sobjects/{obj.name}/{record_id}"},
    )


def delete_by_external_id(ctx: Ctx, req: ApiRequest) -> ApiResponse:
    obj, _, _, matches = _external(ctx, req)
    if not matches:
        raise not_found()
    if len(matches) > 1:
        return _multiple(ctx, obj, matches)
    _write(ctx, lambda txn: txn.delete(obj, matches[0]))
    return ApiResponse(204)


# -- replication -------------------------------------------------------------------------------------


def _window(ctx: Ctx, req: ApiRequest) -> tuple[int, int, int]:
    """start, end (seconds ignored, as Salesforce does) and the latest date covered."""
    bounds = []
    for name in ("start", "end"):
        raw = req.query.get(name)
        if not raw:
            raise sf_error(400, "MISSING_ARGUMENT", f"{name} parameter is required")
        ms = timefmt.parse_datetime(raw)
        if ms is None:
            raise sf_error(400, "INVALID_REPLICATION_DATE", f"{name} is not a valid ISO 8601 date/time: {raw}")
        bounds.append(ms - ms % 60_000)
    start, end = bounds
    now = ctx.sb.now_ms()
    if start >= end:
        raise sf_error(400, "INVALID_REPLICATION_DATE", "startDate must chronologically precede endDate")
    if start < now - 30 * 86_400_000:
        raise sf_error(400, "INVALID_REPLICATION_DATE", "startDate cannot be more than 30 days ago")
    latest = min(end, now - now % 60_000)
    return start, end, latest


def updated(ctx: Ctx, req: ApiRequest) -> ApiResponse:
    obj = _sobject(req.path_params["sobject"])
    start, end, latest = _window(ctx, req)
    found = [
        r["Id"]
        for r in ctx.org.table(obj.name).values()
        if not r.get("IsDeleted") and start <= r["SystemModstamp"] < min(end, latest + 60_000)
    ]
    return ApiResponse(200, {"ids": found, "latestDateCovered": timefmt.rest(latest)})


def deleted(ctx: Ctx, req: ApiRequest) -> ApiResponse:
    obj = _sobject(req.path_params["sobject"])
    start, end, latest = _window(ctx, req)
    bin_ = [r for r in ctx.org.table(obj.name).values() if r.get("IsDeleted") and _in_bin(ctx, r)]
    found = [
        {"id": r["Id"], "deletedDate": timefmt.rest(r["_deleted_ms"])}
        for r in sorted(bin_, key=lambda r: r["_deleted_ms"])
        if start <= r["_deleted_ms"] < end
    ]
    earliest = min((r["_deleted_ms"] for r in bin_), default=latest)
    return ApiResponse(
        200,
        {
            "deletedRecords": found,
            "earliestDateAvailable": timefmt.rest(earliest),
            "latestDateCovered": timefmt.rest(latest),
        },
    )


def _in_bin(ctx: Ctx, record: dict[str, Any]) -> bool:
    return record["_deleted_ms"] >= ctx.sb.now_ms() - ctx.sb.settings.recycle_bin_days * 86_400_000


# -- query -------------------------------------------------------------------------------------------


def batch_size(headers: dict[str, str], default: int = 2000) -> int:
    """``Sforce-Query-Options: batchSize=N``: 200..2000 (clamped); a cursor keeps the size it was opened with."""
    for part in headers.get("sforce-query-options", "").split(","):
        name, _, value = part.strip().partition("=")
        if name.strip() == "batchSize" and value.strip().isdigit():
            return min(max(int(value), 200), 2000)
    return default


def _page(
    ctx: Ctx, cursor: Cursor | None, rows: list[dict[str, Any]], total: int, offset: int, size: int, resource: str
) -> dict[str, Any]:
    end = offset + size
    body: dict[str, Any] = {"totalSize": total, "done": end >= len(rows)}
    if end < len(rows):
        org = ctx.org
        if cursor is None:
            cursor = Cursor(ctx.sb.ids.new("01g"), ctx.user.id, resource, rows, ctx.sb.clock(), size)
            mine = [c for c in org.cursors.values() if c.user_id == ctx.user.id]
            for old in mine[: max(0, len(mine) - MAX_CURSORS_PER_USER + 1)]:
                del org.cursors[old.locator]  # the oldest cursor is released, as in Salesforce
            org.cursors[cursor.locator] = cursor
        locator = cursor.locator
        if ctx.sb.gate.take_malformed_page():
            locator = ctx.sb.ids.new("01g")  # a locator the org never issued
        body["nextRecordsUrl"] = f"/services/data/v{ctx.version}.0/{resource}/{locator}-{end}"
    body["records"] = rows[offset:end]
    return body


def _run(ctx: Ctx, req: ApiRequest, include_deleted: bool) -> ApiResponse:
    text = req.query.get("q")
    if not text or not text.strip():
        raise sf_error(400, "MALFORMED_QUERY", "A query string has to be specified")
    query = soql.parse(text, ctx.org, ctx.sb.clock())
    total, rows = soql.execute(query, ctx.org, include_deleted=include_deleted, version=ctx.version)
    if query.count_only:
        return ApiResponse(200, {"totalSize": total, "done": True, "records": []})
    if include_deleted:
        rows = [r for r in rows if not _purged(ctx, query.sobject, r)]
        total = len(rows)
    resource = "queryAll" if include_deleted else "query"
    return ApiResponse(200, _page(ctx, None, rows, total, 0, batch_size(req.headers), resource))


def _purged(ctx: Ctx, obj: schema.SObject, row: dict[str, Any]) -> bool:
    record = ctx.org.table(obj.name).get(row["attributes"]["url"].rsplit("/", 1)[1])
    return bool(record and record.get("IsDeleted") and not _in_bin(ctx, record))


def query(ctx: Ctx, req: ApiRequest) -> ApiResponse:
    return _run(ctx, req, include_deleted=False)


def query_all(ctx: Ctx, req: ApiRequest) -> ApiResponse:
    return _run(ctx, req, include_deleted=True)


def query_more(ctx: Ctx, req: ApiRequest) -> ApiResponse:
    raw = req.path_params["locator"]
    locator, _, offset = raw.rpartition("-")
    cursor = ctx.org.cursors.get(locator)
    now = ctx.sb.clock()
    if cursor is not None and now - cursor.last_used > ctx.sb.settings.query_locator_ttl:
        del ctx.org.cursors[locator]
        cursor = None
    if cursor is None or cursor.user_id != ctx.user.id or not offset.isdigit() or int(offset) > len(cursor.rows):
        raise SfError(400, [{"message": "invalid query locator", "errorCode": "INVALID_QUERY_LOCATOR"}])
    cursor.last_used = now
    return ApiResponse(
        200,
        _page(
            ctx,
            cursor,
            cursor.rows,
            len(cursor.rows),
            int(offset),
            batch_size(req.headers, cursor.batch_size),
            cursor.resource,
        ),
    )


# -- limits ------------------------------------------------------------------------------------------


def limits(ctx: Ctx, req: ApiRequest) -> ApiResponse:
    org = ctx.org
    used = org.prune_calls(ctx.sb.clock())

    def pair(maximum: int, remaining: int | None = None) -> dict[str, int]:
        return {"Max": maximum, "Remaining": maximum if remaining is None else remaining}

    return ApiResponse(
        200,
        {
            "ConcurrentAsyncGetReportInstances": pair(200),
            "DailyApiRequests": pair(org.daily_api_limit, max(org.daily_api_limit - used, 0)),
            "DailyAsyncApexExecutions": pair(250_000),
            "DailyBulkApiBatches": pair(15_000),
            "DailyBulkV2QueryFileStorageMB": pair(976_562),
            "DailyBulkV2QueryJobs": pair(10_000),
            "DailyDeliveredPlatformEvents": pair(50_000),
            "DailyStreamingApiEvents": pair(1_000_000),
            "DataStorageMB": pair(5, 5),
            "FileStorageMB": pair(20, 20),
            "HourlyPublishedPlatformEvents": pair(250_000),
            "MonthlyPlatformEventsUsageEntitlement": pair(1_500_000),
            "SingleEmail": pair(5_000),
        },
    )
