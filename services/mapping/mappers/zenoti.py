"""Zenoti guest <-> FHIR R4 Patient (docs/vendors/VENDOR_APIS.md §2; the guest objects of
GET/POST/PUT /v1/guests and the ``data`` of Guest.* webhooks). Both ways go through
libs.fhir_patient's canonical fields, so a hub -> Zenoti -> hub round trip keeps every field Zenoti
carries. Errors name the Zenoti field path (to hub) or the FHIR path (to Zenoti), never the value.

Zenoti keeps countries and US states as ids. Its tables are not published: 225 = United States is
documented; the state ids are the sandbox's (the 50 states and DC alphabetically from 1, -1 unset,
-2 other with ``state_other``) and must be checked against a real organisation before go-live.
"""

from __future__ import annotations

import re
from datetime import date

import phonenumbers

from libs.errors import InvalidArgument
from libs.fhir_patient import apply, hub_patient, locate, normalise_email, normalise_phone, parse_patient, project
from services.mapping.domain import FieldError, HubResult, RecordInvalid
from services.mapping.rules import FieldRule, rules_from
from services.mapping.schema import VendorField, VendorSchema, string

GUEST_ID_SYSTEM = "https://zenoti.com/guest-id"
US = 225
# mobile_phone.country_code: Zenoti's country id (225, docs); 1, a dial code, is seen in samples too.
PHONE_REGIONS = {US: "US", 1: "US"}
GENDERS = {0: "female", 1: "male"}  # -1: not specified
UNSET_ID, OTHER_STATE = -1, -2
US_STATES = (
    ("AL", "Alabama"), ("AK", "Alaska"), ("AZ", "Arizona"), ("AR", "Arkansas"), ("CA", "California"),
    ("CO", "Colorado"), ("CT", "Connecticut"), ("DE", "Delaware"), ("DC", "District of Columbia"),
    ("FL", "Florida"), ("GA", "Georgia"), ("HI", "Hawaii"), ("ID", "Idaho"), ("IL", "Illinois"),
    ("IN", "Indiana"), ("IA", "Iowa"), ("KS", "Kansas"), ("KY", "Kentucky"), ("LA", "Louisiana"),
    ("ME", "Maine"), ("MD", "Maryland"), ("MA", "Massachusetts"), ("MI", "Michigan"), ("MN", "Minnesota"),
    ("MS", "Mississippi"), ("MO", "Missouri"), ("MT", "Montana"), ("NE", "Nebraska"), ("NV", "Nevada"),
    ("NH", "New Hampshire"), ("NJ", "New Jersey"), ("NM", "New Mexico"), ("NY", "New York"),
    ("NC", "North Carolina"), ("ND", "North Dakota"), ("OH", "Ohio"), ("OK", "Oklahoma"), ("OR", "Oregon"),
    ("PA", "Pennsylvania"), ("RI", "Rhode Island"), ("SC", "South Carolina"), ("SD", "South Dakota"),
    ("TN", "Tennessee"), ("TX", "Texas"), ("UT", "Utah"), ("VT", "Vermont"), ("VA", "Virginia"),
    ("WA", "Washington"), ("WV", "West Virginia"), ("WI", "Wisconsin"), ("WY", "Wyoming"),
)  # fmt: skip
STATE_CODES = {n: code for n, (code, _) in enumerate(US_STATES, 1)}
STATE_IDS = {key.casefold(): n for n, pair in enumerate(US_STATES, 1) for key in pair}
_US_NAMES = {"us", "usa", "united states", "united states of america"}
_DATE = re.compile(r"^(\d{4}-\d{2}-\d{2})(T[\d:.]+Z?)?$")
_NAME_PATHS = {"personal_info", *(f"personal_info.{k}" for k in ("first_name", "middle_name", "last_name"))}


def errors_at(errors: list[FieldError], paths: set[str]) -> bool:
    return any(e.field in paths for e in errors)


def _section(guest: dict, key: str, errors: list[FieldError]) -> dict:
    value = guest.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        errors.append(FieldError(key, "INVALID_TYPE", f"{key} must be an object"))
        return {}
    return value


def _text(section: dict, key: str, path: str, errors: list[FieldError]) -> str | None:
    value = section.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        errors.append(FieldError(path, "INVALID_TYPE", f"{path} must be a string"))
        return None
    return " ".join(value.split()) or None


def _id(section: dict, key: str, path: str, errors: list[FieldError]) -> int | None:
    value = section.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        value = int(value)  # some Zenoti payloads send numbers as strings (therapists' gender)
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # records cross protobuf Structs, where every number is a double
    if isinstance(value, bool) or not isinstance(value, int):
        errors.append(FieldError(path, "INVALID_TYPE", f"{path} must be an integer"))
        return None
    return value


