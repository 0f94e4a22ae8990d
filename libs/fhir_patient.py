"""The hub's canonical patient: a FHIR R4 Patient validated with fhir.resources, and the flat
projection of it that the sync service merges field by field.

``project`` reads the fields every vendor shares (primary name, birth date, gender, first phone
and email, first address) and the hub's marketing consent per channel where one is recorded;
``apply`` writes them back into a copy of the resource and leaves everything else alone, so
``project(apply(p, c)) == {**project(p), **c}`` (a consent field set to None is absent, not None).
Errors name the field (a FHIR path or a canonical field), never its value.

Marketing consent (``CONSENT_FIELDS``) is the hub's own record of whether the patient agreed to
marketing by email and by SMS: one Patient extension per channel (``MARKETING_CONSENT_URL``, a
complex extension: ``channel`` a ContactPoint.system code, ``email`` or ``sms``; ``decision`` a
consent provision type, ``permit`` or ``deny``, as R4's Consent.provision.type and R5's
Consent.decision). An extension, not a Consent resource: one record, one link and one merge, like
the catalog's price. Absent means nothing is recorded, which allows no marketing. It is not one of
``CANONICAL_FIELDS`` (the fields field mappings may address); vendors that do not map it leave it alone.
"""

from __future__ import annotations

import copy
import json
import re
from datetime import date
from typing import Any

import phonenumbers
import pydantic
from fhir.resources.R4B.patient import Patient

from libs.errors import InvalidArgument
from libs.fhir_values import set_or_drop

CANONICAL_FIELDS = (
    "given_name",
    "family_name",
    "birth_date",
    "gender",
    "phone",
    "email",
    "address_line",
    "city",
    "state",
    "postal_code",
    "country",
)
# The hub's marketing consent per channel: field -> the extension's channel code (ContactPoint.system).
CONSENT_CHANNELS = {"email_marketing_consent": "email", "sms_marketing_consent": "sms"}
CONSENT_FIELDS = tuple(CONSENT_CHANNELS)
# Consent provision types (R4 consent-provision-type; R5 Consent.decision): the projected values.
PERMIT, DENY = "permit", "deny"
CONSENT_DECISIONS = (PERMIT, DENY)
MARKETING_CONSENT_URL = "https://concord.health/fhir/StructureDefinition/marketing-consent"
# Every field a projection may hold: what the merge compares and apply writes.
PROJECTED_FIELDS = CANONICAL_FIELDS + CONSENT_FIELDS
GENDERS = ("male", "female", "other", "unknown")
INVALID_FHIR_RESOURCE = "INVALID_FHIR_RESOURCE"

# Required bindings of the elements the projection covers: fhir.resources does not check codes.
_CODES = {
    ("name", "use"): {"usual", "official", "temp", "nickname", "anonymous", "old", "maiden"},
    ("telecom", "system"): {"phone", "fax", "email", "pager", "url", "sms", "other"},
    ("telecom", "use"): {"home", "work", "temp", "old", "mobile"},
    ("address", "use"): {"home", "work", "temp", "old", "billing"},
    ("address", "type"): {"postal", "physical", "both"},
}
# The name the hub syncs: official first, then usual, then one with no use; never maiden, old, ...
_NAME_USES = ("official", "usual", None)
_ADDRESS_KEYS = {
    "address_line": "line",
    "city": "city",
    "state": "state",
    "postal_code": "postalCode",
    "country": "country",
}
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
_FHIR_DATE = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?$")


def parse_patient(resource_json: str | dict) -> dict:
    """Validates a FHIR R4 Patient and returns it as a plain dict without empty values."""
    patient = validated(resource_json, Patient)
    _check_codes(patient)
    return patient


def hub_patient(resource: dict) -> dict:
    """A hub Patient going out to a vendor: checked as FHIR R4 (as parse_patient checks it) and
    returned as it is. The hub stores its documents as parse_patient made them, and parse_patient of
    such a document gives it back unchanged; a dump of the validated model would cost twice the
    validation (fhir.resources serialises in Python), once more per record of every push."""
    validated(resource, Patient, dump=False)
    _check_codes(resource)
    return resource


