"""A patient mapper built from a declarative definition's field mappings (hub field <-> dotted
vendor path, transform, direction). Both ways go through libs.fhir_patient's canonical fields, so
a hub -> vendor -> hub round trip keeps every field the mappings carry both ways.

Errors to the hub name the vendor field path; errors to the vendor name the FHIR path (as the
hand-written mappers do). Messages never quote values.
"""

from __future__ import annotations

import re
from datetime import date, datetime

from libs.errors import InvalidArgument
from libs.fhir_patient import (
    GENDERS,
    apply,
    hub_patient,
    is_fhir_date,
    locate,
    normalise_email,
    normalise_phone,
    parse_patient,
    project,
)
from services.adapters.declarative.definition import FieldMapping, Resource, get_path, set_path
from services.mapping.domain import FieldError, HubResult, RecordInvalid
from services.mapping.rules import FieldRule
from services.mapping.transforms import country_code

_FULL_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _inbound_date(raw: str, field: str) -> str:
    # Vendors send a birth date as a date or as a date-time at midnight: the date as written is it.
    try:
        if _FULL_DATE.match(raw):
            return date.fromisoformat(raw).isoformat()
        return datetime.fromisoformat(raw.replace("Z", "+00:00")).date().isoformat()
    except ValueError:
        raise InvalidArgument(
            f"{field} must be a date (YYYY-MM-DD or an ISO date-time)", field=field, reason="INVALID_DATE"
        ) from None


def _alpha2(value: str, field: str, *, strict: bool) -> str:
    try:
        return country_code(value, field=field)
    except InvalidArgument:
        if strict:
            raise
        return value  # to the hub, a country name the vendor spells out is kept as written


def _inbound(mapping: FieldMapping, raw: str) -> str:
    """A vendor value as the hub field's canonical value; InvalidArgument naming the vendor path."""
    field, transform = mapping.vendor_field, mapping.transform
    table = mapping.enum
    if table is not None:
        folded = {key.casefold(): value for key, value in table.items()}
        if raw.casefold() not in folded:
            raise InvalidArgument(f"{field} is not one of the mapped values", field=field, reason="INVALID_ENUM")
        value = folded[raw.casefold()]
    elif transform == "e164_phone":
        value = normalise_phone(raw, field=field)
    elif transform == "date":
        value = _inbound_date(raw, field)
    elif transform == "country_alpha2":
        value = _alpha2(raw, field, strict=False)
    else:
        value = {"lower": raw.lower(), "upper": raw.upper()}.get(transform, raw)
    # What the hub field itself requires, checked here so the error names the vendor field.
    hub = mapping.hub_field
    if hub == "phone":
        return normalise_phone(value, field=field)
    if hub == "email":
        return normalise_email(value, field=field)
    if hub == "birth_date" and not is_fhir_date(value):
        raise InvalidArgument(f"{field} is not a date", field=field, reason="INVALID_DATE")
    if hub == "gender" and value not in GENDERS:
        raise InvalidArgument(f"{field} is not a gender the hub knows", field=field, reason="INVALID_GENDER")
    return value


def _outbound(mapping: FieldMapping, value: str, path: str) -> str | None:
    """A canonical value as the vendor writes it; None when the vendor cannot carry it."""
    # The hub keeps a phone or email it could not normalise as typed; none leaves it that way.
    if mapping.hub_field == "phone":
        value = normalise_phone(value, field=path)
    elif mapping.hub_field == "email":
        value = normalise_email(value, field=path)
    table = mapping.enum
    if table is not None:
        # A hub value the vendor has no code for (gender "unknown", say) stays in the hub.
        return next((vendor for vendor, hub in table.items() if hub == value), None)
    transform = mapping.transform
    if transform == "e164_phone":
        return normalise_phone(value, field=path)
    if transform == "date":
        return value if _FULL_DATE.match(value) else None  # a partial FHIR date stays in the hub
    if transform == "country_alpha2":
        return _alpha2(value, path, strict=True)
    return {"lower": value.lower(), "upper": value.upper()}.get(transform, value)


