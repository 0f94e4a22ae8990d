"""The transformation library: pure functions a field mapping names (``transform.name`` with
``transform.params``), each with its inverse, so one rule works both ways.

Every function raises libs.errors.InvalidArgument naming the field (never quoting the value) when
a value cannot be converted; the mapping rules turn that into a per-field error.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers

from libs.errors import InvalidArgument
from libs.fhir_patient import normalise_phone

# ---- names ---------------------------------------------------------------------------------


def split_name(full: str) -> tuple[str | None, str | None]:
    """ "Ada King Lovelace" -> ("Ada", "King Lovelace"); one word is a given name only."""
    words = full.split()
    if not words:
        return None, None
    return words[0], " ".join(words[1:]) or None


def join_name(given: str | None, family: str | None) -> str | None:
    parts = [p.strip() for p in (given, family) if p and p.strip()]
    return " ".join(parts) or None


_CASES: dict[str, Callable[[str], str]] = {
    "upper": str.upper,
    "lower": str.lower,
    "title": lambda value: " ".join(w[:1].upper() + w[1:].lower() for w in value.split(" ")),
    "keep": lambda value: value,
}


def change_case(value: str, case: str, *, field: str = "value") -> str:
    convert = _CASES.get(case)
    if convert is None:
        raise InvalidArgument(f"case must be one of {', '.join(_CASES)}", field=field, reason="INVALID_TRANSFORM")
    return convert(value)


# ---- phones --------------------------------------------------------------------------------


def phone_e164(raw: str, region: str = "US", *, field: str = "phone") -> str:
    """A dialable number in E.164 (+15555550123); national numbers are read in ``region``."""
    return normalise_phone(raw, region.upper(), field=field)


def phone_national(e164: str, *, field: str = "phone") -> str:
    """E.164 -> the national format of its own country, e.g. (555) 555-0123."""
    number = phonenumbers.parse(phone_e164(e164, "US", field=field))
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)


# ---- dates and times -----------------------------------------------------------------------


def _zone(name: str, field: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidArgument(f"{field}: unknown time zone", field=field, reason="INVALID_TRANSFORM") from None


def parse_date(raw: str, fmt: str = "%Y-%m-%d", *, field: str = "date") -> str:
    """A date in ``fmt`` (or an ISO date-time, whose date as written counts) -> YYYY-MM-DD."""
    try:
        return datetime.strptime(raw, fmt).date().isoformat()
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(raw.replace("Z", "+00:00")).date().isoformat()
    except ValueError:
        raise InvalidArgument(f"{field} is not a date", field=field, reason="INVALID_DATE") from None


def format_date(iso: str, fmt: str = "%Y-%m-%d", *, field: str = "date") -> str:
    try:
        return date.fromisoformat(iso).strftime(fmt)
    except ValueError:
        raise InvalidArgument(f"{field} is not a full date", field=field, reason="INVALID_DATE") from None


def to_zone(raw: str, zone: str, *, naive_zone: str = "UTC", field: str = "datetime") -> str:
    """An ISO date-time shown in ``zone``; a date-time without offset is read in ``naive_zone``."""
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidArgument(f"{field} is not a date-time", field=field, reason="INVALID_DATETIME") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_zone(naive_zone, field))
    return moment.astimezone(_zone(zone, field)).isoformat()


# ---- genders -------------------------------------------------------------------------------

FHIR_GENDERS = ("male", "female", "other", "unknown")
DEFAULT_GENDER_CODES = {"male": "M", "female": "F", "other": "O", "unknown": "U"}


def gender_to_vendor(gender: str, codes: dict[str, str] | None = None, *, field: str = "gender") -> str | None:
    """FHIR administrative gender -> the vendor's code; None when the vendor has no code for it."""
    if gender not in FHIR_GENDERS:
        raise InvalidArgument(f"{field} must be one of {', '.join(FHIR_GENDERS)}", field=field, reason="INVALID_GENDER")
    return (codes or DEFAULT_GENDER_CODES).get(gender)


def gender_to_hub(code: str, codes: dict[str, str] | None = None, *, field: str = "gender") -> str:
    """The vendor's gender code (case-insensitive) -> FHIR administrative gender."""
    table = codes or DEFAULT_GENDER_CODES
    lookup = {str(v).lower(): k for k, v in table.items()} | {g: g for g in FHIR_GENDERS}
    gender = lookup.get(code.strip().lower())
    if gender is None:
        raise InvalidArgument(f"{field} is not a known gender code", field=field, reason="INVALID_GENDER")
    return gender


# ---- addresses -----------------------------------------------------------------------------