def validated(resource_json: str | dict, model_class: type[pydantic.BaseModel], dump: bool = True) -> dict:
    """A resource (JSON text or dict) of ``model_class``'s type validated with fhir.resources, as a
    plain dict without empty values; InvalidArgument naming the path, never the value."""
    resource_type = model_class.__name__
    resource: Any = resource_json
    if isinstance(resource_json, str):
        try:
            resource = json.loads(resource_json)
        except ValueError:
            raise InvalidArgument("the resource is not JSON", field="", reason=INVALID_FHIR_RESOURCE) from None
    if not isinstance(resource, dict):
        raise InvalidArgument("the resource is not a JSON object", field="", reason=INVALID_FHIR_RESOURCE)
    if resource.get("resourceType") != resource_type:
        raise InvalidArgument(
            f"resourceType must be {resource_type}", field="resourceType", reason=INVALID_FHIR_RESOURCE
        )
    try:
        model = model_class.model_validate(resource)
    except pydantic.ValidationError as error:
        # pydantic's own message may quote the input: report the path and error type only.
        first = error.errors()[0]
        path = fhir_path(first["loc"])
        raise InvalidArgument(
            f"{path or 'the resource'} is not valid FHIR R4 ({first['type']})", field=path, reason=INVALID_FHIR_RESOURCE
        ) from None
    return model.model_dump(mode="json", exclude_none=True, by_alias=True) if dump else resource


def fhir_path(loc: tuple) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part == "resource_type":
            path += ".resourceType" if path else "resourceType"
        elif isinstance(part, str) and part.lstrip("_").isidentifier():
            path += f".{part}" if path else part
    return path


def _check_codes(patient: dict) -> None:
    if "gender" in patient and patient["gender"] not in GENDERS:
        raise InvalidArgument(
            "gender is not an AdministrativeGender code", field="gender", reason=INVALID_FHIR_RESOURCE
        )
    for (element, key), codes in _CODES.items():
        for i, item in enumerate(patient.get(element, [])):
            if key in item and item[key] not in codes:
                raise InvalidArgument(
                    f"{element}[{i}].{key} is not a code of its value set",
                    field=f"{element}[{i}].{key}",
                    reason=INVALID_FHIR_RESOURCE,
                )
    for i, telecom in enumerate(patient.get("telecom", [])):
        if "value" in telecom and "system" not in telecom:  # invariant cpt-2
            raise InvalidArgument(
                f"telecom[{i}].system is required with a value",
                field=f"telecom[{i}].system",
                reason=INVALID_FHIR_RESOURCE,
            )
    _check_consents(patient)


def _consent_parts(extension: dict) -> tuple[Any, Any]:
    """(channel, decision) of a marketing-consent extension, as written (None where missing)."""
    parts = {part.get("url"): part.get("valueCode") for part in extension.get("extension", [])}
    return parts.get("channel"), parts.get("decision")


def _check_consents(patient: dict) -> None:
    """A marketing-consent extension names one known channel, once, with a known decision."""
    seen: set[str] = set()
    for i, extension in enumerate(patient.get("extension", [])):
        if extension.get("url") != MARKETING_CONSENT_URL:
            continue
        channel, decision = _consent_parts(extension)
        parts = sorted(part.get("url") or "" for part in extension.get("extension", []))
        problem = None
        if parts != ["channel", "decision"]:
            problem = "must hold exactly a channel and a decision"
        elif channel not in CONSENT_CHANNELS.values():
            problem = "channel must be email or sms"
        elif decision not in CONSENT_DECISIONS:
            problem = "decision must be permit or deny"
        elif channel in seen:
            problem = "repeats a channel: one consent per channel"
        if problem:
            raise InvalidArgument(
                f"extension[{i}] (marketing consent) {problem}", field=f"extension[{i}]", reason=INVALID_FHIR_RESOURCE
            )
        seen.add(channel)


def normalise_phone(raw: str, region: str = "US", *, field: str = "phone") -> str:
    """E.164 form of a phone number; InvalidArgument INVALID_PHONE when it is not one."""
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        raise InvalidArgument(f"{field} is not a phone number", field=field, reason="INVALID_PHONE") from None
    # "Possible", not "valid": validity tables go stale and reject real numbers (and Synthea's 555s).
    if not phonenumbers.is_possible_number(number):
        raise InvalidArgument(f"{field} is not a phone number", field=field, reason="INVALID_PHONE")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalise_email(raw: str, *, field: str = "email") -> str:
    """Lower-cased, trimmed address; InvalidArgument INVALID_EMAIL when it is not one."""
    email = raw.strip().lower()
    if not _EMAIL.match(email):
        raise InvalidArgument(f"{field} is not an email address", field=field, reason="INVALID_EMAIL")
    return email