def _inbound_phone(info: dict, errors: list[FieldError]) -> str | None:
    phone = info.get("mobile_phone")
    if phone is None:
        return None
    if not isinstance(phone, dict):
        errors.append(FieldError("personal_info.mobile_phone", "INVALID_TYPE", "mobile_phone must be an object"))
        return None
    number = phone.get("number")
    if isinstance(number, int) and not isinstance(number, bool):
        number = str(number)
    path = "personal_info.mobile_phone.number"
    if number is None or (isinstance(number, str) and not number.strip()):
        return None
    if not isinstance(number, str):
        errors.append(FieldError(path, "INVALID_TYPE", f"{path} must be a string"))
        return None
    code = _id(phone, "country_code", "personal_info.mobile_phone.country_code", errors)
    region = "US" if code is None else PHONE_REGIONS.get(code)
    if region is None and not number.strip().startswith("+"):
        errors.append(
            FieldError(
                "personal_info.mobile_phone.country_code",
                "INVALID_PHONE",
                "mobile_phone.country_code is not a country the adapter can dial",
            )
        )
        return None
    try:
        return normalise_phone(number.strip(), region or "US", field=path)
    except InvalidArgument as error:
        errors.append(FieldError.of(error))
        return None


def _inbound_date(info: dict, errors: list[FieldError]) -> str | None:
    raw = _text(info, "date_of_birth", "personal_info.date_of_birth", errors)
    if raw is None:
        return None
    match = _DATE.match(raw)
    try:
        born = date.fromisoformat(match.group(1)) if match else None
    except ValueError:
        born = None
    if born is None:
        errors.append(
            FieldError("personal_info.date_of_birth", "INVALID_DATE", "date_of_birth must be YYYY-MM-DD[Thh:mm:ss]")
        )
        return None
    return None if born.year == 1 else born.isoformat()  # 0001-01-01: Zenoti's unset date


def _inbound_state(address: dict, errors: list[FieldError]) -> str | None:
    state_id = _id(address, "state_id", "address_info.state_id", errors)
    other = _text(address, "state_other", "address_info.state_other", errors)
    if state_id is not None and state_id > 0:
        return STATE_CODES.get(state_id)  # an id outside the table stays unknown rather than guessed
    return other


# Guest field path -> canonical field, as the code maps them (middle_name joins the given name,
# address_2 the address line; countries and states are Zenoti ids).
FIELDS = {
    "personal_info.first_name": "given_name",
    "personal_info.last_name": "family_name",
    "personal_info.email": "email",
    "personal_info.mobile_phone.number": "phone",
    "personal_info.date_of_birth": "birth_date",
    "personal_info.gender": "gender",
    "address_info.address_1": "address_line",
    "address_info.city": "city",
    "address_info.state_id": "state",
    "address_info.zip_code": "postal_code",
    "address_info.country_id": "country",
}
DEFAULT_TRANSFORMS = {
    "phone": ("phone_national", {"region": "US"}),
    "birth_date": ("date", {}),
    "gender": ("enum", {"values": {"female": "0", "male": "1"}}),
    "state": ("enum", {"values": {code: str(n) for n, code in STATE_CODES.items()}}),
    "country": ("enum", {"values": {"US": str(US)}}),
}


# The guest fields an override may name, typed as docs/vendors/VENDOR_APIS.md §2 documents them
# (Zenoti publishes no lengths): ids are integers, dates of birth are read as YYYY-MM-DD or with a
# time of day.
VENDOR_SCHEMA = VendorSchema(
    {
        **{f"personal_info.{name}": string() for name in ("first_name", "middle_name", "last_name", "user_name")},
        "personal_info.email": VendorField("email"),
        "personal_info.mobile_phone.number": VendorField("phone"),
        "personal_info.mobile_phone.country_code": VendorField("integer"),
        "personal_info.date_of_birth": VendorField("date", formats=("%Y-%m-%d", "%Y-%m-%dT%H:%M:%S")),
        "personal_info.anniversary_date": VendorField("date", formats=("%Y-%m-%d", "%Y-%m-%dT%H:%M:%S")),
        "personal_info.gender": VendorField("integer"),
        "personal_info.nationality_id": VendorField("integer"),
        "personal_info.is_minor": VendorField("boolean"),
        **{f"address_info.{name}": string() for name in ("address_1", "address_2", "city", "state_other", "zip_code")},
        "address_info.state_id": VendorField("integer"),
        "address_info.country_id": VendorField("integer"),
    }
)


