"""Field mapping rules: the per-vendor defaults (what each mapper's code does, declared as data),
a config's overrides, and how overrides apply on top of a mapper's output in both directions.

One mechanism for hand-written and declarative mappers: the mapper maps the record; then, in the
hub's canonical projection (libs.fhir_patient / libs.fhir_appointment CANONICAL_FIELDS), each
override takes its hub field away from the default and maps it its own way (another vendor field,
another transform, a custom field) or not at all (direction "none"). An override is checked
against the mapper's ``vendor_schema`` (services/mapping/schema.py: known field, type, length) when
it is stored. Vendor fields are read and written by dotted path, or by the mapper's own
``read_vendor_field`` / ``write_vendor_field`` (the FHIR mappers', whose records are resources).
Pure; no I/O.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from libs import fhir_appointment, fhir_patient
from libs.errors import InvalidArgument
from services.mapping import schema, transforms
from services.mapping.domain import FieldError, HubResult, Mapper, RecordInvalid
from services.mapping.schema import VendorField, VendorSchema

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
    # A hub document on its way to a vendor: checked, taken in the hub's form (parse when None).
    check: Callable[[dict], dict] | None = None


ENTITIES = {
    PATIENT: Entity(
        fhir_patient.CANONICAL_FIELDS,
        fhir_patient.project,
        fhir_patient.apply,
        fhir_patient.parse_patient,
        check=fhir_patient.hub_patient,
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
    vendor_schema: VendorSchema | None = getattr(mapper, "vendor_schema", None)
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
        known, vendor = vendor_schema.lookup(rule.vendor_field) if vendor_schema else (False, None)
        if not known and not transforms.is_field_path(rule.vendor_field):
            raise InvalidArgument(
                f"{at}.vendor_field is not a field path", field=f"{at}.vendor_field", reason="INVALID_VENDOR_FIELD"
            )
        if vendor_schema is not None and not known:
            raise InvalidArgument(
                f"{at}.vendor_field is not in the vendor's schema",
                field=f"{at}.vendor_field",
                reason="UNKNOWN_VENDOR_FIELD",
            )
        transforms.check_transform(rule.transform, rule.params, field=f"{at}.transform")
        if vendor is not None:
            value = schema.produced(schema.hub_value(entity_type, rule.hub_field), rule.transform, rule.params)
            schema.check(vendor, value, hub_field=rule.hub_field, transform=rule.transform, writes=rule.writes, at=at)


def _vendor_field(mapper: Mapper, path: str) -> VendorField | None:
    vendor_schema: VendorSchema | None = getattr(mapper, "vendor_schema", None)
    return vendor_schema.lookup(path)[1] if vendor_schema else None


def _read(mapper: Mapper, record: dict, path: str) -> Any:
    """A vendor field's value: by dotted path, or by the mapper's own reader (a FHIR element)."""
    reader = getattr(mapper, "read_vendor_field", transforms.read_field)
    return schema.from_vendor_value(_vendor_field(mapper, path), reader(record, path))


def _write(mapper: Mapper, record: dict, path: str, value: Any) -> None:
    writer = getattr(mapper, "write_vendor_field", transforms.write_field)
    writer(record, path, schema.to_vendor_value(_vendor_field(mapper, path), value))


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
            _write(mapper, stripped, rule.vendor_field, None)
    result = mapper.to_hub(stripped)
    assert result.resource is not None
    changes: dict[str, str | None] = {}
    errors: list[FieldError] = []
    for rule in overrides:
        if not rule.reads:
            changes[rule.hub_field] = None
            continue
        try:
            raw = _read(mapper, record, rule.vendor_field)
            if raw is None or (isinstance(raw, str) and not raw.strip()):
                changes[rule.hub_field] = None
                continue
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
        parsed = (entity.check or entity.parse)(resource)
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
            _write(mapper, record, rule.vendor_field, None)
    errors: list[FieldError] = []
    for rule in overrides:
        value = values.get(rule.hub_field)
        if not rule.writes or value is None:
            continue
        path = paths.get(rule.hub_field, rule.hub_field)
        try:
            converted = _convert(rule, value, path, inbound=False)
        except InvalidArgument as error:
            errors.append(FieldError.of(error))
            continue
        vendor = _vendor_field(mapper, rule.vendor_field)
        if schema.too_long(vendor, converted):
            assert vendor is not None
            limit = f"{rule.vendor_field} holds at most {vendor.max_length} characters"
            errors.append(FieldError(path, "STRING_TOO_LONG", limit))
        elif converted is not None:
            _write(mapper, record, rule.vendor_field, converted)
    if errors:
        raise RecordInvalid(errors)
    return record


def _convert(rule: FieldRule, value: Any, path: str, *, inbound: bool) -> Any:
    transform = transforms.TRANSFORMS[rule.transform or "identity"]
    if inbound:
        return transform.to_hub(value, rule.params, path)
    return transform.to_vendor(value, rule.params, path)
