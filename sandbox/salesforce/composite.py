"""Composite resources: sObject Collections (create, update, upsert, retrieve, delete; up to 200
records, allOrNone) and Composite (up to 25 subrequests with @{ref.path} references, allOrNone).
Each whole request is one API call."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from . import ids, schema
from .api import ApiRequest, ApiResponse, Ctx, match, parse_version
from .dml import Txn
from .errors import RecordError, SfError, not_found, sf_error
from .rest import field_list, record_json

MAX_RECORDS = 200
MAX_SUBREQUESTS = 25
ROLLED_BACK = {
    "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
    "message": "Record rolled back because not all records were valid and the request was using AllOrNone header",
    "fields": [],
}
HALTED = "The transaction was rolled back since another operation in the same transaction failed."
_REFERENCE = re.compile(r"@\{([A-Za-z0-9_]+)((?:\.[A-Za-z0-9_]+|\[\d+\])*)\}")
_REFERENCE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_]*$")


def _flag(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value)


class _RolledBack(Exception):
    pass


def _apply(ctx: Ctx, ops: list[Callable[[Txn], dict[str, Any]]], all_or_none: bool) -> list[dict[str, Any]]:
    """Runs each record in order; with allOrNone any failure undoes every record."""
    results: list[dict[str, Any]] = []
    try:
        with ctx.transaction() as txn:
            for op in ops:
                point = txn.savepoint()
                try:
                    results.append(op(txn))
                except RecordError as err:
                    txn.rollback_to(point)
                    results.append({"success": False, "errors": [err.result()]})
            if all_or_none and any(not r["success"] for r in results):
                raise _RolledBack
    except _RolledBack:
        results = [r if not r["success"] else {"success": False, "errors": [ROLLED_BACK]} for r in results]
    return results


def _collection(ctx: Ctx, req: ApiRequest) -> tuple[bool, list[dict[str, Any]]]:
    body = req.body
    if not isinstance(body, dict) or not isinstance(body.get("records"), list):
        raise sf_error(400, "JSON_PARSER_ERROR", "The request body must be an object with a records array")
    records = body["records"]
    if len(records) > MAX_RECORDS:
        raise sf_error(
            400, "EXCEEDED_ID_LIMIT", "record limit reached. cannot submit more than 200 records into this call"
        )
    if not all(isinstance(r, dict) for r in records):
        raise sf_error(400, "JSON_PARSER_ERROR", "Cannot deserialize instance of sobject from a non-object value")
    return _flag(body.get("allOrNone")) or ctx.force_all_or_none, records


def _type_of(record: dict[str, Any], required: bool = True) -> schema.SObject | None:
    attributes = record.get("attributes")
    name = attributes.get("type") if isinstance(attributes, dict) else None
    if name is None:
        if required:
            raise sf_error(400, "INVALID_TYPE", "Each record must have an attributes map with a type")
        return None
    obj = schema.sobject(str(name))
    if obj is None:
        raise sf_error(400, "INVALID_TYPE", f"sObject type '{name}' is not supported.")
    return obj


def _without_meta(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in ("attributes",) and k.lower() != "id"}


def create(ctx: Ctx, req: ApiRequest) -> ApiResponse:
    all_or_none, records = _collection(ctx, req)
    types = [_type_of(r) for r in records]

    def op(obj: schema.SObject, record: dict[str, Any]) -> Callable[[Txn], dict[str, Any]]:
        return lambda txn: {"id": txn.insert(obj, record), "success": True, "errors": []}

    return ApiResponse(
        200, _apply(ctx, [op(o, r) for o, r in zip(types, records, strict=True) if o is not None], all_or_none)
    )


def update(ctx: Ctx, req: ApiRequest) -> ApiResponse:
    all_or_none, records = _collection(ctx, req)
    in_path = schema.sobject(req.path_params["sobject"]) if "sobject" in req.path_params else None
    types = [_type_of(r, required=False) or in_path for r in records]

    def op(obj: schema.SObject | None, record: dict[str, Any]) -> Callable[[Txn], dict[str, Any]]:
        def run(txn: Txn) -> dict[str, Any]:
            raw = next((v for k, v in record.items() if k.lower() == "id"), None)
            if raw is None:
                raise RecordError("MISSING_ARGUMENT", "Id not specified in an update call", [])
            canonical = ids.to18(raw)
            target = obj or (schema.BY_PREFIX.get(ids.prefix_of(canonical)) if canonical else None)
            if canonical is None or target is None:
                raise RecordError("MALFORMED_ID", f"malformed id {raw}", [])
            return {"id": txn.update(target, raw, _without_meta(record)), "success": True, "errors": []}

        return run

    return ApiResponse(200, _apply(ctx, [op(o, r) for o, r in zip(types, records, strict=True)], all_or_none))


def upsert(ctx: Ctx, req: ApiRequest) -> ApiResponse:
    obj = schema.sobject(req.path_params["sobject"])
    if obj is None:
        raise not_found()
    name = req.path_params["field"]
    f = obj.field(name)
    if f is None or not f.external_id:
        raise sf_error(
            400, "INVALID_FIELD", f"Field name provided, {name} is not an External ID or indexed field for {obj.name}"
        )
    all_or_none, records = _collection(ctx, req)
    for record in records:
        if _type_of(record) is not obj:
            raise sf_error(400, "INVALID_TYPE", f"All records must be of type {obj.name}")
    values = [next((v for k, v in r.items() if k.lower() == f.name.lower()), None) for r in records]
    counts: dict[str, int] = {}
    for value in values:
        if value is not None:
            counts[str(value).lower()] = counts.get(str(value).lower(), 0) + 1

    def op(record: dict[str, Any], value: Any) -> Callable[[Txn], dict[str, Any]]:
        def run(txn: Txn) -> dict[str, Any]:
            if value is None:
                raise RecordError("MISSING_ARGUMENT", f"{f.name} not specified", [])
            if counts[str(value).lower()] > 1:
                raise RecordError("DUPLICATE_EXTERNAL_ID", f"Duplicate external id specified: {value}", [f.name])
            matches = txn.org.by_external_id(obj, f.name, value)
            if len(matches) > 1:
                raise RecordError(
                    "DUPLICATE_EXTERNAL_ID",
                    f"{f.label}: more than one record found for external id field: {matches}",
                    [f.name],
                )
            body = {k: v for k, v in record.items() if k != "attributes"}
            if matches:
                body = {k: v for k, v in body.items() if k.lower() != f.name.lower()}
                return {"id": txn.update(obj, matches[0], body), "success": True, "errors": [], "created": False}
            return {"id": txn.insert(obj, body), "success": True, "errors": [], "created": True}

        return run

    return ApiResponse(200, _apply(ctx, [op(r, v) for r, v in zip(records, values, strict=True)], all_or_none))


def _split(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return []


def retrieve(ctx: Ctx, req: ApiRequest) -> ApiResponse:
    obj = schema.sobject(req.path_params["sobject"])
    if obj is None:
        raise not_found()
    source: dict[str, Any] = req.body if req.method == "POST" and isinstance(req.body, dict) else req.query
    wanted, names = _split(source.get("ids")), _split(source.get("fields"))
    if not wanted:
        raise sf_error(400, "MISSING_ARGUMENT", "Required parameter 'ids' is missing")
    if not names:
        raise sf_error(400, "MISSING_ARGUMENT", "Required parameter 'fields' is missing")
    if len(wanted) > 2000:
        raise sf_error(400, "EXCEEDED_ID_LIMIT", "too many ids: a retrieve call takes up to 2000")
    columns = field_list(obj, ",".join(names))
    out: list[dict[str, Any] | None] = []
    for raw in wanted:
        canonical = ids.to18(raw)
        record = ctx.org.table(obj.name).get(canonical) if canonical else None
        out.append(record_json(ctx, obj, record, columns) if record and not record.get("IsDeleted") else None)
    return ApiResponse(200, out)


def delete(ctx: Ctx, req: ApiRequest) -> ApiResponse:
    wanted = _split(req.query.get("ids"))
    if not wanted:
        raise sf_error(400, "MISSING_ARGUMENT", "Required parameter 'ids' is missing")
    if len(wanted) > MAX_RECORDS:
        raise sf_error(
            400, "EXCEEDED_ID_LIMIT", "record limit reached. cannot submit more than 200 records into this call"
        )
    all_or_none = _flag(req.query.get("allOrNone")) or ctx.force_all_or_none

    def op(raw: str) -> Callable[[Txn], dict[str, Any]]:
        return lambda txn: {"id": txn.delete(None, raw), "success": True, "errors": []}

    return ApiResponse(200, _apply(ctx, [op(raw) for raw in wanted], all_or_none))


# -- Composite ---------------------------------------------------------------------------------------


class _BadReference(Exception):
    def __init__(self, ref: str, path: str) -> None:
        super().__init__(ref)
        self.message = (
            f"Invalid reference specified. No value for {ref}{path} found in {ref}. Provided referenceId ('{ref}') "
            "must start with a letter or a number, and it can contain only letters, numbers and underscores ('_')."
        )


def _resolve(match_: re.Match[str], done: dict[str, ApiResponse]) -> Any:
    ref, path = match_.group(1), match_.group(2)
    response = done.get(ref)
    if response is None or response.status >= 400:
        raise _BadReference(ref, path)
    value: Any = response.body
    for step in re.findall(r"\.([A-Za-z0-9_]+)|\[(\d+)\]", path):
        key, index = step
        try:
            value = value[key] if key else value[int(index)]
        except (KeyError, IndexError, TypeError):
            raise _BadReference(ref, path) from None
    if value is None:
        raise _BadReference(ref, path)
    return value


def _substitute(value: Any, done: dict[str, ApiResponse]) -> Any:
    if isinstance(value, str):
        whole = _REFERENCE.fullmatch(value)
        if whole:
            return _resolve(whole, done)
        return _REFERENCE.sub(lambda m: str(_resolve(m, done)), value)
    if isinstance(value, dict):
        return {k: _substitute(v, done) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, done) for v in value]
    return value


def _dispatch(ctx: Ctx, method: str, url: str, body: Any, headers: dict[str, str]) -> ApiResponse:
    parts = urlsplit(url)
    segments = parts.path.split("/")
    if len(segments) < 4 or segments[1:3] != ["services", "data"]:
        return ApiResponse(404, not_found().body)
    try:
        version = parse_version(segments[3], ctx.sb)
        found = match(ctx.sb.api_routes, method, parts.path)
        if found is None:
            raise not_found()
        api_route, params = found
        if not api_route.composite:
            raise sf_error(400, "INVALID_TYPE_FOR_OPERATION", f"{parts.path} isn't supported in a composite request")
        sub_ctx = dataclasses.replace(ctx, version=version)
        request = ApiRequest(
            method, params, dict(parse_qsl(parts.query)), {k.lower(): v for k, v in headers.items()}, body
        )
        return api_route.handlers[method](sub_ctx, request)
    except SfError as err:
        return ApiResponse(err.status, err.body)
    except RecordError as err:
        rest = err.rest()
        return ApiResponse(rest.status, rest.body)


def _failed(response: ApiResponse) -> bool:
    if response.status >= 400:
        return True
    body = response.body
    return isinstance(body, list) and any(isinstance(r, dict) and r.get("success") is False for r in body)


def composite(ctx: Ctx, req: ApiRequest) -> ApiResponse:
    body = req.body
    if not isinstance(body, dict) or not isinstance(body.get("compositeRequest"), list):
        raise sf_error(400, "JSON_PARSER_ERROR", "The request body must be an object with a compositeRequest array")
    subrequests = body["compositeRequest"]
    if len(subrequests) > MAX_SUBREQUESTS:
        raise sf_error(400, "LIMIT_EXCEEDED", f"A composite request can't have more than {MAX_SUBREQUESTS} subrequests")
    seen: set[str] = set()
    for sub in subrequests:
        if not isinstance(sub, dict) or not sub.get("method") or not sub.get("url"):
            raise sf_error(400, "JSON_PARSER_ERROR", "Each subrequest needs method, url and referenceId")
        ref = sub.get("referenceId")
        if not isinstance(ref, str) or not _REFERENCE_ID.match(ref):
            raise sf_error(
                400,
                "INVALID_INPUT",
                f"Provided referenceId ('{ref}') must start with a letter or a number, and it can contain only letters, "
                "numbers and underscores ('_').",
            )
        if ref in seen:
            raise sf_error(400, "INVALID_INPUT", f"Duplicate referenceId provided in the request: {ref}")
        seen.add(ref)
    all_or_none = _flag(body.get("allOrNone"))
    shared = Txn(ctx.sb, ctx.org, ctx.user.id, ctx.origin) if all_or_none else None
    run_ctx = dataclasses.replace(ctx, shared=shared, force_all_or_none=all_or_none)
    done: dict[str, ApiResponse] = {}
    out: list[dict[str, Any]] = []
    failed_at: int | None = None
    for index, sub in enumerate(subrequests):
        ref = sub["referenceId"]
        if failed_at is not None:
            response = ApiResponse(400, [{"errorCode": "PROCESSING_HALTED", "message": HALTED}])
        else:
            try:
                url = _substitute(str(sub["url"]), done)
                sub_body = _substitute(sub.get("body"), done)
            except _BadReference as err:
                response = ApiResponse(400, [{"errorCode": "PROCESSING_HALTED", "message": err.message}])
            else:
                response = _dispatch(run_ctx, str(sub["method"]).upper(), url, sub_body, sub.get("httpHeaders") or {})
            if all_or_none and _failed(response):
                failed_at = index
        done[ref] = response
        out.append(
            {
                "body": response.body,
                "httpHeaders": {k: v for k, v in response.headers.items() if k.lower() != "content-length"},
                "httpStatusCode": response.status,
                "referenceId": ref,
            }
        )
    if shared is not None:
        if failed_at is not None:
            shared.rollback()
            for item in out[:failed_at]:
                item.update(
                    body=[{"errorCode": "PROCESSING_HALTED", "message": HALTED}], httpHeaders={}, httpStatusCode=400
                )
        else:
            shared.commit()
    return ApiResponse(200, {"compositeResponse": out})
