"""Salesforce Health Cloud Person Account <-> FHIR R4 Patient (docs/vendors/VENDOR_APIS.md §3).
Both ways go through libs.fhir_patient's canonical fields, so a hub -> Salesforce -> hub round trip
keeps every field a Person Account carries.

| Person Account | FHIR Patient |
|---|---|
| Id | identifier[system=ACCOUNT_ID_SYSTEM] (and the external id) |
| Concord_Patient_Id__c | out: the resource's id (the hub id); in: identifier[system=CONCORD_ID_SYSTEM] |
| FirstName / LastName | primary name given (words joined) / family; LastName is required |
| PersonEmail | telecom[system=email] |
| PersonMobilePhone, else PersonHomePhone | first telecom[system=phone]; out by its use (home -> Home) |
| PersonBirthdate | birthDate (whole dates only) |
| PersonGenderIdentity | gender: Male/Female <-> male/female, Nonbinary/Not Listed -> other -> Not Listed |
| PersonMailingStreet/City/State/PostalCode/Country | address[0] (street lines <-> newlines) |
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from libs.errors import InvalidArgument
from libs.fhir_patient import apply, hub_patient, locate, normalise_email, normalise_phone, parse_patient, project
from services.mapping import transforms
from services.mapping.domain import FieldError, HubResult, RecordInvalid
from services.mapping.rules import FieldRule, rules_from
from services.mapping.schema import VendorField, VendorSchema, string

ACCOUNT_ID_SYSTEM = "https://salesforce.com/account-id"
CONCORD_ID_SYSTEM = "urn:concord:patient-id"
EXTERNAL_ID_FIELD = "Concord_Patient_Id__c"
# Person Account field -> canonical field (phones are handled apart: two fields, one canonical phone).
FIELDS = {
    "FirstName": "given_name",
    "LastName": "family_name",
    "PersonEmail": "email",
    "PersonBirthdate": "birth_date",
    "PersonGenderIdentity": "gender",
    "PersonMailingStreet": "address_line",
    "PersonMailingCity": "city",
    "PersonMailingState": "state",
    "PersonMailingPostalCode": "postal_code",
    "PersonMailingCountry": "country",
}
PHONES = ("PersonMobilePhone", "PersonHomePhone")
# The Person Account fields an override may write, typed and sized as the Account describe gives
# them (sandbox/salesforce/schema.py follows it): Salesforce refuses a longer value
# (STRING_TOO_LONG), a date in another form, a value outside a restricted picklist. Picklists that
# are not restricted (gender identity, salutation) take any text up to their length. Custom fields
# (…__c) beyond Concord's own are not described here.
VENDOR_FIELDS = {
    "FirstName": string(40),
    "LastName": string(80),
    "PersonEmail": VendorField("email", 80),
    "PersonBirthdate": VendorField("date"),
    "PersonGenderIdentity": string(255),
    "PersonMobilePhone": VendorField("phone", 40),
    "PersonHomePhone": VendorField("phone", 40),
    "PersonMailingStreet": string(255),
    "PersonMailingCity": string(40),
    "PersonMailingState": string(80),
    "PersonMailingPostalCode": string(20),
    "PersonMailingCountry": string(80),
    EXTERNAL_ID_FIELD: string(255),
    "Description": string(32000),
    "PersonTitle": string(),  # not in the describe the sandbox follows: length unknown
    "Salutation": string(40),
}
LENGTHS = {name: field.max_length for name, field in VENDOR_FIELDS.items() if field.max_length}
GENDERS_IN = {"male": "male", "female": "female", "nonbinary": "other", "not listed": "other"}
GENDERS_OUT = {"male": "Male", "female": "Female", "other": "Not Listed"}


def _inbound_date(raw: str, field: str) -> str:
    try:
        return date.fromisoformat(raw).isoformat()
    except ValueError:
        raise InvalidArgument(f"{field} must be a date (YYYY-MM-DD)", field=field, reason="INVALID_DATE") from None


def _inbound_gender(raw: str, field: str) -> str:
    gender = GENDERS_IN.get(raw.lower())
    if gender is None:
        raise InvalidArgument(
            f"{field} must be one of Male, Female, Nonbinary, Not Listed", field=field, reason="INVALID_GENDER"
        )
    return gender


def _inbound_street(raw: str, field: str) -> str:
    # Salesforce keeps street lines on separate lines; the canonical address line joins them with ", ".
    return ", ".join(line.strip() for line in raw.splitlines() if line.strip())


_INBOUND: dict[str, Callable[[str, str], str]] = {
    "email": lambda raw, field: normalise_email(raw, field=field),
    "birth_date": _inbound_date,
    "gender": _inbound_gender,
    "address_line": _inbound_street,
}


def _string(record: dict, field: str, errors: list[FieldError]) -> str | None:
    raw = record.get(field)
    if raw is None:
        return None
    if not isinstance(raw, str):
        errors.append(FieldError(field, "INVALID_TYPE", f"{field} must be a string"))
        return None
    return raw.strip() or None


DEFAULT_TRANSFORMS = {
    "birth_date": ("date", {}),
    "gender": ("gender", {"codes": GENDERS_OUT}),
    "phone": ("phone_e164", {"region": "US"}),
}


class SalesforcePatientMapper:
    integration_type = "salesforce"
    entity_type = "ENTITY_TYPE_PATIENT"
    modified_field = "LastModifiedDate"  # the vendor's modification time (newest_wins)
    # Person Account fields an override may write: the mapped ones, and any custom field (…__c).
    vendor_schema = VendorSchema(VENDOR_FIELDS, custom_suffix="__c")

    def default_field_mappings(self) -> list[FieldRule]:
        # The canonical phone goes to PersonMobilePhone (PersonHomePhone is read when it is absent).
        return rules_from(self.entity_type, {**FIELDS, PHONES[0]: "phone"}, DEFAULT_TRANSFORMS)

    def to_hub(self, account: dict) -> HubResult:
        """A Person Account (query, collection or change-event shape) as a FHIR Patient."""
        account_id = account.get("Id")
        account_id = account_id if isinstance(account_id, str) else ""
        errors: list[FieldError] = []
        values: dict[str, str] = {}
        for sf_field, canonical in FIELDS.items():
            raw = _string(account, sf_field, errors)
            if raw is None:
                continue
            try:
                convert = _INBOUND.get(canonical)
                values[canonical] = convert(raw, sf_field) if convert else raw
            except InvalidArgument as error:
                errors.append(FieldError.of(error))
        phone_use = None
        for sf_field in PHONES:
            raw = _string(account, sf_field, errors)
            if raw is None or "phone" in values:
                continue
            try:
                values["phone"] = normalise_phone(raw, field=sf_field)
                phone_use = "mobile" if sf_field == "PersonMobilePhone" else "home"
            except InvalidArgument as error:
                errors.append(FieldError.of(error))
        concord_id = _string(account, EXTERNAL_ID_FIELD, errors)
        if "family_name" not in values and not any(e.field == "LastName" for e in errors):
            errors.append(FieldError("LastName", "MISSING_NAME", "the Person Account has no LastName"))
        if errors:
            raise RecordInvalid(errors, account_id)
        skeleton: dict = {"resourceType": "Patient"}
        identifiers = [(ACCOUNT_ID_SYSTEM, account_id), (CONCORD_ID_SYSTEM, concord_id)]
        if any(value for _, value in identifiers):
            skeleton["identifier"] = [{"system": system, "value": value} for system, value in identifiers if value]
        try:
            patient = apply(skeleton, values)
            for telecom in patient.get("telecom", []):
                if telecom["system"] == "phone":
                    telecom["use"] = phone_use
            street = account.get("PersonMailingStreet")
            if "address_line" in values and isinstance(street, str):
                # One FHIR line per street line, so the street goes back to Salesforce as it came.
                patient["address"][0]["line"] = [line.strip() for line in street.splitlines() if line.strip()]
            return HubResult(resource=parse_patient(patient), external_id=account_id)
        except InvalidArgument as error:
            raise RecordInvalid([FieldError.of(error)], account_id) from None

    def to_vendor(self, resource: dict) -> dict:
        """A FHIR Patient as a Person Account write body (no Id, no attributes), with the hub id in
        Concord_Patient_Id__c when the resource has one, so upserts on it are idempotent."""
        try:
            patient = hub_patient(resource)
        except InvalidArgument as error:
            raise RecordInvalid([FieldError.of(error)]) from None
        values, paths = project(patient), locate(patient)
        errors: list[FieldError] = []
        account: dict = {}
        if values["family_name"] is None:
            errors.append(FieldError(paths["family_name"], "MISSING_NAME", "the patient has no family name"))
        for sf_field, canonical in FIELDS.items():
            value = values[canonical]
            if canonical == "gender":
                value = transforms.gender_to_vendor(value, GENDERS_OUT) if value else None  # "unknown": not sent
            elif canonical == "birth_date" and value is not None and len(value) != 10:
                value = None  # a partial FHIR date (YYYY, YYYY-MM) stays in the hub
            elif canonical == "address_line" and value is not None:
                lines = patient["address"][0].get("line", [])
                value = "\n".join(line.strip() for line in lines if line.strip())
            if value is not None:
                account[sf_field] = value
        if values["phone"] is not None:
            try:
                phone = normalise_phone(values["phone"], field=paths["phone"])
                use = next(t.get("use") for t in patient["telecom"] if t.get("system") == "phone" and t.get("value"))
                account["PersonHomePhone" if use == "home" else "PersonMobilePhone"] = phone
            except InvalidArgument as error:
                errors.append(FieldError.of(error))
        if isinstance(patient.get("id"), str):
            account[EXTERNAL_ID_FIELD] = patient["id"]
        for sf_field, value in account.items():
            limit = LENGTHS.get(sf_field, 255)
            if len(value) > limit:
                path = paths[FIELDS[sf_field]] if sf_field in FIELDS else paths["phone"] if sf_field in PHONES else "id"
                errors.append(FieldError(path, "STRING_TOO_LONG", f"{sf_field} holds at most {limit} characters"))
        if errors:
            raise RecordInvalid(errors)
        return account