def is_fhir_date(value: str) -> bool:
    """YYYY, YYYY-MM or YYYY-MM-DD naming a real (part of a) date."""
    if not _FHIR_DATE.match(value):
        return False
    try:
        date.fromisoformat((value + "-01-01")[:10])
    except ValueError:
        return False
    return True


def _primary_name(patient: dict) -> int | None:
    names = patient.get("name", [])
    for use in _NAME_USES:
        for i, name in enumerate(names):
            if name.get("use") == use:
                return i
    return None


def _first_telecom(patient: dict, system: str) -> int | None:
    for i, telecom in enumerate(patient.get("telecom", [])):
        if telecom.get("system") == system and telecom.get("value"):
            return i
    return None


def _text(value: str | None) -> str | None:
    return (value or "").strip() or None


def _consent_index(patient: dict, channel: str) -> int | None:
    for i, extension in enumerate(patient.get("extension", [])):
        if extension.get("url") == MARKETING_CONSENT_URL and _consent_parts(extension)[0] == channel:
            return i
    return None


def project(patient: dict) -> dict[str, str | None]:
    """The canonical fields of a Patient, None where absent, and the consent fields it records
    (only those: a patient without a consent projects as it always did). Never raises on valid FHIR."""
    out: dict[str, str | None] = dict.fromkeys(CANONICAL_FIELDS)
    i = _primary_name(patient)
    if i is not None:
        name = patient["name"][i]
        out["given_name"] = " ".join(word for given in name.get("given", []) for word in given.split()) or None
        out["family_name"] = _text(name.get("family"))
    out["birth_date"] = patient.get("birthDate")
    out["gender"] = patient.get("gender")
    j = _first_telecom(patient, "phone")
    if j is not None:
        raw = patient["telecom"][j]["value"]
        try:
            out["phone"] = normalise_phone(raw)
        except InvalidArgument:
            out["phone"] = _text(raw)  # kept as stored, so a merge still sees it; mappers reject it
    k = _first_telecom(patient, "email")
    if k is not None:
        out["email"] = _text(patient["telecom"][k]["value"].lower())
    if patient.get("address"):
        address = patient["address"][0]
        out["address_line"] = ", ".join(line.strip() for line in address.get("line", []) if line.strip()) or None
        for field, key in _ADDRESS_KEYS.items():
            if key != "line":
                out[field] = _text(address.get(key))
    for field, channel in CONSENT_CHANNELS.items():
        c = _consent_index(patient, channel)
        if c is not None:
            out[field] = _consent_parts(patient["extension"][c])[1]
    return out


def locate(patient: dict) -> dict[str, str]:
    """The FHIR path each canonical field is read from (or would be written to)."""
    i, j, k = _primary_name(patient), _first_telecom(patient, "phone"), _first_telecom(patient, "email")
    name = f"name[{i}]." if i is not None else "name."
    address = "address[0]." if patient.get("address") else "address."
    paths = {
        "given_name": f"{name}given",
        "family_name": f"{name}family",
        "birth_date": "birthDate",
        "gender": "gender",
        "phone": f"telecom[{j}].value" if j is not None else "telecom",
        "email": f"telecom[{k}].value" if k is not None else "telecom",
    }
    paths.update({field: f"{address}{key}" for field, key in _ADDRESS_KEYS.items()})
    for field, channel in CONSENT_CHANNELS.items():
        c = _consent_index(patient, channel)
        paths[field] = f"extension[{c}]" if c is not None else "extension"
    return paths