class ZenotiPatientMapper:
    integration_type = "zenoti"
    entity_type = "ENTITY_TYPE_PATIENT"
    vendor_schema = VENDOR_SCHEMA

    def default_field_mappings(self) -> list[FieldRule]:
        return rules_from(self.entity_type, FIELDS, DEFAULT_TRANSFORMS)

    def to_hub(self, guest: dict) -> HubResult:
        """A Zenoti guest (API object or webhook ``data``) as a FHIR Patient."""
        guest_id = guest.get("id")
        guest_id = guest_id if isinstance(guest_id, str) else ""
        errors: list[FieldError] = []
        info = _section(guest, "personal_info", errors)
        address = _section(guest, "address_info", errors)
        values: dict[str, str | None] = {}
        given = [_text(info, key, f"personal_info.{key}", errors) for key in ("first_name", "middle_name")]
        values["given_name"] = " ".join(part for part in given if part) or None
        values["family_name"] = _text(info, "last_name", "personal_info.last_name", errors)
        if values["given_name"] is None and values["family_name"] is None and not errors_at(errors, _NAME_PATHS):
            errors.append(FieldError("personal_info.first_name", "MISSING_NAME", "the guest has no first or last name"))
        email = _text(info, "email", "personal_info.email", errors)
        if email is not None:
            try:
                values["email"] = normalise_email(email, field="personal_info.email")
            except InvalidArgument as error:
                errors.append(FieldError.of(error))
        values["phone"] = _inbound_phone(info, errors)
        gender = _id(info, "gender", "personal_info.gender", errors)
        if gender is not None and gender != UNSET_ID:
            if gender in GENDERS:
                values["gender"] = GENDERS[gender]
            else:
                errors.append(FieldError("personal_info.gender", "INVALID_GENDER", "gender must be -1, 0 or 1"))
        values["birth_date"] = _inbound_date(info, errors)
        lines = [_text(address, key, f"address_info.{key}", errors) for key in ("address_1", "address_2")]
        values["address_line"] = ", ".join(line for line in lines if line) or None
        values["city"] = _text(address, "city", "address_info.city", errors)
        values["postal_code"] = _text(address, "zip_code", "address_info.zip_code", errors)
        values["state"] = _inbound_state(address, errors)
        country = _id(address, "country_id", "address_info.country_id", errors)
        values["country"] = "US" if country == US else None  # other ids are not published
        if errors:
            raise RecordInvalid(errors, guest_id)
        skeleton: dict = {"resourceType": "Patient"}
        if guest_id:
            skeleton["identifier"] = [{"system": GUEST_ID_SYSTEM, "value": guest_id}]
        try:
            patient = apply(skeleton, {k: v for k, v in values.items() if v is not None})
            for telecom in patient.get("telecom", []):
                if telecom["system"] == "phone":
                    telecom["use"] = "mobile"
            return HubResult(resource=parse_patient(patient), external_id=guest_id)
        except InvalidArgument as error:
            raise RecordInvalid([FieldError.of(error)], guest_id) from None

    def to_vendor(self, resource: dict) -> dict:
        """A FHIR Patient as the fields of a guest the hub owns: ``personal_info`` and
        ``address_info`` with only what the hub holds (no ``id``, no ``center_id``). The adapter
        writes them over the guest it reads, so what is absent here stays as Zenoti has it."""
        try:
            patient = hub_patient(resource)
        except InvalidArgument as error:
            raise RecordInvalid([FieldError.of(error)]) from None
        values, paths = project(patient), locate(patient)
        errors: list[FieldError] = []
        given, family = values["given_name"], values["family_name"]
        if given is None or family is None:
            field = (
                "name" if given is None and family is None else paths["given_name" if given is None else "family_name"]
            )
            errors.append(FieldError(field, "MISSING_NAME", "Zenoti needs a given and a family name"))
        info: dict = {}
        if given and family:
            words = given.split()
            # The hub's given name is the whole of first + middle: an old middle name must not stay.
            info.update(first_name=words[0], middle_name=" ".join(words[1:]), last_name=family)
        if values["email"] is not None:
            try:
                info["email"] = normalise_email(values["email"], field=paths["email"])
            except InvalidArgument as error:
                errors.append(FieldError.of(error))
        if values["phone"] is not None:
            try:
                number = phonenumbers.parse(normalise_phone(values["phone"], field=paths["phone"]))
                if number.country_code == 1:  # other countries' Zenoti ids are not published
                    national = phonenumbers.national_significant_number(number)
                    info["mobile_phone"] = {"country_code": US, "number": national}
            except InvalidArgument as error:
                errors.append(FieldError.of(error))
        if values["gender"] in ("female", "male"):
            info["gender"] = {v: k for k, v in GENDERS.items()}[values["gender"]]
        birth = values["birth_date"]
        if birth is not None and len(birth) == 10:  # Zenoti stores whole dates; a partial one stays in the hub
            info["date_of_birth"] = f"{birth}T00:00:00"
        if errors:
            raise RecordInvalid(errors)
        guest: dict = {"personal_info": info}
        address = self._address(values)
        if address:
            guest["address_info"] = address
        return guest

    @staticmethod
    def _address(values: dict[str, str | None]) -> dict:
        address: dict = {}
        if values["address_line"] is not None:
            first, _, rest = values["address_line"].partition(", ")
            address.update(address_1=first.strip(), address_2=rest.strip())
        if values["city"] is not None:
            address["city"] = values["city"]
        if values["postal_code"] is not None:
            address["zip_code"] = values["postal_code"]
        country = values["country"]
        us = country is not None and country.casefold() in _US_NAMES
        if us:
            address["country_id"] = US
        state = values["state"]
        if state is not None:
            state_id = STATE_IDS.get(state.casefold()) if us or country is None else None
            if state_id is not None:
                address.update(state_id=state_id, state_other="")
            else:
                address.update(state_id=OTHER_STATE, state_other=state)
        return address
