"""Field mapping rules: the per-vendor defaults (what each mapper's code does, declared as data),
a config's overrides, and how overrides apply on top of a mapper's output in both directions.

One mechanism for hand-written and declarative mappers: the mapper maps the record; then, in the
hub's canonical projection (libs.fhir_patient / libs.fhir_appointment CANONICAL_FIELDS), each
override takes its hub field away from the default and maps it its own way (another vendor field,
another transform, a custom field) or not at all (direction "none"). Pure; no I/O.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from libs import fhir_appointment, fhir_patient
from libs.errors import InvalidArgument
from services.mapping import transforms
from services.mapping.domain import FieldError, HubResult, Mapper, RecordInvalid

DIRECTIONS = ("to_hub", "to_vendor", "both", "none")
_READS, _WRITES = ("both", "to_hub"), ("both", "to_vendor")
PATIENT = "ENTITY_TYPE_PATIENT"
APPOINTMENT = "ENTITY_TYPE_APPOINTMENT"


@dataclass(frozen=True)
class FieldRule:
    """One hub field <-> vendor field rule (a FieldMapping on the wire)."""

    entity_type: str
    hub_field: str
    vendor_field: str
    transform: str = "identity"
    params: dict = field(default_factory=dict)
    direction: str = "both"
    source: str = "default"

    reads = property(lambda self: self.direction in _READS)
    writes = property(lambda self: self.direction in _WRITES)


@dataclass(frozen=True)
class Entity:
    fields: tuple[str, ...]
    project: Callable[[dict], dict[str, str | None]]
    apply: Callable[[dict, dict[str, str | None]], dict]
    parse: Callable[[dict], dict]
    # Fields FHIR R4 requires (Appointment.status, a participant): the mapper keeps seeing them when an
    # override maps them its own way, and an override must map them both ways.
    fhir_required: frozenset[str] = frozenset()


ENTITIES = {
    PATIENT: Entity(
        fhir_patient.CANONICAL_FIELDS, fhir_patient.project, fhir_patient.apply, fhir_patient.parse_patient
    ),
    APPOINTMENT: Entity(
        fhir_appointment.CANONICAL_FIELDS,
        fhir_appointment.project,
        fhir_appointment.apply,
        fhir_appointment.parse_appointment,
        frozenset({"status", "patient"}),
    ),
}


def rules_from(entity_type: str, fields: dict[str, str], transform_of: dict[str, tuple[str, dict]]) -> list[FieldRule]:
    """Defaults from a mapper's ``vendor field -> canonical field`` table."""
    return [
        FieldRule(entity_type, hub, vendor, *transform_of.get(hub, ("identity", {}))) for vendor, hub in fields.items()
    ]


def defaults(mapper: Mapper) -> list[FieldRule]:
    """What the mapper's code does, as rules; a mapper that declares nothing has no defaults (overrides
    can still add fields)."""
    declared = getattr(mapper, "default_field_mappings", None)
    return list(declared()) if callable(declared) else []


def effective(default_rules: Iterable[FieldRule], overrides: Iterable[FieldRule]) -> list[FieldRule]:
    """Defaults with overrides applied, one rule per hub field, ordered by hub field."""
    by_hub = {rule.hub_field: rule for rule in default_rules}
    by_hub.update({rule.hub_field: rule for rule in overrides})
    return [by_hub[key] for key in sorted(by_hub)]


def validate(mapper: Mapper, entity_type: str, overrides: list[FieldRule], where: str = "overrides") -> None:
    """Refuses the first bad override, naming its field (e.g. overrides[2].vendor_field) and reason."""
    entity = ENTITIES.get(entity_type)
    if entity is None:
        raise InvalidArgument(
            "field mappings are not supported for this entity_type", field="entity_type", reason="UNSUPPORTED_ENTITY"
        )
    vendor_fields: frozenset[str] | None = getattr(mapper, "vendor_fields", None)
    required: frozenset[str] = getattr(mapper, "required_hub_fields", frozenset())
    seen: set[str] = set()
    for i, rule in enumerate(overrides):
        at = f"{where}[{i}]"
        if rule.hub_field not in entity.fields:
            raise InvalidArgument(
                f"{at}.hub_field is not a hub field of this entity", field=f"{at}.hub_field", reason="UNKNOWN_HUB_FIELD"
            )
        if rule.hub_field in seen:
            raise InvalidArgument(f"{at}.hub_field is mapped twice", field=f"{at}.hub_field", reason="DUPLICATE_FIELD")
        seen.add(rule.hub_field)
        if rule.direction not in DIRECTIONS:
            raise InvalidArgument(
                f"{at}.direction must be one of {', '.join(DIRECTIONS)}",
                field=f"{at}.direction",
                reason="INVALID_DIRECTION",
            )
        if rule.hub_field in entity.fhir_required and rule.direction != "both":
            raise InvalidArgument(
                f"{at}.direction: FHIR R4 requires {rule.hub_field}, so it must map both ways",
                field=f"{at}.direction",
                reason="FHIR_FIELD_REQUIRED",
            )
        if rule.hub_field in required and not rule.writes:
            raise InvalidArgument(
                f"{at}.direction: the vendor requires {rule.hub_field}",
                field=f"{at}.direction",
                reason="VENDOR_FIELD_REQUIRED",
            )
        if rule.direction == "none":
            continue
        if not transforms.is_field_path(rule.vendor_field):
            raise InvalidArgument(
                f"{at}.vendor_field is not a field path", field=f"{at}.vendor_field", reason="INVALID_VENDOR_FIELD"
            )
        top = rule.vendor_field.split("[", 1)[0].split(".", 1)[0]
        custom = getattr(mapper, "custom_field_suffix", None)
        if vendor_fields is not None and top not in vendor_fields and not (custom and top.endswith(custom)):
            raise InvalidArgument(
                f"{at}.vendor_field is not in the vendor's schema",
                field=f"{at}.vendor_field",
                reason="UNKNOWN_VENDOR_FIELD",
            )
        transforms.check_transform(rule.transform, rule.params, field=f"{at}.transform")