def _canonical_value(field: str, value: str | None) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidArgument(f"{field} must be a string", field=field, reason="INVALID_TYPE")
    value = " ".join(value.split()) if field == "given_name" else value.strip()
    if not value:
        return None
    if field == "phone":
        return normalise_phone(value)
    if field == "email":
        return normalise_email(value)
    if field == "birth_date" and not is_fhir_date(value):
        raise InvalidArgument("birth_date is not a date", field=field, reason="INVALID_DATE")
    if field == "gender" and value not in GENDERS:
        raise InvalidArgument(f"gender must be one of {', '.join(GENDERS)}", field=field, reason="INVALID_GENDER")
    if field in CONSENT_CHANNELS and value not in CONSENT_DECISIONS:
        raise InvalidArgument(f"{field} must be permit or deny", field=field, reason="INVALID_CONSENT")
    return value


def apply(patient: dict, changes: dict[str, str | None]) -> dict:
    """A copy of ``patient`` with the projected ``changes`` written in; other content is kept."""
    unknown = sorted(set(changes) - set(PROJECTED_FIELDS))
    if unknown:
        raise InvalidArgument(
            f"{unknown[0]} is not a canonical patient field", field=unknown[0], reason="UNKNOWN_FIELD"
        )
    current = project(patient)
    todo = {field: _canonical_value(field, value) for field, value in changes.items()}
    todo = {field: value for field, value in todo.items() if value != current.get(field)}
    result = copy.deepcopy(patient)
    if "given_name" in todo or "family_name" in todo:
        _apply_name(result, todo)
    for field, key in (("birth_date", "birthDate"), ("gender", "gender")):
        if field in todo:
            set_or_drop(result, key, todo[field])
    for field in ("phone", "email"):
        if field in todo:
            _apply_telecom(result, field, todo[field])
    if todo.keys() & _ADDRESS_KEYS.keys():
        _apply_address(result, {field: value for field, value in todo.items() if field in _ADDRESS_KEYS})
    for field, channel in CONSENT_CHANNELS.items():
        if field in todo:
            _apply_consent(result, channel, todo[field])
    return result


def _apply_name(patient: dict, todo: dict[str, str | None]) -> None:
    i = _primary_name(patient)
    if i is None:
        if todo.get("given_name") is None and todo.get("family_name") is None:
            return
        patient.setdefault("name", []).append({"use": "official"})
        i = len(patient["name"]) - 1
    name = patient["name"][i]
    name.pop("text", None)  # would contradict the new parts
    if "given_name" in todo:
        set_or_drop(name, "given", todo["given_name"].split() if todo["given_name"] else None)
    if "family_name" in todo:
        set_or_drop(name, "family", todo["family_name"])
    if not name:
        name["use"] = "official"  # an empty element is not valid FHIR; keeps this name the primary one


def _apply_telecom(patient: dict, system: str, value: str | None) -> None:
    telecoms = patient.get("telecom", [])
    if value is None:
        # Every entry of the system goes, else the next one would surface as the projected value.
        set_or_drop(patient, "telecom", [t for t in telecoms if t.get("system") != system] or None)
        return
    j = _first_telecom(patient, system)
    if j is None:
        patient.setdefault("telecom", []).append({"system": system, "value": value})
    else:
        telecoms[j]["value"] = value


def _apply_address(patient: dict, todo: dict[str, str | None]) -> None:
    addresses = patient.get("address", [])
    if not addresses:
        if all(value is None for value in todo.values()):
            return
        addresses = patient["address"] = [{}]
    address = addresses[0]
    address.pop("text", None)  # would contradict the new parts
    for field, value in todo.items():
        key = _ADDRESS_KEYS[field]
        set_or_drop(address, key, [value] if key == "line" and value else value)
    if not address:
        if len(addresses) == 1:
            patient.pop("address")
        else:
            address["use"] = "old"  # an empty element is not valid FHIR; keeps the next one from surfacing


def _apply_consent(patient: dict, channel: str, decision: str | None) -> None:
    """The channel's consent extension set in place (or removed); other extensions keep their order."""
    i = _consent_index(patient, channel)
    if decision is None:
        if i is not None:
            del patient["extension"][i]
            if not patient["extension"]:
                patient.pop("extension")
        return
    extension = {
        "url": MARKETING_CONSENT_URL,
        "extension": [{"url": "channel", "valueCode": channel}, {"url": "decision", "valueCode": decision}],
    }
    if i is None:
        patient.setdefault("extension", []).append(extension)
    else:
        patient["extension"][i] = extension
