"""The declarative integration document: what ``extra.declarative`` of an IntegrationDefinition
may say (README.md beside this file), parsed into frozen dataclasses. Pure, no I/O: the registry
validates with it on upsert; the declarative adapter and the mapping service read with it.

Every error is an InvalidArgument whose field is the document path of the offending key, e.g.
``definition.extra.declarative.resources.patient.list.params``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from libs.errors import InvalidArgument
from libs.fhir_patient import CANONICAL_FIELDS

ROOT = "definition.extra.declarative"
REASON = "INVALID_DECLARATIVE_DEFINITION"
# A resource name of the document -> the entity it syncs, and that entity's hub fields.
RESOURCE_ENTITIES = {"patient": "ENTITY_TYPE_PATIENT"}
HUB_FIELDS = {"ENTITY_TYPE_PATIENT": CANONICAL_FIELDS}
# auth.kind -> the registry auth kinds whose tokens it sends.
AUTH_KINDS = {
    "api_key": ("AUTH_KIND_API_KEY",),
    "bearer": (
        "AUTH_KIND_OAUTH2_AUTHORIZATION_CODE",
        "AUTH_KIND_OAUTH2_CLIENT_CREDENTIALS",
        "AUTH_KIND_OAUTH2_PASSWORD",
        "AUTH_KIND_OAUTH2_JWT_BEARER",
        "AUTH_KIND_SMART_BACKEND_SERVICES",
    ),
}
TRANSFORMS = ("e164_phone", "date", "lower", "upper", "country_alpha2")
ENUM_PREFIX = "enum:"
DIRECTIONS = ("both", "to_hub", "to_vendor")
LIST_PLACEHOLDERS = ("since", "page_size", "cursor")
WRITE_METHODS = ("POST", "PUT", "PATCH")
_JSON_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z_][A-Za-z0-9_-]*)*$")
_HEADER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$")
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
_FORBIDDEN_HEADERS = {"authorization", "host", "content-length", "cookie"}


@dataclass(frozen=True)
class Auth:
    kind: str  # api_key | bearer
    header: str
    prefix: str

    def headers(self, token: str) -> dict[str, str]:
        return {self.header: f"{self.prefix}{token}"}


@dataclass(frozen=True)
class RateLimit:
    requests: int
    per_seconds: float
    scope: str  # connection (one budget per config) | integration (one for every config)


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # may hold {id}
    result: str = ""  # JSON path of the record in the response; "" = the body itself
    idempotency_key_header: str = ""
    created_status: int = 201  # the status of a create that made a record; other 2xx matched one

    def url_path(self, record_id: str = "") -> str:
        return self.path.replace("{id}", quote(record_id, safe=""))


@dataclass(frozen=True)
class ListOperation:
    method: str
    path: str
    params: dict[str, str]  # values may hold {since}, {page_size}, {cursor}
    items: str  # JSON path of the array; "" = the body is the array
    next: str  # JSON path of the next cursor (or link); absent/null/"" = last page
    next_type: str  # cursor | link
    updated_field: str
    max_page_size: int

    def query(self, values: dict[str, str | int | None]) -> dict[str, str | int]:
        """The params with placeholders filled; a param whose placeholder has no value is left out.
        A param that is one placeholder keeps the value's type (a JSON body gets a number)."""
        query: dict[str, str | int] = {}
        for name, template in self.params.items():
            wanted = _PLACEHOLDER.findall(template)
            if any(values.get(key) is None for key in wanted):
                continue
            whole = _PLACEHOLDER.fullmatch(template)
            query[name] = (
                values[whole.group(1)] if whole else _PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), template)
            )
        return query


@dataclass(frozen=True)
class FieldMapping:
    hub_field: str
    vendor_field: str  # dotted path into the vendor record
    transform: str  # "" or a TRANSFORMS name or enum:{"vendor value": "hub value", ...}
    direction: str
    required: bool

    @property
    def reads(self) -> bool:
        return self.direction in ("both", "to_hub")

    @property
    def writes(self) -> bool:
        return self.direction in ("both", "to_vendor")

    @property
    def enum(self) -> dict[str, str] | None:
        return json.loads(self.transform[len(ENUM_PREFIX) :]) if self.transform.startswith(ENUM_PREFIX) else None


@dataclass(frozen=True)
class Resource:
    name: str
    entity_type: str
    id_field: str
    identifier_system: str
    list: ListOperation
    create: Operation
    update: Operation
    get: Operation | None
    field_mappings: tuple[FieldMapping, ...]


@dataclass(frozen=True)
class Declarative:
    integration_type: str
    api_base_url: str
    auth: Auth
    rate_limit: RateLimit | None
    concurrency: int
    headers: dict[str, str]
    error_message: str  # JSON path of the vendor's error message in an error body
    resources: dict[str, Resource]  # by entity type name

    def resource(self, entity_type: str) -> Resource | None:
        return self.resources.get(entity_type)