def _taken_over(default_rules: list[FieldRule], overrides: list[FieldRule]) -> list[FieldRule]:
    """The default rules whose hub field an override maps its own way."""
    overridden = {rule.hub_field for rule in overrides}
    return [rule for rule in default_rules if rule.hub_field in overridden]


def to_hub(mapper: Mapper, record: dict, default_rules: list[FieldRule], overrides: list[FieldRule]) -> HubResult:
    """The mapper's resource for ``record`` with ``overrides`` applied; errors name the vendor field."""
    if not overrides:
        return mapper.to_hub(record)
    entity = ENTITIES[mapper.entity_type]
    stripped = copy.deepcopy(record)
    for rule in _taken_over(default_rules, overrides):
        # The code must not take what the override maps otherwise (or not at all); a FHIR-required
        # field it still reads, so its resource stays valid, and the override's value replaces it.
        if rule.reads and rule.hub_field not in entity.fhir_required:
            transforms.write_field(stripped, rule.vendor_field, None)
    result = mapper.to_hub(stripped)
    assert result.resource is not None
    changes: dict[str, str | None] = {}
    errors: list[FieldError] = []
    for rule in overrides:
        if not rule.reads:
            changes[rule.hub_field] = None
            continue
        raw = transforms.read_field(record, rule.vendor_field)
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            changes[rule.hub_field] = None
            continue
        try:
            changes[rule.hub_field] = _convert(rule, raw, rule.vendor_field, inbound=True)
        except InvalidArgument as error:
            errors.append(FieldError.of(error))
    if errors:
        raise RecordInvalid(errors, result.external_id)
    try:
        resource = entity.parse(entity.apply(result.resource, changes))  # FHIR R4 validation
    except InvalidArgument as error:
        raise RecordInvalid([FieldError.of(error)], result.external_id) from None
    return replace(result, resource=resource)


def to_vendor(mapper: Mapper, resource: dict, default_rules: list[FieldRule], overrides: list[FieldRule]) -> dict:
    """The mapper's vendor record for ``resource`` with ``overrides`` applied; errors name the FHIR path."""
    if not overrides:
        return mapper.to_vendor(resource)
    entity = ENTITIES[mapper.entity_type]
    try:
        parsed = entity.parse(resource)
    except InvalidArgument as error:
        raise RecordInvalid([FieldError.of(error)]) from None
    values = entity.project(parsed)
    paths = fhir_patient.locate(parsed) if mapper.entity_type == PATIENT else {}
    taken = _taken_over(default_rules, overrides)
    # The code does not see a field an override maps otherwise, so its own checks do not fire for it.
    # A FHIR-required field, or one the override still writes to the default's vendor field, it does
    # see (its checks hold for that vendor field); the override's value then replaces the code's.
    same = {(rule.hub_field, rule.vendor_field) for rule in taken if rule.writes}
    kept = entity.fhir_required | {r.hub_field for r in overrides if r.writes and (r.hub_field, r.vendor_field) in same}
    record = mapper.to_vendor(entity.apply(parsed, {r.hub_field: None for r in overrides if r.hub_field not in kept}))
    for rule in taken:
        if rule.writes:
            transforms.write_field(record, rule.vendor_field, None)
    errors: list[FieldError] = []
    for rule in overrides:
        value = values.get(rule.hub_field)
        if not rule.writes or value is None:
            continue
        try:
            converted = _convert(rule, value, paths.get(rule.hub_field, rule.hub_field), inbound=False)
        except InvalidArgument as error:
            errors.append(FieldError.of(error))
            continue
        if converted is not None:
            transforms.write_field(record, rule.vendor_field, converted)
    if errors:
        raise RecordInvalid(errors)
    return record


def _convert(rule: FieldRule, value: Any, path: str, *, inbound: bool) -> Any:
    transform = transforms.TRANSFORMS[rule.transform or "identity"]
    if inbound:
        return transform.to_hub(value, rule.params, path)
    return transform.to_vendor(value, rule.params, path)