US_STATES = {
    "AL": "Alabama", "AK": "Alaska", "AZ": "Arizona", "AR": "Arkansas", "CA": "California", "CO": "Colorado",
    "CT": "Connecticut", "DE": "Delaware", "DC": "District of Columbia", "FL": "Florida", "GA": "Georgia",
    "HI": "Hawaii", "ID": "Idaho", "IL": "Illinois", "IN": "Indiana", "IA": "Iowa", "KS": "Kansas",
    "KY": "Kentucky", "LA": "Louisiana", "ME": "Maine", "MD": "Maryland", "MA": "Massachusetts",
    "MI": "Michigan", "MN": "Minnesota", "MS": "Mississippi", "MO": "Missouri", "MT": "Montana",
    "NE": "Nebraska", "NV": "Nevada", "NH": "New Hampshire", "NJ": "New Jersey", "NM": "New Mexico",
    "NY": "New York", "NC": "North Carolina", "ND": "North Dakota", "OH": "Ohio", "OK": "Oklahoma",
    "OR": "Oregon", "PA": "Pennsylvania", "RI": "Rhode Island", "SC": "South Carolina", "SD": "South Dakota",
    "TN": "Tennessee", "TX": "Texas", "UT": "Utah", "VT": "Vermont", "VA": "Virginia", "WA": "Washington",
    "WV": "West Virginia", "WI": "Wisconsin", "WY": "Wyoming", "PR": "Puerto Rico", "GU": "Guam",
    "VI": "U.S. Virgin Islands", "AS": "American Samoa", "MP": "Northern Mariana Islands",
}  # fmt: skip
_STATE_BY_NAME = {name.lower(): code for code, name in US_STATES.items()}


def us_state_code(raw: str, *, field: str = "state") -> str:
    """ "california", "Ca", "CA" -> "CA"."""
    value = raw.strip()
    if value.upper() in US_STATES:
        return value.upper()
    code = _STATE_BY_NAME.get(value.lower())
    if code is None:
        raise InvalidArgument(f"{field} is not a US state", field=field, reason="INVALID_STATE")
    return code


def us_state_name(raw: str, *, field: str = "state") -> str:
    return US_STATES[us_state_code(raw, field=field)]


_US_NAMES = {"us", "usa", "united states", "united states of america"}


def country_code(raw: str, *, field: str = "country") -> str:
    """A 2-letter country code; US spelt out is accepted."""
    value = raw.strip()
    if value.lower() in _US_NAMES:
        return "US"
    if len(value) == 2 and value.isalpha():
        return value.upper()
    raise InvalidArgument(f"{field} must be a 2-letter country code", field=field, reason="INVALID_COUNTRY")


def postal_code(raw: str, *, field: str = "postal_code") -> str:
    """Trims and upper-cases; a US ZIP+4 without its hyphen gets one."""
    value = re.sub(r"\s+", " ", raw.strip()).upper()
    if re.fullmatch(r"\d{9}", value):
        return f"{value[:5]}-{value[5:]}"
    if not value:
        raise InvalidArgument(f"{field} is empty", field=field, reason="INVALID_POSTAL_CODE")
    return value


# ---- enumerations --------------------------------------------------------------------------


def enum_to_vendor(value: str, values: dict[str, str], default: str | None = None, *, field: str = "value") -> str:
    mapped = values.get(value, default)
    if mapped is None:
        raise InvalidArgument(f"{field} has no vendor value in the mapping", field=field, reason="UNMAPPED_VALUE")
    return mapped


def enum_to_hub(
    value: str,
    values: dict[str, str],
    default: str | None = None,
    *,
    field: str = "value",
    hub_values: dict[str, str] | None = None,
) -> str:
    """The inverse of ``values`` or, when several hub values share a vendor value, ``hub_values``."""
    inverse = hub_values if hub_values is not None else {v: k for k, v in values.items()}
    mapped = inverse.get(value, default)
    if mapped is None:
        raise InvalidArgument(f"{field} has no hub value in the mapping", field=field, reason="UNMAPPED_VALUE")
    return mapped


# ---- custom fields -------------------------------------------------------------------------
# A vendor field written "customFields[<key>]" addresses one entry of a list of custom field
# values (GHL: written {key|id, field_value}, read {id, value}); any other path is dotted.

_CUSTOM = re.compile(r"^(?P<list>[A-Za-z_][\w]*)\[(?P<key>[^\[\]]+)\]$")


def read_field(record: dict, path: str) -> Any:
    custom = _CUSTOM.match(path)
    if custom:
        entries = record.get(custom["list"])
        key = custom["key"]
        short = key.split(".", 1)[1] if "." in key else key
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, dict) and key in (entry.get("id"), entry.get("key"), entry.get("fieldKey")):
                return entry.get("value", entry.get("field_value"))
            if isinstance(entry, dict) and short in (entry.get("key"), entry.get("fieldKey")):
                return entry.get("value", entry.get("field_value"))
        return None
    value: Any = record
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def write_field(record: dict, path: str, value: Any) -> None:
    """Sets (or, for None, removes) the field at ``path`` in place."""
    custom = _CUSTOM.match(path)
    if custom:
        entries = [
            e
            for e in record.get(custom["list"], [])
            if not (isinstance(e, dict) and custom["key"] in (e.get("id"), e.get("key")))
        ]
        if value is not None:  # a fieldKey ("contact.insurance_id") has a dot, an id has none
            entries.append({"key" if "." in custom["key"] else "id": custom["key"], "field_value": value})
        record[custom["list"]] = entries
        return
    *parents, last = path.split(".")
    target = record
    for part in parents:
        target = target.setdefault(part, {})
    if value is None:
        target.pop(last, None)
    else:
        target[last] = value


