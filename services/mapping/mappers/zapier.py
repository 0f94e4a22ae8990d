"""Zapier's flat records <-> FHIR R4 (services/adapters/zapier/README.md has the shapes).

Zapier has no schema of its own: a Zap sees whatever fields the app sends, and an action receives
the fields its user filled in. Concord's shape is therefore the hub's canonical projection with
plain names, the same both ways, so a Zap can send a delivered record back as an action.

| Zapier field | patient | appointment |
|---|---|---|
| external_id | the record's id at Zapier: the Zap's own id for records it created, `concord:<hub id>` for records the hub created | same |
| patient_id / appointment_id | out only: the hub id | out only |
| first_name, last_name | primary name given / family | |
| birth_date, gender, phone (E.164), email | birthDate, gender, telecom | |
| address_line, city, state, postal_code, country | address[0] | |
| patient_external_id | | the patient participant (the patient's external_id) |
| status, start, end, service_code, service_name, description | | the Appointment's |
| updated_at | out only: meta.lastUpdated | out only |
"""

from __future__ import annotations

from typing import Any

from libs import fhir_appointment, fhir_patient
from libs.errors import InvalidArgument
from services.mapping.domain import FieldError, HubResult, RecordInvalid

PATIENT_FIELDS = {
    "first_name": "given_name",
    "last_name": "family_name",
    "birth_date": "birth_date",
    "gender": "gender",
    "phone": "phone",
    "email": "email",
    "address_line": "address_line",
    "city": "city",
    "state": "state",
    "postal_code": "postal_code",
    "country": "country",
}
APPOINTMENT_FIELDS = ("status", "start", "end", "service_code", "service_name", "description")
MAX_LENGTH = 500
ZAPIER_ID_SYSTEM = "urn:concord:zapier-id"


def _strings(record: dict, names: Any, errors: list[FieldError]) -> dict[str, str]:
    values = {}
    for name in names:
        raw = record.get(name)
        if raw is None or raw == "":
            continue
        if not isinstance(raw, str):
            errors.append(FieldError(name, "INVALID_TYPE", f"{name} must be a string"))
        elif len(raw) > MAX_LENGTH:
            errors.append(FieldError(name, "STRING_TOO_LONG", f"{name} holds at most {MAX_LENGTH} characters"))
        elif raw.strip():
            values[name] = raw.strip()
    return values


def _external_id(record: dict, errors: list[FieldError]) -> str:
    found = _strings(record, ["external_id"], errors)
    if "external_id" not in found and not errors:
        errors.append(FieldError("external_id", "MISSING_EXTERNAL_ID", "external_id names the record at Zapier"))
    return found.get("external_id", "")


def _updated_at(resource: dict) -> str | None:
    return (resource.get("meta") or {}).get("lastUpdated")


class ZapierPatientMapper:
    integration_type = "zapier"
    entity_type = "ENTITY_TYPE_PATIENT"

    def to_hub(self, record: dict) -> HubResult:
        errors: list[FieldError] = []
        external_id = _external_id(record, errors)
        raw = _strings(record, PATIENT_FIELDS, errors)
        values: dict[str, str] = {}
        for name, value in raw.items():
            canonical = PATIENT_FIELDS[name]
            try:
                if canonical == "phone":
                    value = fhir_patient.normalise_phone(value, field=name)
                elif canonical == "email":
                    value = fhir_patient.normalise_email(value, field=name)
                elif canonical == "gender":
                    value = value.lower()
                    if value not in fhir_patient.GENDERS:
                        raise InvalidArgument(
                            "gender must be male, female, other or unknown", field=name, reason="INVALID_GENDER"
                        )
                elif canonical == "birth_date" and not fhir_patient.is_fhir_date(value):
                    raise InvalidArgument("birth_date must be YYYY-MM-DD", field=name, reason="INVALID_DATE")
                values[canonical] = value
            except InvalidArgument as error:
                errors.append(FieldError.of(error))
        if "family_name" not in values and not any(e.field == "last_name" for e in errors):
            errors.append(FieldError("last_name", "MISSING_NAME", "a patient needs a last_name"))
        if errors:
            raise RecordInvalid(errors, external_id)
        skeleton = {"resourceType": "Patient", "identifier": [{"system": ZAPIER_ID_SYSTEM, "value": external_id}]}
        try:
            return HubResult(fhir_patient.parse_patient(fhir_patient.apply(skeleton, values)), external_id)
        except InvalidArgument as error:
            raise RecordInvalid([FieldError.of(error)], external_id) from None

    def to_vendor(self, resource: dict) -> dict:
        try:
            patient = fhir_patient.hub_patient(resource)
        except InvalidArgument as error:
            raise RecordInvalid([FieldError.of(error)]) from None
        values = fhir_patient.project(patient)
        record: dict[str, Any] = {name: values[canonical] for name, canonical in PATIENT_FIELDS.items()}
        record["patient_id"] = patient.get("id")
        record["updated_at"] = _updated_at(patient)
        return {key: value for key, value in record.items() if value is not None}


class ZapierAppointmentMapper:
    integration_type = "zapier"
    entity_type = "ENTITY_TYPE_APPOINTMENT"

    def to_hub(self, record: dict) -> HubResult:
        errors: list[FieldError] = []
        external_id = _external_id(record, errors)
        values = _strings(record, (*APPOINTMENT_FIELDS, "patient_external_id"), errors)
        if "patient_external_id" not in values and not any(e.field == "patient_external_id" for e in errors):
            errors.append(FieldError("patient_external_id", "MISSING_PATIENT", "an appointment needs its patient"))
        for name in ("start", "end"):
            if name in values:
                try:
                    values[name] = fhir_appointment.instant(values[name]) or ""
                except ValueError:
                    errors.append(FieldError(name, "INVALID_DATETIME", f"{name} must be an ISO 8601 date-time"))
        if errors:
            raise RecordInvalid(errors, external_id)
        skeleton = {
            "resourceType": "Appointment",
            "status": values.pop("status", "booked"),
            "identifier": [{"system": ZAPIER_ID_SYSTEM, "value": external_id}],
            "participant": [{"actor": fhir_appointment.external_actor(values.pop("patient_external_id"))}],
        }
        for participant in skeleton["participant"]:
            participant["status"] = "accepted"
        try:
            appointment = fhir_appointment.apply(skeleton, values)
            return HubResult(fhir_appointment.parse_appointment(appointment), external_id)
        except InvalidArgument as error:
            raise RecordInvalid([FieldError.of(error)], external_id) from None

    def to_vendor(self, resource: dict) -> dict:
        try:
            appointment = fhir_appointment.parse_appointment(resource)
        except InvalidArgument as error:
            raise RecordInvalid([FieldError.of(error)]) from None
        values = fhir_appointment.project(appointment)
        record: dict[str, Any] = {name: values[name] for name in APPOINTMENT_FIELDS}
        patient = values["patient"] or ""
        if not patient.startswith("external:"):
            raise RecordInvalid([FieldError("participant", "PATIENT_NOT_LINKED", "the patient is not at Zapier")])
        record["patient_external_id"] = patient.removeprefix("external:")
        record["appointment_id"] = appointment.get("id")
        record["updated_at"] = _updated_at(appointment)
        return {key: value for key, value in record.items() if value is not None}