class DeclarativePatientMapper:
    entity_type = "ENTITY_TYPE_PATIENT"

    def __init__(self, integration_type: str, resource: Resource) -> None:
        self.integration_type = integration_type
        self._resource = resource
        self._reads = [m for m in resource.field_mappings if m.reads]
        self._writes = [m for m in resource.field_mappings if m.writes]

    def default_field_mappings(self) -> list[FieldRule]:
        """The definition's field_mappings are the defaults (an enum table becomes the enum transform)."""
        return [
            FieldRule(
                self.entity_type,
                m.hub_field,
                m.vendor_field,
                *_transform(m),
                direction=m.direction,
            )
            for m in self._resource.field_mappings
        ]

    @property
    def required_hub_fields(self) -> frozenset[str]:
        return frozenset(m.hub_field for m in self._resource.field_mappings if m.required and m.writes)

    def to_hub(self, record: dict) -> HubResult:
        """A vendor record (list or write-answer shape) as a FHIR Patient."""
        raw_id = record.get(self._resource.id_field)
        external_id = str(raw_id) if isinstance(raw_id, str | int) and not isinstance(raw_id, bool) else ""
        errors: list[FieldError] = []
        values: dict[str, str] = {}
        for mapping in self._reads:
            found, raw = get_path(record, mapping.vendor_field)
            if not found or raw is None or (isinstance(raw, str) and not raw.strip()):
                if mapping.required:
                    errors.append(_missing(mapping.vendor_field))
                continue
            if not isinstance(raw, str):
                errors.append(
                    FieldError(mapping.vendor_field, "INVALID_TYPE", f"{mapping.vendor_field} must be a string")
                )
                continue
            try:
                values[mapping.hub_field] = _inbound(mapping, raw.strip())
            except InvalidArgument as error:
                errors.append(FieldError.of(error))
        if errors:
            raise RecordInvalid(errors, external_id)
        skeleton: dict = {"resourceType": "Patient"}
        if external_id:
            skeleton["identifier"] = [{"system": self._resource.identifier_system, "value": external_id}]
        try:
            return HubResult(resource=parse_patient(apply(skeleton, values)), external_id=external_id)
        except InvalidArgument as error:
            raise RecordInvalid([FieldError.of(error)], external_id) from None

    def to_vendor(self, resource: dict) -> dict:
        """A FHIR Patient as the vendor's write body, without the record id."""
        try:
            patient = hub_patient(resource)
        except InvalidArgument as error:
            raise RecordInvalid([FieldError.of(error)]) from None
        values, paths = project(patient), locate(patient)
        errors: list[FieldError] = []
        record: dict = {}
        for mapping in self._writes:
            value, path = values[mapping.hub_field], paths[mapping.hub_field]
            try:
                converted = _outbound(mapping, value, path) if value is not None else None
            except InvalidArgument as error:
                errors.append(FieldError.of(error))
                continue
            if converted is not None:
                set_path(record, mapping.vendor_field, converted)
            elif mapping.required:
                errors.append(_missing(path))
        if errors:
            raise RecordInvalid(errors)
        return record


_TRANSFORM_NAMES = {"e164_phone": "phone_e164", "country_alpha2": "country", "date": "date"}


def _transform(mapping: FieldMapping) -> tuple[str, dict]:
    if mapping.enum is not None:
        return "enum", {"values": {hub: vendor for vendor, hub in mapping.enum.items()}}
    if mapping.transform in ("lower", "upper"):
        return "case", {"case": mapping.transform}
    return _TRANSFORM_NAMES.get(mapping.transform, "identity"), {}


def _missing(field: str) -> FieldError:
    return FieldError(field, "MISSING_FIELD", f"{field} is required by the vendor")
