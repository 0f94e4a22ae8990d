"""Validates every resource written with fhir.resources (R4B models, which parse R4 JSON), plus what those
models leave out: JSON primitive types, required bindings and cardinalities of the served resources, and the
Appointment invariants. Errors name the element (a FHIRPath expression), never its value."""

from __future__ import annotations

import decimal
import functools
import types
import typing
from datetime import date, datetime, time
from typing import Any

import pydantic
from fhir.resources.R4B import get_fhir_model_class

from .outcome import FhirError, bad_request, issue

RESOURCE_TYPES = ("Patient", "Practitioner", "Appointment", "Schedule", "Slot", "HealthcareService", "Subscription")

_IDENTIFIER_USE = {"usual", "official", "temp", "secondary", "old"}
_NAME_USE = {"usual", "official", "temp", "nickname", "anonymous", "old", "maiden"}
_TELECOM_SYSTEM = {"phone", "fax", "email", "pager", "url", "sms", "other"}
_TELECOM_USE = {"home", "work", "temp", "old", "mobile"}
_ADDRESS_USE = {"home", "work", "temp", "old", "billing"}
_ADDRESS_TYPE = {"postal", "physical", "both"}
_GENDER = {"male", "female", "other", "unknown"}
_COMMON: dict[tuple[str, ...], set[str]] = {
    ("identifier", "use"): _IDENTIFIER_USE,
    ("name", "use"): _NAME_USE,
    ("telecom", "system"): _TELECOM_SYSTEM,
    ("telecom", "use"): _TELECOM_USE,
    ("address", "use"): _ADDRESS_USE,
    ("address", "type"): _ADDRESS_TYPE,
}
# Required bindings (code elements) fhir.resources does not check, per resource.
BINDINGS: dict[str, dict[tuple[str, ...], set[str]]] = {
    "Patient": {
        **_COMMON,
        ("gender",): _GENDER,
        ("contact", "gender"): _GENDER,
        ("link", "type"): {"replaced-by", "replaces", "refer", "seealso"},
    },
    "Practitioner": {**_COMMON, ("gender",): _GENDER},
    "Appointment": {
        ("identifier", "use"): _IDENTIFIER_USE,
        ("status",): {
            "proposed",
            "pending",
            "booked",
            "arrived",
            "fulfilled",
            "cancelled",
            "noshow",
            "entered-in-error",
            "checked-in",
            "waitlist",
        },
        ("participant", "required"): {"required", "optional", "information-only"},
        ("participant", "status"): {"accepted", "declined", "tentative", "needs-action"},
    },  # fmt: skip
    "Schedule": {("identifier", "use"): _IDENTIFIER_USE},
    "Slot": {
        ("identifier", "use"): _IDENTIFIER_USE,
        ("status",): {"busy", "free", "busy-unavailable", "busy-tentative", "entered-in-error"},
    },
    "HealthcareService": {("identifier", "use"): _IDENTIFIER_USE, ("telecom", "system"): _TELECOM_SYSTEM},
    "Subscription": {
        ("status",): {"requested", "active", "error", "off"},
        ("channel", "type"): {"rest-hook", "websocket", "email", "sms", "message"},
    },
}
# Cardinality minimums (1..) the models do not enforce for empty lists or absent elements.
REQUIRED: dict[str, tuple[tuple[str, ...], ...]] = {
    "Appointment": (("status",), ("participant",), ("participant", "status")),
    "Slot": (("schedule",), ("status",), ("start",), ("end",)),
    "Schedule": (("actor",),),
    "Subscription": (("status",), ("reason",), ("criteria",), ("channel",), ("channel", "type")),
}


def validate(resource_type: str, body: Any) -> dict[str, Any]:
    """Returns the resource when valid; raises 400 (parse level) or 422 (rules) with an OperationOutcome."""
    if not isinstance(body, dict):
        raise bad_request("Failed to parse request body as JSON resource: a JSON object is required", "structure")
    found = body.get("resourceType")
    if found is None:
        raise bad_request("Invalid JSON content: missing resourceType", "structure", expression=[resource_type])
    if found != resource_type:
        raise bad_request(
            f'Incorrect resource type found, expected "{resource_type}" but found "{found}"'
            if isinstance(found, str) and found.isalpha() and len(found) < 64
            else f'Incorrect resource type found, expected "{resource_type}"',
            "structure",
        )
    parse_issues = _json_type_issues(get_fhir_model_class(resource_type), body, resource_type)
    rule_issues: list[dict[str, Any]] = []
    try:
        get_fhir_model_class(resource_type).model_validate(body)
    except pydantic.ValidationError as exc:
        seen = {tuple(i.get("expression", ())) for i in parse_issues}
        for err in exc.errors():
            found_issue, parse_level = _from_pydantic(resource_type, err)
            if tuple(found_issue.get("expression", ())) in seen:
                continue
            (parse_issues if parse_level else rule_issues).append(found_issue)
    if parse_issues:
        raise FhirError(400, *_unique(parse_issues + rule_issues))
    rule_issues += _binding_issues(resource_type, body) + _required_issues(resource_type, body)
    if resource_type == "Appointment":
        rule_issues += _appointment_invariants(body)
    if rule_issues:
        raise FhirError(422, *_unique(rule_issues))
    return body