def has_declarative(document: dict) -> bool:
    extra = document.get("extra")
    return isinstance(extra, dict) and "declarative" in extra


def get_path(data: Any, path: str) -> tuple[bool, Any]:
    """(found, value) at a dotted path; "" is the data itself."""
    if not path:
        return True, data
    for key in path.split("."):
        if not isinstance(data, dict) or key not in data:
            return False, None
        data = data[key]
    return True, data


def set_path(data: dict, path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for key in parents:
        data = data.setdefault(key, {})
    data[last] = value


def parse(document: dict) -> Declarative:
    """The declarative part of a definition document; InvalidArgument naming the offending key."""
    declarative = _object((document.get("extra") or {}).get("declarative"), ROOT)
    _only(
        declarative,
        ROOT,
        {"auth", "rate_limit", "concurrency", "headers", "errors", "resources"},
        {"auth", "resources"},
    )
    auth = _auth(declarative["auth"], document)
    resources = _object(declarative["resources"], f"{ROOT}.resources")
    if not resources:
        raise _invalid(f"{ROOT}.resources", "names no resource")
    parsed = {}
    for name, value in resources.items():
        if name not in RESOURCE_ENTITIES:
            raise _invalid(f"{ROOT}.resources.{name}", f"is not one of {', '.join(RESOURCE_ENTITIES)}")
        resource = _resource(name, value, f"{ROOT}.resources.{name}", document)
        parsed[resource.entity_type] = resource
    capabilities = set(document.get("capabilities") or [])
    if not capabilities <= set(parsed):
        raise _invalid("definition.capabilities", "names an entity the declarative resources do not serve")
    errors = _object(declarative.get("errors", {}), f"{ROOT}.errors")
    _only(errors, f"{ROOT}.errors", {"message"})
    headers = _object(declarative.get("headers", {}), f"{ROOT}.headers")
    for name, value in headers.items():
        if not _HEADER.match(name) or name.lower() in _FORBIDDEN_HEADERS or name.lower() == auth.header.lower():
            raise _invalid(f"{ROOT}.headers", "holds a header name that is not allowed")
        if not isinstance(value, str):
            raise _invalid(f"{ROOT}.headers.{name}", "must be a string")
    return Declarative(
        integration_type=str(document.get("integration_type", "")),
        api_base_url=_base_url(document),
        auth=auth,
        rate_limit=_rate_limit(declarative["rate_limit"]) if "rate_limit" in declarative else None,
        concurrency=_int(declarative, "concurrency", ROOT, default=10, low=1, high=100),
        headers=dict(headers),
        error_message=_json_path(errors, "message", f"{ROOT}.errors", default=""),
        resources=parsed,
    )


# --- parts ------------------------------------------------------------------------------------------


def _auth(value: Any, document: dict) -> Auth:
    where = f"{ROOT}.auth"
    auth = _object(value, where)
    _only(auth, where, {"kind", "header", "prefix"}, {"kind"})
    kind = auth["kind"]
    if kind not in AUTH_KINDS:
        raise _invalid(f"{where}.kind", f"must be one of {', '.join(AUTH_KINDS)}")
    registered = {document.get("auth_kind"), *(document.get("supported_auth_kinds") or [])}
    if not registered & set(AUTH_KINDS[kind]):
        raise _invalid(f"{where}.kind", "does not match the definition's auth_kind or supported_auth_kinds")
    default_header = "X-Api-Key" if kind == "api_key" else "Authorization"
    header = _string(auth, "header", where, default=default_header)
    if not _HEADER.match(header) or header.lower() in _FORBIDDEN_HEADERS - {"authorization"}:
        raise _invalid(f"{where}.header", "is not an allowed header name")
    prefix = _string(auth, "prefix", where, default="" if kind == "api_key" else "Bearer ")
    return Auth(kind, header, prefix)


def _rate_limit(value: Any) -> RateLimit:
    where = f"{ROOT}.rate_limit"
    limit = _object(value, where)
    _only(limit, where, {"requests", "per_seconds", "scope"}, {"requests", "per_seconds"})
    per_seconds = limit["per_seconds"]
    if isinstance(per_seconds, bool) or not isinstance(per_seconds, int | float) or not 0 < per_seconds <= 86_400:
        raise _invalid(f"{where}.per_seconds", "must be a number of seconds in (0, 86400]")
    scope = _string(limit, "scope", where, default="connection")
    if scope not in ("connection", "integration"):
        raise _invalid(f"{where}.scope", "must be connection or integration")
    return RateLimit(_int(limit, "requests", where, default=None, low=1, high=100_000), float(per_seconds), scope)


def _resource(name: str, value: Any, where: str, document: dict) -> Resource:
    resource = _object(value, where)
    keys = {"id_field", "identifier_system", "list", "get", "create", "update", "field_mappings"}
    _only(resource, where, keys, keys - {"get"})
    entity_type = RESOURCE_ENTITIES[name]
    listing = _list_operation(resource["list"], f"{where}.list")
    id_field = _json_path(resource, "id_field", where, default=None)
    system = _string(resource, "identifier_system", where, default=None)
    parts = urlsplit(system)
    if not (parts.scheme in ("http", "https") and parts.netloc) and not system.startswith("urn:"):
        raise _invalid(f"{where}.identifier_system", "must be an absolute URI")
    create = _operation(resource["create"], f"{where}.create", write=True)
    if not create.idempotency_key_header:
        # DESIGN: every write carries an idempotency key or is an upsert; a retried batch must not duplicate.
        raise _invalid(f"{where}.create.idempotency_key_header", "is required: creates must be idempotent")
    update = _operation(resource["update"], f"{where}.update", write=True)
    if "{id}" not in update.path:
        raise _invalid(f"{where}.update.path", "must hold {id}")
    get = _operation(resource["get"], f"{where}.get", write=False) if "get" in resource else None
    if get is not None and "{id}" not in get.path:
        raise _invalid(f"{where}.get.path", "must hold {id}")
    mappings = _field_mappings(
        resource["field_mappings"], f"{where}.field_mappings", entity_type, {id_field, listing.updated_field}
    )
    return Resource(name, entity_type, id_field, system, listing, create, update, get, mappings)


def _operation(value: Any, where: str, *, write: bool) -> Operation:
    operation = _object(value, where)
    keys = {"method", "path", "result"} | ({"idempotency_key_header", "created_status"} if write else set())
    _only(operation, where, keys, {"method", "path"})
    method = _method(operation, where, WRITE_METHODS if write else ("GET",))
    header = _string(operation, "idempotency_key_header", where, default="")
    if header and not _HEADER.match(header):
        raise _invalid(f"{where}.idempotency_key_header", "is not a header name")
    return Operation(
        method=method,
        path=_api_path(operation, where, {"id"}),
        result=_json_path(operation, "result", where, default=""),
        idempotency_key_header=header,
        created_status=_int(operation, "created_status", where, default=201, low=200, high=299),
    )


def _list_operation(value: Any, where: str) -> ListOperation:
    listing = _object(value, where)
    keys = {"method", "path", "params", "items", "next", "next_type", "updated_field", "max_page_size"}
    _only(listing, where, keys, {"method", "path", "params", "items", "next", "updated_field"})
    params = _object(listing["params"], f"{where}.params")
    used = set()
    for name, template in params.items():
        if not isinstance(template, str):
            raise _invalid(f"{where}.params.{name}", "must be a string")
        found = set(_PLACEHOLDER.findall(template))
        if found - set(LIST_PLACEHOLDERS):
            raise _invalid(f"{where}.params.{name}", f"may hold only {{{'}, {'.join(LIST_PLACEHOLDERS)}}}")
        used |= found
    next_type = _string(listing, "next_type", where, default="cursor")
    if next_type not in ("cursor", "link"):
        raise _invalid(f"{where}.next_type", "must be cursor or link")
    required = {"since", "page_size"} | ({"cursor"} if next_type == "cursor" else set())
    if not required <= used:
        missing = ", ".join(f"{{{p}}}" for p in sorted(required - used))
        raise _invalid(f"{where}.params", f"must use {missing}")
    return ListOperation(
        method=_method(listing, where, ("GET", "POST")),
        path=_api_path(listing, where, set()),
        params=dict(params),
        items=_json_path(listing, "items", where, default=None, empty=True),
        next=_json_path(listing, "next", where, default=None),
        next_type=next_type,
        updated_field=_json_path(listing, "updated_field", where, default=None),
        max_page_size=_int(listing, "max_page_size", where, default=100, low=1, high=10_000),
    )


def _field_mappings(value: Any, where: str, entity_type: str, reserved: set[str]) -> tuple[FieldMapping, ...]:
    if not isinstance(value, list) or not value:
        raise _invalid(where, "must be a non-empty list")
    mappings = []
    seen: dict[tuple[str, str], int] = {}
    for i, item in enumerate(value):
        at = f"{where}[{i}]"
        mapping = _object(item, at)
        _only(
            mapping,
            at,
            {"hub_field", "vendor_field", "transform", "direction", "required"},
            {"hub_field", "vendor_field"},
        )
        hub_field = _string(mapping, "hub_field", at, default=None)
        if hub_field not in HUB_FIELDS[entity_type]:
            raise _invalid(f"{at}.hub_field", "is not a canonical field of the entity")
        vendor_field = _json_path(mapping, "vendor_field", at, default=None)
        if vendor_field in reserved:
            raise _invalid(f"{at}.vendor_field", "is the record's id or update-time field")
        transform = _transform(_string(mapping, "transform", at, default=""), f"{at}.transform")
        direction = _string(mapping, "direction", at, default="both")
        if direction not in DIRECTIONS:
            raise _invalid(f"{at}.direction", f"must be one of {', '.join(DIRECTIONS)}")
        required = mapping.get("required", False)
        if not isinstance(required, bool):
            raise _invalid(f"{at}.required", "must be true or false")
        parsed = FieldMapping(hub_field, vendor_field, transform, direction, required)
        # One field per direction on each side, else a value would have two sources.
        for side, name in (("hub", hub_field), ("vendor", vendor_field)):
            for way, used in (("to_hub", parsed.reads), ("to_vendor", parsed.writes)):
                if used and seen.setdefault((side + way, name), i) != i:
                    raise _invalid(f"{at}.{side}_field", f"is mapped twice {way}")
        mappings.append(parsed)
    for a in mappings:
        for b in mappings:
            if a is not b and b.vendor_field.startswith(a.vendor_field + "."):
                raise _invalid(where, "maps a vendor field and a field inside it")
    return tuple(mappings)


def _transform(value: str, where: str) -> str:
    if not value or value in TRANSFORMS:
        return value
    if value.startswith(ENUM_PREFIX):
        try:
            table = json.loads(value[len(ENUM_PREFIX) :])
        except ValueError:
            table = None
        if (
            isinstance(table, dict)
            and table
            and all(isinstance(k, str) and isinstance(v, str) for k, v in table.items())
            and len(set(table.values())) == len(table)
        ):
            return value
        raise _invalid(where, 'enum: must be a JSON object of distinct strings, {"vendor value": "hub value"}')
    raise _invalid(where, f"must be one of {', '.join(TRANSFORMS)} or enum:{{...}}")


# --- scalars ----------------------------------------------------------------------------------------


def _invalid(where: str, message: str) -> InvalidArgument:
    return InvalidArgument(f"{where} {message}", field=where, reason=REASON)


def _object(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        raise _invalid(where, "must be an object")
    return value


def _only(value: dict, where: str, allowed: set[str], required: set[str] = frozenset()) -> None:
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise _invalid(f"{where}.{unknown[0]}", "is not a known key")  # a typo would otherwise be ignored
    missing = sorted(required - set(value))
    if missing:
        raise _invalid(f"{where}.{missing[0]}", "is required")


def _string(value: dict, key: str, where: str, *, default: str | None) -> str:
    if key not in value and default is not None:
        return default
    found = value.get(key)
    if not isinstance(found, str) or (default is None and not found):
        raise _invalid(f"{where}.{key}", "must be a non-empty string" if default is None else "must be a string")
    return found


def _int(value: dict, key: str, where: str, *, default: int | None, low: int, high: int) -> int:
    if key not in value and default is not None:
        return default
    found = value.get(key)
    # Struct carries every number as a double: 10.0 is 10.
    if isinstance(found, bool) or not isinstance(found, int | float) or found != int(found) or not low <= found <= high:
        raise _invalid(f"{where}.{key}", f"must be an integer in [{low}, {high}]")
    return int(found)


def _json_path(value: dict, key: str, where: str, *, default: str | None, empty: bool = False) -> str:
    found = _string(value, key, where, default=default) if not empty else value.get(key)
    if not isinstance(found, str) or (found and not _JSON_PATH.match(found)):
        raise _invalid(f"{where}.{key}", "must be a dotted JSON path")
    return found


def _method(value: dict, where: str, allowed: tuple[str, ...]) -> str:
    method = _string(value, "method", where, default=None).upper()
    if method not in allowed:
        raise _invalid(f"{where}.method", f"must be one of {', '.join(allowed)}")
    return method


def _api_path(value: dict, where: str, placeholders: set[str]) -> str:
    path = _string(value, "path", where, default=None)
    if not path.startswith("/") or "?" in path or "#" in path or "//" in path:
        raise _invalid(f"{where}.path", "must be an absolute path on the API host, without a query")
    if set(_PLACEHOLDER.findall(path)) - placeholders or path.count("{") != len(_PLACEHOLDER.findall(path)):
        raise _invalid(f"{where}.path", "holds a placeholder that is not allowed here")
    return path


def _base_url(document: dict) -> str:
    url = str((document.get("endpoints") or {}).get("api_base_url") or "")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise _invalid("definition.endpoints.api_base_url", "must be an absolute http(s) URL")
    return url.rstrip("/")
