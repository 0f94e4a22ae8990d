"""FHIR search (http://hl7.org/fhir/R4/search.html) over in-memory resources: the parameters each served
type supports, parsing with modifiers, prefixes and OR lists, matching, _sort and _include."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from .outcome import bad_request

INF = float("inf")
Range = tuple[float, float]  # [lo, hi) in microseconds since the epoch

_DATE = re.compile(
    r"^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?(Z|[+-]\d{2}:\d{2})?)?)?)?$"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def date_range(text: str) -> Range:
    """The interval a FHIR date / dateTime / instant covers at its own precision (search.html#date)."""
    match = _DATE.match(text)
    if not match:
        raise ValueError("not a FHIR date")
    y, mo, d, h, mi, s, frac, tz = match.groups()
    if tz in (None, "Z"):
        zone: timezone = UTC
    else:
        sign = -1 if tz[0] == "-" else 1
        zone = timezone(sign * timedelta(hours=int(tz[1:3]), minutes=int(tz[4:6])))
    year = int(y)
    if mo is None:
        lo, hi = datetime(year, 1, 1, tzinfo=UTC), datetime(year + 1, 1, 1, tzinfo=UTC)
    elif d is None:
        lo = datetime(year, int(mo), 1, tzinfo=UTC)
        hi = datetime(year + int(mo) // 12, int(mo) % 12 + 1, 1, tzinfo=UTC)
    elif h is None:
        lo = datetime(year, int(mo), int(d), tzinfo=UTC)
        hi = lo + timedelta(days=1)
    else:
        lo = datetime(year, int(mo), int(d), int(h), int(mi), int(s or 0), tzinfo=zone)
        if s is None:
            hi = lo + timedelta(minutes=1)
        elif frac is None:
            hi = lo + timedelta(seconds=1)
        else:
            digits = frac[:6]
            lo += timedelta(microseconds=int(digits.ljust(6, "0")))
            hi = lo + timedelta(microseconds=10 ** (6 - len(digits)))
    return _micros(lo), _micros(hi)


def _micros(value: datetime) -> float:
    delta = value - _EPOCH
    return float((delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds)


def normalize(text: str) -> str:
    """Case- and accent-insensitive form used by string search."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


@dataclass(frozen=True)
class Token:
    system: str | None
    code: str


@dataclass(frozen=True)
class SearchParam:
    name: str
    type: str  # string | token | date | reference
    expression: str
    extract: Callable[[dict[str, Any]], list[Any]]
    targets: tuple[str, ...] = ()


def _walk(node: Any, path: Iterable[str]) -> list[Any]:
    nodes = [node]
    for key in path:
        nxt: list[Any] = []
        for item in nodes:
            value = item.get(key) if isinstance(item, dict) else None
            if isinstance(value, list):
                nxt.extend(value)
            elif value is not None:
                nxt.append(value)
        nodes = nxt
    return nodes


def _strings(*paths: str) -> Callable[[dict[str, Any]], list[Any]]:
    return lambda r: [v for p in paths for v in _walk(r, p.split(".")) if isinstance(v, str)]


def _identifiers(r: dict[str, Any]) -> list[Any]:
    return [
        Token(i.get("system"), i["value"]) for i in _walk(r, ["identifier"]) if isinstance(i, dict) and "value" in i
    ]


def _code(path: str, system: str | None = None) -> Callable[[dict[str, Any]], list[Any]]:
    return lambda r: [Token(system, str(v).lower() if isinstance(v, bool) else v) for v in _walk(r, path.split("."))]


def _codings(path: str) -> Callable[[dict[str, Any]], list[Any]]:
    def extract(r: dict[str, Any]) -> list[Any]:
        return [
            Token(c.get("system"), c["code"])
            for concept in _walk(r, path.split("."))
            for c in (concept.get("coding") or [] if isinstance(concept, dict) else [])
            if isinstance(c, dict) and "code" in c
        ]

    return extract


def _telecom(system: str | None) -> Callable[[dict[str, Any]], list[Any]]:
    def extract(r: dict[str, Any]) -> list[Any]:
        points = [t for t in _walk(r, ["telecom"]) if isinstance(t, dict) and "value" in t]
        return [Token(None, t["value"]) for t in points if system is None or t.get("system") == system]

    return extract


def _dates(path: str) -> Callable[[dict[str, Any]], list[Any]]:
    def extract(r: dict[str, Any]) -> list[Any]:
        found = []
        for v in _walk(r, path.split(".")):
            if isinstance(v, str):
                try:
                    found.append(date_range(v))
                except ValueError:
                    continue
            elif isinstance(v, dict):  # Period: open ends are unbounded
                lo = date_range(v["start"])[0] if "start" in v else -INF
                hi = date_range(v["end"])[1] if "end" in v else INF
                found.append((lo, hi))
        return found

    return extract


def parse_reference(text: str) -> tuple[str | None, str]:
    """("Patient", "123") from "Patient/123", ".../Patient/123/_history/2" or (None, "123") from "123"."""
    parts = [p for p in text.split("/") if p]
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    if len(parts) >= 2:
        return parts[-2], parts[-1]
    return None, text


def _refs(path: str, only: str | None = None) -> Callable[[dict[str, Any]], list[Any]]:
    def extract(r: dict[str, Any]) -> list[Any]:
        found = []
        for v in _walk(r, path.split(".")):
            if isinstance(v, dict) and isinstance(v.get("reference"), str):
                kind, ref_id = parse_reference(v["reference"])
                if kind is not None and (only is None or kind == only):
                    found.append((kind, ref_id))
        return found

    return extract


def _names(r: dict[str, Any]) -> list[Any]:
    return _strings("name.family", "name.given", "name.text", "name.prefix", "name.suffix")(r)


_COMMON = (
    SearchParam("_id", "token", "Resource.id", lambda r: [Token(None, r["id"])] if "id" in r else []),
    SearchParam("_lastUpdated", "date", "Resource.meta.lastUpdated", _dates("meta.lastUpdated")),
)
_PEOPLE = (
    SearchParam("identifier", "token", "{t}.identifier", _identifiers),
    SearchParam("family", "string", "{t}.name.family", _strings("name.family")),
    SearchParam("given", "string", "{t}.name.given", _strings("name.given")),
    SearchParam("name", "string", "{t}.name", _names),
    SearchParam("gender", "token", "{t}.gender", _code("gender", "http://hl7.org/fhir/administrative-gender")),
    SearchParam("phone", "token", "{t}.telecom.where(system='phone')", _telecom("phone")),
    SearchParam("email", "token", "{t}.telecom.where(system='email')", _telecom("email")),
    SearchParam("telecom", "token", "{t}.telecom", _telecom(None)),
    SearchParam("active", "token", "{t}.active", _code("active")),
)
_SERVICE_TYPE = SearchParam("service-type", "token", "{t}.serviceType", _codings("serviceType"))
PARAMS: dict[str, tuple[SearchParam, ...]] = {
    "Patient": (
        *_PEOPLE,
        SearchParam("birthdate", "date", "Patient.birthDate", _dates("birthDate")),
    ),
    "Practitioner": _PEOPLE,
    "Appointment": (
        SearchParam("identifier", "token", "Appointment.identifier", _identifiers),
        SearchParam("date", "date", "Appointment.start", _dates("start")),
        SearchParam("status", "token", "Appointment.status", _code("status", "http://hl7.org/fhir/appointmentstatus")),
        SearchParam("patient", "reference", "Appointment.participant.actor.where(resolve() is Patient)",
                    _refs("participant.actor", "Patient"), ("Patient",)),
        SearchParam("practitioner", "reference", "Appointment.participant.actor.where(resolve() is Practitioner)",
                    _refs("participant.actor", "Practitioner"), ("Practitioner",)),
        SearchParam("actor", "reference", "Appointment.participant.actor", _refs("participant.actor"),
                    ("Patient", "Practitioner", "HealthcareService")),
        SearchParam("slot", "reference", "Appointment.slot", _refs("slot"), ("Slot",)),
        _SERVICE_TYPE,
    ),
    "Schedule": (
        SearchParam("identifier", "token", "Schedule.identifier", _identifiers),
        SearchParam("actor", "reference", "Schedule.actor", _refs("actor"),
                    ("Patient", "Practitioner", "HealthcareService")),
        SearchParam("active", "token", "Schedule.active", _code("active")),
        SearchParam("date", "date", "Schedule.planningHorizon", _dates("planningHorizon")),
        _SERVICE_TYPE,
    ),
    "Slot": (
        SearchParam("identifier", "token", "Slot.identifier", _identifiers),
        SearchParam("schedule", "reference", "Slot.schedule", _refs("schedule"), ("Schedule",)),
        SearchParam("start", "date", "Slot.start", _dates("start")),
        SearchParam("status", "token", "Slot.status", _code("status", "http://hl7.org/fhir/slotstatus")),
        _SERVICE_TYPE,
    ),
    "HealthcareService": (
        SearchParam("identifier", "token", "HealthcareService.identifier", _identifiers),
        SearchParam("name", "string", "HealthcareService.name", _strings("name")),
        SearchParam("active", "token", "HealthcareService.active", _code("active")),
        SearchParam("service-type", "token", "HealthcareService.type", _codings("type")),
        SearchParam("service-category", "token", "HealthcareService.category", _codings("category")),
    ),
    "Subscription": (
        SearchParam("status", "token", "Subscription.status",
                    _code("status", "http://hl7.org/fhir/subscription-status")),
        SearchParam("type", "token", "Subscription.channel.type",
                    _code("channel.type", "http://hl7.org/fhir/subscription-channel-type")),
        SearchParam("url", "uri", "Subscription.channel.endpoint", _strings("channel.endpoint")),
        SearchParam("criteria", "string", "Subscription.criteria", _strings("criteria")),
        SearchParam("payload", "token", "Subscription.channel.payload", _code("channel.payload")),
    ),
}  # fmt: skip


def params_for(resource_type: str) -> dict[str, SearchParam]:
    own = {p.name: p for p in PARAMS[resource_type]}
    return {p.name: p for p in _COMMON} | own


# Result parameters the server understands; _format and _pretty are handled by content negotiation.
CONTROL = {"_count", "_sort", "_include", "_summary", "_total", "_elements", "_format", "_pretty"}
_PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_\-:.]{1,64}$")


@dataclass
class Clause:
    param: SearchParam
    modifier: str | None
    values: list[Any]

    def matches(self, resource: dict[str, Any]) -> bool:
        found = self.param.extract(resource)
        if self.modifier == "missing":
            return (not found) == self.values[0]
        hit = any(_match(self.param.type, self.modifier, value, want) for value in found for want in self.values)
        return not hit if self.modifier == "not" else hit


@dataclass
class Query:
    resource_type: str
    clauses: list[Clause] = field(default_factory=list)
    sort: list[tuple[SearchParam, bool]] = field(default_factory=list)
    count: int = 20
    includes: list[tuple[SearchParam, str | None]] = field(default_factory=list)
    summary_count: bool = False
    used: list[tuple[str, str]] = field(default_factory=list)

    def matches(self, resource: dict[str, Any]) -> bool:
        return all(clause.matches(resource) for clause in self.clauses)

    def order(self, resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Sorts by each _sort key (missing values last); ties keep the server's insertion order."""
        items = list(resources)
        for param, descending in reversed(self.sort):
            keyed = [(_sort_value(param, r, descending), r) for r in items]
            present = [kr for kr in keyed if kr[0] is not None]
            present.sort(key=lambda kr: kr[0], reverse=descending)
            items = [r for _, r in present] + [r for k, r in keyed if k is None]
        return items


def _sort_value(param: SearchParam, resource: dict[str, Any], descending: bool) -> Any:
    values = param.extract(resource)
    if not values:
        return None
    if param.type == "date":
        return max(v[1] for v in values) if descending else min(v[0] for v in values)
    keys = [normalize(v) if isinstance(v, str) else v.code if isinstance(v, Token) else "/".join(v) for v in values]
    return max(keys) if descending else min(keys)


def _split(value: str, sep: str) -> list[str]:
    """Splits on ``sep`` unless escaped as ``\\sep`` (search.html#escaping)."""
    parts, current, i = [], "", 0
    while i < len(value):
        if value[i] == "\\" and value[i + 1 : i + 2] == sep:
            current, i = current + sep, i + 2
            continue
        if value[i] == sep:
            parts.append(current)
            current = ""
        else:
            current += value[i]
        i += 1
    parts.append(current)
    return parts


def _token_value(raw: str) -> tuple[Any, str | None]:
    """(system, code): system ``...`` = any system, None = no system; code None = any code."""
    parts = _split(raw, "|")
    if len(parts) == 1:
        return ..., parts[0]
    return (parts[0] or None), ("|".join(parts[1:]) or None)


def _match(kind: str, modifier: str | None, value: Any, want: Any) -> bool:
    if kind in ("string", "uri"):
        if modifier == "exact" or kind == "uri":
            return value == want
        if modifier == "contains":
            return want in normalize(value)
        return normalize(value).startswith(want)
    if kind == "token":
        system, code = want
        if (
            code is not None
            and value.code != code
            and not ("@" in code and isinstance(value.code, str) and value.code.casefold() == code.casefold())
        ):
            return False
        return system is ... or value.system == system
    if kind == "date":
        prefix, lo, hi = want
        rlo, rhi = value
        inside = lo <= rlo and rhi <= hi
        return {
            "eq": inside,
            "ne": not inside,
            "gt": rhi > hi,
            "lt": rlo < lo,
            "ge": rhi > hi or inside,
            "le": rlo < lo or inside,
            "sa": rlo >= hi,
            "eb": rhi <= lo,
            "ap": rlo < hi and rhi > lo,
        }[prefix]
    if kind == "reference":
        want_type, want_id = want
        return value[1] == want_id and (want_type is None or value[0] == want_type)
    return False


def _parse_value(param: SearchParam, modifier: str | None, raw: str, base: str) -> Any:
    if modifier == "missing":
        if raw not in ("true", "false"):
            raise bad_request(f'Invalid :missing value for parameter "{param.name}": expected true or false')
        return raw == "true"
    if param.type in ("string", "uri"):
        return raw if modifier == "exact" or param.type == "uri" else normalize(raw)
    if param.type == "token":
        system, code = _token_value(raw)
        if param.name == "_id":
            return ..., code
        return system, code
    if param.type == "date":
        prefix, text = ("eq", raw)
        if len(raw) > 2 and raw[:2] in _PREFIXES and raw[2].isdigit():
            prefix, text = raw[:2], raw[2:]
        try:
            lo, hi = date_range(text.replace(" ", "+"))  # an unencoded "+" in a query string arrives as a space
        except ValueError:
            raise bad_request(f'Invalid date/time format for parameter "{param.name}"', "value") from None
        return prefix, lo, hi
    # reference
    text = raw[len(base) + 1 :] if base and raw.startswith(base + "/") else raw
    kind, ref_id = parse_reference(text)
    if modifier and modifier != "missing":
        kind = modifier
    if kind is not None and kind not in param.targets:
        raise bad_request(f'Resource type is not a valid target of parameter "{param.name}"')
    return kind, ref_id


_MODIFIERS = {
    "string": {"exact", "contains", "missing"},
    "uri": {"missing"},
    "token": {"not", "missing"},
    "date": {"missing"},
    "reference": {"missing"},
}


def parse(
    resource_type: str,
    items: list[tuple[str, str]],
    *,
    strict: bool,
    default_count: int,
    max_count: int,
    base: str = "",
) -> Query:
    """Parses a search query string; raises 400 on malformed values and (when strict) unknown parameters."""
    known = params_for(resource_type)
    query = Query(resource_type, count=default_count)
    for name, raw in items:
        base_name, _, modifier = name.partition(":")
        if base_name in CONTROL:
            _control(query, known, base_name, raw, max_count)
            if base_name not in ("_format", "_pretty"):
                query.used.append((name, raw))
            continue
        param = known.get(base_name.split(".")[0])
        if param is None:
            if strict:
                valid = ", ".join(sorted(known))
                shown = f' "{base_name}"' if _SAFE_NAME.match(base_name) else ""
                raise bad_request(
                    f'Unknown search parameter{shown} for resource type "{resource_type}". '
                    f"Valid search parameters for this search are: [{valid}]",
                    "not-supported",
                )
            continue
        if "." in base_name:
            raise bad_request(f'Chained search on parameter "{param.name}" is not supported', "not-supported")
        if (
            modifier
            and modifier not in _MODIFIERS[param.type]
            and not (param.type == "reference" and modifier in param.targets)
        ):
            raise bad_request(f'Invalid modifier for parameter "{param.name}"', "not-supported")
        values = [_parse_value(param, modifier or None, v, base) for v in _split(raw, ",") if v != ""]
        if not values:
            continue
        query.clauses.append(Clause(param, modifier or None, values))
        query.used.append((name, raw))
    return query


def _control(query: Query, known: dict[str, SearchParam], name: str, raw: str, max_count: int) -> None:
    if name == "_count":
        if not raw.isdigit():
            raise bad_request('Invalid value for parameter "_count": expected a non-negative integer', "value")
        query.count = min(int(raw), max_count)
    elif name == "_sort":
        for key in raw.split(","):
            descending = key.startswith("-")
            param = known.get(key.lstrip("-"))
            if param is None:
                raise bad_request(f'Unknown _sort parameter value for resource type "{query.resource_type}"')
            query.sort.append((param, descending))
    elif name == "_include":
        parts = raw.split(":")
        if parts == ["*"]:
            query.includes += [(p, None) for p in known.values() if p.type == "reference"]
            return
        param = known.get(parts[1]) if len(parts) in (2, 3) and parts[0] == query.resource_type else None
        target = parts[2] if len(parts) == 3 else None
        if param is None or param.type != "reference" or (target is not None and target not in param.targets):
            raise bad_request(f'Invalid _include parameter for resource type "{query.resource_type}"')
        query.includes.append((param, target))
    elif name == "_summary":
        if raw not in ("true", "false", "text", "data", "count"):
            raise bad_request('Invalid value for parameter "_summary"', "value")
        query.summary_count = raw == "count"
    elif name == "_total" and raw not in ("none", "estimate", "accurate"):
        raise bad_request('Invalid value for parameter "_total"', "value")
