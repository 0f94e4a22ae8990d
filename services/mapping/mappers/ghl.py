"""GoHighLevel contact <-> FHIR R4 Patient (docs/vendors/VENDOR_APIS.md §1 and
docs/vendors/gohighlevel/apps/contacts.json). Both ways go through libs.fhir_patient's canonical
fields, so a hub -> GHL -> hub round trip keeps every field GHL carries."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime

from libs.errors import InvalidArgument
from libs.fhir_patient import (
    CONSENT_FIELDS,
    DENY,
    PERMIT,
    apply,
    hub_patient,
    locate,
    normalise_email,
    normalise_phone,
    parse_patient,
    project,
)
from services.mapping.domain import FieldError, HubResult, RecordInvalid
from services.mapping.rules import FieldRule, rules_from
from services.mapping.schema import VendorField, VendorSchema, string
from services.mapping.transforms import country_code

CONTACT_ID_SYSTEM = "https://gohighlevel.com/contact-id"
# GHL contact field -> canonical field. All are in CreateContactDto / UpsertContactDto;
# UpdateContactDto (PUT) lacks only gender.
FIELDS = {
    "firstName": "given_name",
    "lastName": "family_name",
    "email": "email",
    "phone": "phone",
    "dateOfBirth": "birth_date",
    "gender": "gender",
    "address1": "address_line",
    "city": "city",
    "state": "state",
    "postalCode": "postal_code",
    "country": "country",
}
GENDERS = ("male", "female", "other")
# The hub's marketing consent per channel <-> that channel of GHL's dndSettings (DndSettingsSchema).
DND_CHANNELS = dict(zip(CONSENT_FIELDS, ("Email", "SMS"), strict=True))
# DndSettingSchema statuses that stop messages on a channel: read as the consent denied.
DND_ON = frozenset({"active", "permanent"})
_FULL_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _inbound_date(raw: str, field: str) -> str:
    # Reads give "YYYY-MM-DD", webhooks "2000-01-05T00:00:00.000Z": the date as written is the birth date.
    try:
        if _FULL_DATE.match(raw):
            return date.fromisoformat(raw).isoformat()
        return datetime.fromisoformat(raw).date().isoformat()
    except ValueError:
        raise InvalidArgument(
            f"{field} must be a date (YYYY-MM-DD or an ISO date-time)", field=field, reason="INVALID_DATE"
        ) from None


def _inbound_gender(raw: str, field: str) -> str:
    gender = raw.lower()
    if gender not in GENDERS:
        raise InvalidArgument(f"{field} must be one of {', '.join(GENDERS)}", field=field, reason="INVALID_GENDER")
    return gender


def _inbound_country(raw: str, field: str) -> str:
    return raw.upper() if len(raw) == 2 else raw


_INBOUND: dict[str, Callable[[str, str], str]] = {
    "email": lambda raw, field: normalise_email(raw, field=field),
    "phone": lambda raw, field: normalise_phone(raw, field=field),
    "birth_date": _inbound_date,
    "gender": _inbound_gender,
    "country": _inbound_country,
}


def consent_from_dnd(contact: dict) -> dict[str, str]:
    """The hub consent GHL's dndSettings say something about: a channel whose DND is on (active,
    permanent) is the consent denied. A DND that is off (inactive) is no consent: GHL fills every
    channel with inactive by default, and the all-channels `dnd` flag is not per channel; what
    does not read as a status is ignored rather than failing the contact."""
    settings = contact.get("dndSettings")
    found = {}
    for field, channel in DND_CHANNELS.items():
        setting = settings.get(channel) if isinstance(settings, dict) else None
        if isinstance(setting, dict) and setting.get("status") in DND_ON:
            found[field] = DENY
    return found


def dnd_from_consent(values: dict[str, str | None]) -> dict[str, dict[str, str]]:
    """dndSettings for the channels the hub has a consent for: permit lifts the channel's DND
    (inactive), deny sets it (active); a channel without one is not sent, so GHL keeps its own."""
    return {
        channel: {"status": "inactive" if values[field] == PERMIT else "active"}
        for field, channel in DND_CHANNELS.items()
        if values.get(field) in (PERMIT, DENY)
    }


_OUTBOUND: dict[str, Callable[[str, str], str | None]] = {
    "email": lambda value, field: normalise_email(value, field=field),
    "phone": lambda value, field: normalise_phone(value, field=field),
    # GHL stores whole dates only; a partial FHIR date (YYYY, YYYY-MM) stays in the hub.
    "birth_date": lambda value, field: value if _FULL_DATE.match(value) else None,
    # GHL has no "unknown".
    "gender": lambda value, field: value if value in GENDERS else None,
    "country": lambda value, field: country_code(value, field=field),
}


# What the code does to each canonical field, as a transform (services/mapping/transforms.py).
DEFAULT_TRANSFORMS = {
    "phone": ("phone_e164", {"region": "US"}),
    "birth_date": ("date", {}),
    "gender": ("gender", {"codes": {g: g for g in GENDERS}}),
    "country": ("country", {}),
}
# Writable top-level fields of UpsertContactDto (docs/vendors/gohighlevel/apps/contacts.json) with
# the types it documents (no maximum lengths are published); the sandbox, like GHL, refuses any
# other property. dateOfBirth is read in the formats GHL's validation names; country is ISO 3166
# alpha-2; gender is a plain string in the spec.
VENDOR_SCHEMA = VendorSchema(
    {
        **{name: string() for name in FIELDS},
        "name": string(),
        "email": VendorField("email"),
        "phone": VendorField("phone"),
        "dateOfBirth": VendorField("date", formats=("%Y-%m-%d", "%Y/%m/%d", "%m/%d/%Y")),
        "country": VendorField("code", 2),
        "source": string(),
        "companyName": string(),
        "website": string(),
        "timezone": string(),
        "tags": VendorField("list"),
        "dnd": VendorField("boolean"),
    },
    custom_lists=frozenset({"customFields"}),
)


class GhlPatientMapper:
    integration_type = "ghl"
    entity_type = "ENTITY_TYPE_PATIENT"
    modified_field = "dateUpdated"  # the vendor's modification time (newest_wins)
    vendor_schema = VENDOR_SCHEMA

    def default_field_mappings(self) -> list[FieldRule]:
        return rules_from(self.entity_type, FIELDS, DEFAULT_TRANSFORMS)

    def to_hub(self, contact: dict) -> HubResult:
        """A GHL contact (read, search or webhook shape) as a FHIR Patient."""
        contact_id = contact.get("id")
        contact_id = contact_id if isinstance(contact_id, str) else ""
        errors: list[FieldError] = []
        values: dict[str, str] = {}
        for ghl_field, canonical in FIELDS.items():
            raw = contact.get(ghl_field)
            if raw is None:
                continue
            if not isinstance(raw, str):
                errors.append(FieldError(ghl_field, "INVALID_TYPE", f"{ghl_field} must be a string"))
                continue
            if not raw.strip():
                continue
            try:
                convert = _INBOUND.get(canonical)
                values[canonical] = convert(raw.strip(), ghl_field) if convert else raw.strip()
            except InvalidArgument as error:
                errors.append(FieldError.of(error))
        if "given_name" not in values and "family_name" not in values:
            full = contact.get("name")
            # Contacts made with only "name": first word as given name, the rest as family name.
            words = full.split() if isinstance(full, str) else []
            if words:
                values["given_name"] = words[0]
                if words[1:]:
                    values["family_name"] = " ".join(words[1:])
            elif not any(e.field in ("firstName", "lastName") for e in errors):
                errors.append(FieldError("firstName", "MISSING_NAME", "the contact has no firstName, lastName or name"))
        if errors:
            raise RecordInvalid(errors, contact_id)
        values.update(consent_from_dnd(contact))
        skeleton: dict = {"resourceType": "Patient"}
        if contact_id:
            skeleton["identifier"] = [{"system": CONTACT_ID_SYSTEM, "value": contact_id}]
        try:
            patient = apply(skeleton, values)
            for telecom in patient.get("telecom", []):
                if telecom["system"] == "phone":
                    telecom["use"] = "mobile"  # GHL's phone is the one it texts
            return HubResult(resource=parse_patient(patient), external_id=contact_id)
        except InvalidArgument as error:
            raise RecordInvalid([FieldError.of(error)], contact_id) from None

    def to_vendor(self, resource: dict) -> dict:
        """A FHIR Patient as a GHL contact write body, without locationId or id."""
        try:
            patient = hub_patient(resource)
        except InvalidArgument as error:
            raise RecordInvalid([FieldError.of(error)]) from None
        values, paths = project(patient), locate(patient)
        errors: list[FieldError] = []
        if values["given_name"] is None and values["family_name"] is None:
            errors.append(FieldError("name", "MISSING_NAME", "the patient has no official or usual name"))
        contact: dict = {}
        for ghl_field, canonical in FIELDS.items():
            value = values[canonical]
            if value is None:
                continue
            try:
                convert = _OUTBOUND.get(canonical)
                value = convert(value, paths[canonical]) if convert else value
            except InvalidArgument as error:
                errors.append(FieldError.of(error))
                continue
            if value is not None:
                contact[ghl_field] = value
        if errors:
            raise RecordInvalid(errors)
        if dnd := dnd_from_consent(values):
            contact["dndSettings"] = dnd
        if patient.get("deceasedBoolean") or "deceasedDateTime" in patient:
            contact["dnd"] = True  # no marketing messages to a deceased patient's number or address
        return contact