def is_field_path(path: str) -> bool:
    return bool(_CUSTOM.match(path) or re.fullmatch(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*", path))


# ---- the named transforms a field mapping can use ------------------------------------------


@dataclass(frozen=True)
class Transform:
    """A named pair: ``to_vendor(hub_value, params, field)`` and ``to_hub(vendor_value, params, field)``."""

    to_vendor: Callable[[Any, dict, str], Any]
    to_hub: Callable[[Any, dict, str], Any]
    params: frozenset[str] = frozenset()


def _text(value: Any, field: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise InvalidArgument(f"{field} must be a string", field=field, reason="INVALID_TYPE")
    return str(value).strip()


TRANSFORMS: dict[str, Transform] = {
    "identity": Transform(lambda v, p, f: v, lambda v, p, f: _text(v, f)),
    "case": Transform(
        lambda v, p, f: change_case(v, p.get("case", "keep"), field=f),
        lambda v, p, f: change_case(_text(v, f), p.get("case", "keep"), field=f),
        frozenset({"case"}),
    ),
    "phone_e164": Transform(
        lambda v, p, f: phone_e164(v, p.get("region", "US"), field=f),
        lambda v, p, f: phone_e164(_text(v, f), p.get("region", "US"), field=f),
        frozenset({"region"}),
    ),
    "phone_national": Transform(
        lambda v, p, f: phone_national(v, field=f),
        lambda v, p, f: phone_e164(_text(v, f), p.get("region", "US"), field=f),
        frozenset({"region"}),
    ),
    "date": Transform(
        lambda v, p, f: format_date(v, p.get("format", "%Y-%m-%d"), field=f),
        lambda v, p, f: parse_date(_text(v, f), p.get("format", "%Y-%m-%d"), field=f),
        frozenset({"format"}),
    ),
    "datetime_zone": Transform(
        lambda v, p, f: to_zone(v, p.get("zone", "UTC"), field=f),
        lambda v, p, f: to_zone(_text(v, f), "UTC", naive_zone=p.get("zone", "UTC"), field=f),
        frozenset({"zone"}),
    ),
    "gender": Transform(
        lambda v, p, f: gender_to_vendor(v, p.get("codes"), field=f),
        lambda v, p, f: gender_to_hub(_text(v, f), p.get("codes"), field=f),
        frozenset({"codes"}),
    ),
    "us_state": Transform(
        lambda v, p, f: us_state_name(v, field=f) if p.get("style") == "name" else us_state_code(v, field=f),
        lambda v, p, f: us_state_code(_text(v, f), field=f),
        frozenset({"style"}),
    ),
    "country": Transform(lambda v, p, f: country_code(v, field=f), lambda v, p, f: country_code(_text(v, f), field=f)),
    "postal_code": Transform(
        lambda v, p, f: postal_code(v, field=f), lambda v, p, f: postal_code(_text(v, f), field=f)
    ),
    "enum": Transform(
        lambda v, p, f: enum_to_vendor(v, p.get("values", {}), p.get("default"), field=f),
        lambda v, p, f: enum_to_hub(
            _text(v, f), p.get("values", {}), p.get("hub_default"), field=f, hub_values=p.get("hub_values")
        ),
        frozenset({"values", "default", "hub_default", "hub_values"}),
    ),
}


def check_transform(name: str, params: dict, *, field: str) -> None:
    """Names the field when a rule names an unknown transform, an unknown parameter or a bad value."""
    transform = TRANSFORMS.get(name or "identity")
    if transform is None:
        raise InvalidArgument(f"{field}: unknown transform", field=field, reason="UNKNOWN_TRANSFORM")
    unknown = sorted(set(params) - transform.params)
    if unknown:
        raise InvalidArgument(f"{field}: unknown parameter {unknown[0]}", field=field, reason="INVALID_TRANSFORM")
    if name == "enum" and not (
        isinstance(params.get("values"), dict) and all(isinstance(v, str) for v in params["values"].values())
    ):
        raise InvalidArgument(f"{field}: enum needs a values map of strings", field=field, reason="INVALID_TRANSFORM")
    if name == "gender" and "codes" in params and not isinstance(params["codes"], dict):
        raise InvalidArgument(f"{field}: codes must be a map", field=field, reason="INVALID_TRANSFORM")
    if name == "datetime_zone":
        _zone(str(params.get("zone", "UTC")), field)
    if name == "case":
        change_case("", str(params.get("case", "keep")), field=field)
    if name == "phone_e164" and str(params.get("region", "US")).upper() not in phonenumbers.SUPPORTED_REGIONS:
        raise InvalidArgument(f"{field}: unknown phone region", field=field, reason="INVALID_TRANSFORM")
