"""Vendor field schemas: what a vendor field holds (its type, its longest value, its codes) as the
vendor documents it, and whether what a field mapping puts there fits.

A mapper declares ``vendor_schema`` (a VendorSchema) for the fields an override may name. A rule's
value is described the same way from its hub field and its transform (``produced``), so a rule is
checked when it is stored, before any record meets it: a hub text mapped to a vendor date field, a
birth date formatted longer than the vendor's 20-character field, a status enum naming a code the
vendor's restricted picklist lacks. A length that depends on the record (a family name into a
40-character field) is checked record by record (``too_long``). Pure; no I/O.

Kinds: ``string`` (any text; max_length when documented), ``date`` (a whole date in one of
``formats``), ``fhir_date`` (FHIR's date: YYYY, YYYY-MM or YYYY-MM-DD), ``instant`` (a date-time
with an offset), ``code`` (one of ``values``; empty = any short code), ``phone``, ``email``,
``integer``, ``boolean``, ``reference``, ``list``, ``object``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from libs import fhir_appointment, fhir_patient
from libs.errors import InvalidArgument
from services.mapping import transforms

ISO_DATE = "%Y-%m-%d"
# Kinds no hub field holds: a rule can never fill them.
_NO_HUB_VALUE = ("boolean", "list", "object")


@dataclass(frozen=True)
class VendorField:
    """One vendor field as the vendor documents it."""

    kind: str = "string"
    max_length: int = 0  # 0: no documented limit
    values: frozenset[str] = frozenset()  # code: the allowed values (a restricted picklist)
    formats: tuple[str, ...] = (ISO_DATE,)  # date: the strftime formats the vendor reads


def string(max_length: int = 0) -> VendorField:
    return VendorField("string", max_length)


def code(*values: str, max_length: int = 0) -> VendorField:
    return VendorField("code", max_length, frozenset(values))


@dataclass(frozen=True)
class VendorSchema:
    """The fields an override may name, by dotted path; custom fields are any name ending in
    ``custom_suffix`` (Salesforce's ``__c``) or an entry ``<list>[<id or key>]`` of a
    ``custom_lists`` list (GHL's ``customFields``). The vendor does not describe its custom fields
    here, so they are not type-checked."""

    fields: Mapping[str, VendorField]
    custom_suffix: str = ""
    custom_lists: frozenset[str] = frozenset()

    def lookup(self, path: str) -> tuple[bool, VendorField | None]:
        """(known, field): a custom field is known without a field; an unknown path is (False, None)."""
        if path in self.fields:
            return True, self.fields[path]
        top = path.split("[", 1)[0]
        if "[" in path and top in self.custom_lists:
            return True, None
        if self.custom_suffix and "[" not in path and "." not in path and path.endswith(self.custom_suffix):
            return True, None
        return False, None


@dataclass(frozen=True)
class Value:
    """What a rule puts in (or reads from) a vendor field."""

    kind: str
    max_length: int = 0  # 0: depends on the record
    values: frozenset[str] | None = None  # code: every value it can take; None: not a closed set
    date_format: str = ""  # date: its strftime format


_TEXT = Value("string")
HUB_VALUES: dict[str, dict[str, Value]] = {
    "ENTITY_TYPE_PATIENT": {
        "given_name": _TEXT,
        "family_name": _TEXT,
        "birth_date": Value("fhir_date", 10),
        "gender": Value("code", 7, frozenset(fhir_patient.GENDERS)),
        "phone": Value("phone", 16),  # E.164 in the hub
        "email": Value("email"),
        "address_line": _TEXT,
        "city": _TEXT,
        "state": _TEXT,
        "postal_code": _TEXT,
        "country": _TEXT,
    },
    "ENTITY_TYPE_APPOINTMENT": {
        "status": Value("code", max(map(len, fhir_appointment.STATUSES)), frozenset(fhir_appointment.STATUSES)),
        "start": Value("instant", 20),  # 2026-03-02T14:00:00Z
        "end": Value("instant", 20),
        "service_code": _TEXT,
        "service_name": _TEXT,
        "patient": Value("reference"),
        "description": _TEXT,
    },
}


def _codes(values: Any) -> Value:
    texts = frozenset(str(v) for v in values)
    return Value("code", max(map(len, texts), default=0), texts)


def _longest_date(fmt: str) -> int:
    # Every day of a leap year covers every month and weekday name the format can spell.
    first = date(2000, 1, 1)
    return max(len((first + timedelta(days=n)).strftime(fmt)) for n in range(366))


def produced(hub: Value, transform: str, params: dict) -> Value:
    """What the transform makes of the hub value on its way to the vendor (and reads back)."""
    name = transform or "identity"
    if name in ("identity", "case"):
        if name == "case" and hub.values is not None:
            case = str(params.get("case", "keep"))
            return Value(hub.kind, hub.max_length, frozenset(transforms.change_case(v, case) for v in hub.values))
        return hub
    if name == "phone_e164":
        return Value("phone", 16)
    if name == "phone_national":
        return Value("phone")
    if name == "date":
        fmt = str(params.get("format", ISO_DATE))
        return Value("date", _longest_date(fmt), date_format=fmt)
    if name == "datetime_zone":
        return Value("instant", 25)  # 2026-03-02T09:00:00-05:00
    if name == "gender":
        return _codes((params.get("codes") or transforms.DEFAULT_GENDER_CODES).values())
    if name == "us_state":
        if params.get("style") == "name":
            return Value("string", max(map(len, transforms.US_STATES.values())))
        return _codes(transforms.US_STATES)
    if name == "country":
        return Value("code", 2)
    if name == "enum":
        values = list((params.get("values") or {}).values())
        return _codes([*values, params["default"]] if params.get("default") is not None else values)
    return Value("string")  # postal_code, and anything that only reshapes text


def _fits(vendor: VendorField, value: Value) -> bool:
    kind = vendor.kind
    if kind == "string":
        return True
    if kind in _NO_HUB_VALUE:
        return False
    if kind == "date":
        return value.kind == "date" and value.date_format in vendor.formats
    if kind == "fhir_date":
        return value.kind == "fhir_date" or (value.kind == "date" and value.date_format == ISO_DATE)
    if kind == "instant":
        return value.kind == "instant"
    if kind == "code":
        if value.kind != "code":
            return False
        return not vendor.values or (value.values is not None and value.values <= vendor.values)
    if kind == "integer":
        return value.kind == "code" and bool(value.values) and all(_is_integer(v) for v in value.values or ())
    return value.kind == kind  # phone, email, reference


def check(vendor: VendorField, value: Value, *, hub_field: str, transform: str, writes: bool, at: str) -> None:
    """Refuses a rule whose value cannot live in the vendor field, naming ``<at>.vendor_field``."""
    through = f"{hub_field} through transform {transform or 'identity'}"
    if not _fits(vendor, value):
        raise InvalidArgument(
            f"{at}.vendor_field is of type {_described(vendor)}; {through} does not fit it",
            field=f"{at}.vendor_field",
            reason="VENDOR_FIELD_TYPE_MISMATCH",
        )
    if writes and vendor.max_length and value.max_length > vendor.max_length:
        raise InvalidArgument(
            f"{at}.vendor_field holds at most {vendor.max_length} characters; {through} writes up to "
            f"{value.max_length}",
            field=f"{at}.vendor_field",
            reason="VENDOR_FIELD_TOO_SHORT",
        )


def _described(vendor: VendorField) -> str:
    if vendor.kind == "date":
        return f"date ({' or '.join(vendor.formats)})"
    if vendor.kind == "code" and vendor.values:
        return f"code ({', '.join(sorted(vendor.values))})"
    return {"fhir_date": "FHIR date", "instant": "date-time"}.get(vendor.kind, vendor.kind)


def too_long(vendor: VendorField | None, value: Any) -> bool:
    """Whether one record's value is longer than the vendor field holds."""
    return bool(vendor and vendor.max_length and isinstance(value, str) and len(value) > vendor.max_length)


def to_vendor_value(vendor: VendorField | None, value: Any) -> Any:
    """The JSON type the vendor field takes: an integer field gets an int, not "225"."""
    if vendor is not None and vendor.kind == "integer" and isinstance(value, str) and _is_integer(value):
        return int(value)
    return value


def from_vendor_value(vendor: VendorField | None, value: Any) -> Any:
    """Numbers cross protobuf Structs as doubles: 225.0 from an integer field is 225."""
    if vendor is not None and vendor.kind == "integer" and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _is_integer(text: str) -> bool:
    return text.lstrip("-").isdigit()


def hub_value(entity_type: str, hub_field: str) -> Value:
    return HUB_VALUES.get(entity_type, {}).get(hub_field, _TEXT)