def _unique(issues: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: dict[tuple[str, tuple[str, ...]], dict[str, Any]] = {}
    for found in issues:
        seen.setdefault((found["code"], tuple(found.get("expression", ()))), found)
    return list(seen.values())


def _expression(resource_type: str, loc: tuple[Any, ...]) -> str:
    path = resource_type
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif isinstance(part, str) and part.replace("_", "").isalnum():
            path += f".{part}"
    return path


def _from_pydantic(resource_type: str, err: Any) -> tuple[dict[str, Any], bool]:
    kind, loc = err["type"], tuple(err["loc"])
    where = _expression(resource_type, loc)
    if kind == "extra_forbidden":
        name = next((p for p in reversed(loc) if isinstance(p, str)), "")
        return issue("structure", f"Unknown element '{name}' found during parse", expression=[where]), True
    if kind in ("missing",) or kind.endswith(".missing"):
        return issue("required", f"Element '{where}' is required (minimum cardinality 1)", expression=[where]), False
    message = str(err.get("msg", "invalid value"))
    if repr(err.get("input")) in message or str(err.get("input")) in message:
        message = "invalid value"  # never echo what the client sent
    return issue("value", f"Invalid value for element '{where}': {message}", expression=[where]), True


@functools.cache
def _fields(model: type) -> dict[str, Any]:
    return {(f.alias or name): f for name, f in model.model_fields.items()}


def _json_type_issues(model: type, data: dict[str, Any], path: str) -> list[dict[str, Any]]:
    """FHIR JSON is typed: "true" is not a boolean and null is not an empty element (pydantic coerces both)."""
    found: list[dict[str, Any]] = []
    fields = _fields(model)
    for key, value in data.items():
        field = fields.get(key)
        if key == "resourceType" or field is None:
            continue
        where = f"{path}.{key}"
        if value is None:
            found.append(
                issue("structure", f"Element '{where}' has a null value; omit empty elements", expression=[where])
            )
            continue
        inner, many = _unwrap(field.annotation)
        items = list(enumerate(value)) if many and isinstance(value, list) else [(None, value)]
        for index, item in items:
            at = where if index is None else f"{where}[{index}]"
            if item is None:
                found.append(issue("structure", f"Element '{at}' has a null value", expression=[at]))
            elif (expected := _json_kind(inner, item)) is not None:
                found.append(issue("structure", f"Element '{at}' must be a JSON {expected}", expression=[at]))
            elif isinstance(item, dict) and (sub := _model_of(inner, item)) is not None:
                found += _json_type_issues(sub, item, at)
    return found


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    many = False
    while True:
        origin = typing.get_origin(annotation)
        if origin in (typing.Union, types.UnionType):
            annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
        elif origin in (list, typing.List):  # noqa: UP006
            many, annotation = True, typing.get_args(annotation)[0]
        elif origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        else:
            return annotation, many


def _json_kind(annotation: Any, value: Any) -> str | None:
    """The JSON type the element needs when ``value`` has another; None when fine or not primitive."""
    if annotation is bool:
        return None if isinstance(value, bool) else "boolean"
    if annotation is int:
        return None if isinstance(value, int) and not isinstance(value, bool) else "integer"
    if annotation in (float, decimal.Decimal):
        return None if isinstance(value, int | float) and not isinstance(value, bool) else "number"
    if isinstance(annotation, type) and issubclass(annotation, str | date | datetime | time):
        return None if isinstance(value, str) else "string"
    return None


def _model_of(annotation: Any, value: dict[str, Any]) -> type | None:
    klass = getattr(annotation, "get_model_klass", None)
    if klass is None:
        return None
    model = klass()
    if model.__name__ in ("Resource", "DomainResource") or "resourceType" in value:
        try:
            return get_fhir_model_class(str(value.get("resourceType")))
        except (KeyError, ValueError):
            return None
    return model


def _walk(node: Any, path: tuple[str, ...], where: str) -> list[tuple[str, Any]]:
    """(expression, value) for every value at ``path`` below ``node``, through lists."""
    if isinstance(node, list):
        return [hit for i, item in enumerate(node) for hit in _walk(item, path, f"{where}[{i}]")]
    if not path:
        return [(where, node)]
    if not isinstance(node, dict) or path[0] not in node:
        return []
    return _walk(node[path[0]], path[1:], f"{where}.{path[0]}")


def _binding_issues(resource_type: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for path, codes in BINDINGS.get(resource_type, {}).items():
        for where, value in _walk(body, path, resource_type):
            if value not in codes:
                allowed = ", ".join(sorted(codes))
                found.append(
                    issue(
                        "code-invalid",
                        f"The value provided for '{where}' is not in the required value set ({allowed})",
                        expression=[where],
                    )
                )
    return found


def _required_issues(resource_type: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for path in REQUIRED.get(resource_type, ()):
        parents = _walk(body, path[:-1], resource_type) if len(path) > 1 else [(resource_type, body)]
        for where, parent in parents:
            if isinstance(parent, dict) and parent.get(path[-1]) in (None, [], {}, ""):
                at = f"{where}.{path[-1]}"
                found.append(issue("required", f"Element '{at}' is required (minimum cardinality 1)", expression=[at]))
    return found


def _appointment_invariants(body: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    has_start, has_end = "start" in body, "end" in body
    if has_start != has_end:
        found.append(
            issue("invariant", "Rule app-2: Either start and end are specified, or neither", expression=["Appointment"])
        )
    if not (has_start and has_end) and body.get("status") not in ("proposed", "cancelled", "waitlist"):
        found.append(
            issue(
                "invariant",
                "Rule app-3: Only proposed or cancelled appointments can be missing start/end dates",
                expression=["Appointment"],
            )
        )
    for i, participant in enumerate(body.get("participant") or []):
        if isinstance(participant, dict) and not (participant.get("type") or participant.get("actor")):
            where = f"Appointment.participant[{i}]"
            found.append(
                issue("invariant", "Rule app-1: Either the type or actor on the participant SHALL be specified",
                      expression=[where])
            )  # fmt: skip
    return found
