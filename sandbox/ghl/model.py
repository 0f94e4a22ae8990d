"""Contacts: DTO validation (NestJS whitelist style), normalisation, rendering and mutations."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

import phonenumbers

from .errors import GhlError, bad_request, unprocessable
from .state import Location, Sandbox

_STR, _BOOL, _EMAIL, _PHONE, _DOB, _COUNTRY = "str", "bool", "email", "phone", "dob", "country"
_TAGS, _CUSTOM, _DND, _INBOUND_DND = "tags", "custom", "dnd", "inbound"

_COMMON = {
    "firstName": _STR, "lastName": _STR, "name": _STR, "email": _EMAIL, "phone": _PHONE,
    "address1": _STR, "city": _STR, "state": _STR, "postalCode": _STR, "website": _STR,
    "timezone": _STR, "dnd": _BOOL, "dndSettings": _DND, "inboundDndSettings": _INBOUND_DND,
    "tags": _TAGS, "customFields": _CUSTOM, "source": _STR, "dateOfBirth": _DOB,
    "country": _COUNTRY, "assignedTo": _STR,
}  # fmt: skip
CREATE_DTO = {**_COMMON, "locationId": _STR, "gender": _STR, "companyName": _STR}
# The spec's UpdateContactDto has neither gender nor companyName (nor does v3's): they are rejected.
UPDATE_DTO = dict(_COMMON)
UPSERT_DTO = {**CREATE_DTO, "createNewIfDuplicateAllowed": _BOOL}
UI_EDIT_DTO = {**_COMMON, "gender": _STR, "companyName": _STR}

_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]{2,}$")
_COUNTRY_RE = re.compile(r"^[A-Za-z]{2}$")
_CF_KEYS = ("id", "key", "field_value")
_DND_CHANNELS = ("Call", "Email", "SMS", "WhatsApp", "GMB", "FB")
_DOB_FORMATS = (
    (re.compile(r"^(\d{4})[-/](\d{1,2})[-/](\d{1,2})$"), (1, 2, 3)),
    (re.compile(r"^(\d{1,2})[-/](\d{1,2})[-/](\d{4})$"), (3, 1, 2)),
)
_RENDER_ORDER = (
    "id", "locationId", "name", "firstName", "lastName", "email", "emailLowerCase", "phone",
    "dateOfBirth", "gender", "address1", "city", "state", "postalCode", "country", "timezone",
    "companyName", "website", "tags", "source", "type", "assignedTo", "dnd", "dndSettings",
    "inboundDndSettings", "customFields", "firstNameLowerCase", "lastNameLowerCase",
    "fullNameLowerCase", "dateAdded", "dateUpdated",
)  # fmt: skip
# docs/webhook events/Contact{Create,Update,Delete}.md: contact fields at top level, no dateUpdated.
_WEBHOOK_FIELDS = (
    "locationId", "id", "address1", "city", "state", "companyName", "country", "source", "dateAdded",
    "dateOfBirth", "dnd", "email", "name", "firstName", "lastName", "phone", "postalCode", "tags",
    "website", "attachments", "assignedTo", "customFields",
)  # fmt: skip
DUPLICATE_MESSAGE = "This location does not allow duplicated contacts."


def iso_ms(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def normalize_phone(raw: str, region: str = "US") -> str | None:
    """E.164, or None if `raw` cannot be a phone number (possible, not necessarily assigned)."""
    try:
        number = phonenumbers.parse(raw, region.upper())
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def parse_dob(raw: str) -> str | None:
    text = raw.strip()
    if "T" in text:
        try:
            return datetime.fromisoformat(text.replace("Z", "+00:00")).date().isoformat()
        except ValueError:
            return None
    for pattern, (yi, mi, di) in _DOB_FORMATS:
        if m := pattern.match(text):
            try:
                return date(int(m.group(yi)), int(m.group(mi)), int(m.group(di))).isoformat()
            except ValueError:
                return None
    return None


def validate(body: Any, dto: dict[str, str], region: str = "US") -> dict[str, Any]:
    """Whitelist-validates `body` against `dto`; returns normalised values or raises 422."""
    if not isinstance(body, dict):
        raise bad_request("Bad Request")
    errors = [f"property {key} should not exist" for key in body if key not in dto]
    if "locationId" in dto and not (isinstance(body.get("locationId"), str) and body["locationId"]):
        errors += ["locationId must be a string", "locationId should not be empty"]
    if isinstance(body.get("country"), str) and _COUNTRY_RE.match(body["country"]):
        region = body["country"]
    values: dict[str, Any] = {}
    for key, kind in dto.items():
        if key not in body:
            continue
        value = body[key]
        if key == "locationId":
            values[key] = value
            continue
        if value is None and kind != _BOOL:  # null clears a field
            values[key] = [] if kind in (_TAGS, _CUSTOM) else None
            continue
        try:
            values[key] = _check(key, kind, value, region)
        except ValueError as exc:
            errors.extend(exc.args[0])
    if errors:
        raise unprocessable(errors)
    return values


def _check(key: str, kind: str, value: Any, region: str) -> Any:
    def fail(*messages: str) -> ValueError:
        return ValueError(list(messages))

    if kind == _BOOL:
        if not isinstance(value, bool):
            raise fail(f"{key} must be a boolean value")
        return value
    if kind == _TAGS:
        if not isinstance(value, list):
            raise fail(f"{key} must be an array")
        if not all(isinstance(t, str) for t in value):
            raise fail(f"each value in {key} must be a string")
        # GHL stores tags trimmed and lower-cased, without repeats.
        return list(dict.fromkeys(t.strip().lower() for t in value if t.strip()))
    if kind == _CUSTOM:
        return _check_custom_fields(value)
    if kind == _DND:
        return _check_dnd(key, value, _DND_CHANNELS, ("active", "inactive", "permanent"))
    if kind == _INBOUND_DND:
        return _check_dnd(key, value, ("all",), ("active", "inactive"))
    if not isinstance(value, str):
        raise fail(f"{key} must be a string")
    if kind == _EMAIL:
        if not value.strip():
            return None
        if not _EMAIL_RE.match(value.strip()):
            raise fail(f"{key} must be an email")
        return value.strip()
    if kind == _PHONE:
        if not value.strip():
            return None
        if (e164 := normalize_phone(value, region)) is None:
            raise fail(f"{key} must be a valid phone number")
        return e164
    if kind == _DOB:
        if not value.strip():
            return None
        if (dob := parse_dob(value)) is None:
            raise fail(f"{key} must be a valid date (YYYY-MM-DD, YYYY/MM/DD, MM/DD/YYYY or ISO 8601)")
        return dob
    if kind == _COUNTRY:
        if not _COUNTRY_RE.match(value):
            raise fail(f"{key} must be a valid ISO31661 Alpha2 code")
        return value.upper()
    return value


def _check_custom_fields(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise ValueError(["customFields must be an array"])
    errors = []
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            errors.append(f"customFields.{i} must be an object")
            continue
        errors += [f"customFields.{i}.property {k} should not exist" for k in item if k not in _CF_KEYS]
        if not isinstance(item.get("id") or item.get("key"), str):
            errors.append(f"customFields.{i}.id must be a string")
    if errors:
        raise ValueError(errors)
    return value


def _check_dnd(key: str, value: Any, channels: tuple[str, ...], statuses: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError([f"{key} must be an object"])
    errors = []
    for channel, setting in value.items():
        if channel not in channels:
            errors.append(f"{key}.property {channel} should not exist")
        elif not isinstance(setting, dict) or setting.get("status") not in statuses:
            errors.append(f"{key}.{channel}.status must be one of the following values: {', '.join(statuses)}")
    if errors:
        raise ValueError(errors)
    return value


def render(contact: dict[str, Any]) -> dict[str, Any]:
    """The contact as GET /contacts/{id} shows it; unset fields are left out."""
    first, last = contact.get("firstName"), contact.get("lastName")
    derived = {
        "emailLowerCase": contact["email"].lower() if contact.get("email") else None,
        "firstNameLowerCase": first.lower() if first else None,
        "lastNameLowerCase": last.lower() if last else None,
        "fullNameLowerCase": " ".join(p for p in (first, last) if p).lower() or None,
        "dateOfBirth": f"{contact['dateOfBirth']}T00:00:00.000Z" if contact.get("dateOfBirth") else None,
        "dateAdded": iso_ms(contact["dateAdded"]),
        "dateUpdated": iso_ms(contact["dateUpdated"]),
    }
    out = {}
    for key in _RENDER_ORDER:
        value = derived[key] if key in derived else contact.get(key)
        if value is not None:
            out[key] = value
    return out


def webhook_data(contact: dict[str, Any]) -> dict[str, Any]:
    full = {**render(contact), "attachments": []}
    return {key: full[key] for key in _WEBHOOK_FIELDS if key in full}


def find_duplicate(
    location: Location, email: str | None, phone: str | None, exclude: str | None = None
) -> tuple[str, str] | None:
    """(contactId, matchingField) of another contact holding this email (first) or phone."""
    candidates = (("email", location.by_email, email and email.lower()), ("phone", location.by_phone, phone))
    for field_name, index, key in candidates:
        if key and (found := index.get(key)) and found != exclude:
            return found, field_name
    return None


def duplicate_error(location: Location, match: tuple[str, str]) -> GhlError:
    contact_id, matching_field = match
    name = location.contacts[contact_id].get("name")
    return bad_request(
        DUPLICATE_MESSAGE, meta={"contactId": contact_id, "contactName": name, "matchingField": matching_field}
    )


def create_contact(sb: Sandbox, location: Location, values: dict[str, Any], *, notify: bool = True) -> dict[str, Any]:
    stamp = sb.stamp_ms()
    contact: dict[str, Any] = {
        "id": sb.new_id(),
        "locationId": location.id,
        "type": "lead",
        "dnd": False,
        "tags": [],
        "customFields": [],
        "dateAdded": stamp,
        "dateUpdated": stamp,
    }
    location.contacts[contact["id"]] = contact
    sb.contact_location[contact["id"]] = location.id
    _apply(sb, location, contact, values)
    if notify:
        _notify(sb, location, "ContactCreate", contact)
    return contact


def update_contact(sb: Sandbox, location: Location, contact: dict[str, Any], values: dict[str, Any]) -> None:
    contact["dateUpdated"] = sb.stamp_ms()
    _apply(sb, location, contact, values)
    _notify(sb, location, "ContactUpdate", contact)


def delete_contact(sb: Sandbox, location: Location, contact: dict[str, Any]) -> None:
    _index(location, contact, remove=True)
    del location.contacts[contact["id"]]
    del sb.contact_location[contact["id"]]
    _notify(sb, location, "ContactDelete", contact)


def _apply(sb: Sandbox, location: Location, contact: dict[str, Any], values: dict[str, Any]) -> None:
    _index(location, contact, remove=True)
    for key, value in values.items():
        if key in ("locationId", "createNewIfDuplicateAllowed"):
            continue
        if key == "customFields":
            contact["customFields"] = _merge_custom_fields(location, contact["customFields"], value)
        elif key in ("dndSettings", "inboundDndSettings") and isinstance(value, dict):
            # Simulator-chosen: per channel, as GHL's contact screen toggles them; a channel not named keeps its setting.
            contact[key] = {**(contact.get(key) or {}), **value}
        else:
            contact[key] = value
    if "name" not in values and ("firstName" in values or "lastName" in values):
        contact["name"] = " ".join(p for p in (contact.get("firstName"), contact.get("lastName")) if p) or None
    _index(location, contact)


def _merge_custom_fields(
    location: Location, current: list[dict[str, Any]], writes: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    merged = {cf["id"]: cf["value"] for cf in current}
    for write in writes:
        field_id = custom_field_id(location, write.get("id") or write.get("key"))
        if field_id is None:
            continue  # GHL ignores values for fields the location does not define
        value = write.get("field_value")
        if value in (None, "", []):
            merged.pop(field_id, None)
        else:
            merged[field_id] = value
    return [{"id": k, "value": v} for k, v in merged.items()]


def custom_field_id(location: Location, id_or_key: str) -> str | None:
    """A field's id from its id, its fieldKey ("contact.insurer") or its key without the model prefix."""
    if id_or_key in location.custom_fields:
        return id_or_key
    for field_id, definition in location.custom_fields.items():
        key = definition["fieldKey"]
        if id_or_key in (key, key.split(".", 1)[-1]):
            return field_id
    return None


def change_tags(sb: Sandbox, location: Location, contact: dict[str, Any], tags: list[str], *, add: bool) -> None:
    """POST/DELETE /contacts/{id}/tags: fires ContactTagUpdate (not ContactUpdate)."""
    current = contact["tags"]
    contact["tags"] = list(dict.fromkeys([*current, *tags])) if add else [t for t in current if t not in tags]
    contact["dateUpdated"] = sb.stamp_ms()
    _notify(sb, location, "ContactTagUpdate", contact)


def _index(location: Location, contact: dict[str, Any], *, remove: bool = False) -> None:
    for index, key in ((location.by_email, contact.get("email")), (location.by_phone, contact.get("phone"))):
        if not key:
            continue
        key = key.lower()
        if remove:
            if index.get(key) == contact["id"]:
                del index[key]
        else:
            index.setdefault(key, contact["id"])


def _notify(sb: Sandbox, location: Location, event: str, contact: dict[str, Any]) -> None:
    notify(sb, location, event, webhook_data(contact))


def notify(sb: Sandbox, location: Location, event: str, data: dict[str, Any]) -> None:
    if urls := sb.webhook_urls(location.id):
        sb.webhooks.emit(event, data, urls)
