"""Salesforce ServiceAppointment <-> FHIR R4 Appointment (docs/vendors/VENDOR_APIS.md §3, the
sandbox's describe). Both ways go through libs.fhir_appointment's canonical fields.

| ServiceAppointment `Status` | FHIR `status`                                         |
|-----------------------------|-------------------------------------------------------|
| None                        | proposed  (and pending, waitlist to Salesforce)       |
| Scheduled                   | booked                                                |
| Dispatched                  | booked    (from Salesforce only)                      |
| In Progress                 | arrived   (and checked-in to Salesforce)              |
| Completed                   | fulfilled                                             |
| Cannot Complete             | noshow                                                |
| Canceled                    | cancelled (and entered-in-error to Salesforce)        |

- Id <-> identifier[APPOINTMENT_ID_SYSTEM] (and the external id); Concord_Appointment_Id__c: out the
  resource's id (the hub id, for idempotent upserts), in identifier[CONCORD_ID_SYSTEM].
- ParentRecordId (the Person Account) <-> the patient participant, a logical reference
  (fhir_appointment.external_actor) the sync service resolves through its patient links; out it is
  written to ParentRecordId and AccountId.
- SchedStartTime / SchedEndTime <-> start / end (UTC instants).
- Subject <-> serviceType[0].text (service_name); Description <-> description (PHI: never logged).
- AppointmentType (In Person, Video, Phone) <-> appointmentType coding in APPOINTMENT_TYPE_SYSTEM.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from libs import fhir_appointment
from libs.errors import InvalidArgument
from services.mapping.domain import FieldError, HubResult, RecordInvalid
from services.mapping.mappers import appointment_common
from services.mapping.rules import FieldRule, rules_from
from services.mapping.schema import VendorField, VendorSchema, code, string

APPOINTMENT_ID_SYSTEM = "https://salesforce.com/service-appointment-id"
APPOINTMENT_TYPE_SYSTEM = "https://salesforce.com/service-appointment-type"
CONCORD_ID_SYSTEM = "urn:concord:appointment-id"
EXTERNAL_ID_FIELD = "Concord_Appointment_Id__c"
APPOINTMENT_TYPES = ("In Person", "Video", "Phone")
TO_HUB_STATUS = {
    "None": "proposed",
    "Scheduled": "booked",
    "Dispatched": "booked",
    "In Progress": "arrived",
    "Completed": "fulfilled",
    "Cannot Complete": "noshow",
    "Canceled": "cancelled",
}
TO_SALESFORCE_STATUS = {
    "proposed": "None",
    "pending": "None",
    "waitlist": "None",
    "booked": "Scheduled",
    "arrived": "In Progress",
    "checked-in": "In Progress",
    "fulfilled": "Completed",
    "noshow": "Cannot Complete",
    "cancelled": "Canceled",
    "entered-in-error": "Canceled",
}
# FHIR app-3: only these may lack a start and end.
UNTIMED = ("proposed", "cancelled", "waitlist")
SUBJECT_LENGTH = 255


def _text(record: dict, field: str, errors: list[FieldError]) -> str | None:
    value = record.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        errors.append(FieldError(field, "INVALID_TYPE", f"{field} must be a string"))
        return None
    return value.strip() or None


def _instant(raw: str, field: str) -> str:
    """Salesforce's 2024-05-20T20:49:32.000+0000 (or any ISO 8601 with an offset) as a UTC instant."""
    moment = None
    for parse in (lambda v: datetime.strptime(v, "%Y-%m-%dT%H:%M:%S.%f%z"), datetime.fromisoformat):
        try:
            moment = parse(raw)
            break
        except ValueError:
            continue
    if moment is None or moment.tzinfo is None:
        raise InvalidArgument(f"{field} must be a date-time with an offset", field=field, reason="INVALID_DATE")
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def outbound(resource: dict) -> tuple[dict, dict, str, list[FieldError]]:
    """What both Salesforce appointment mappers write from: the hub appointment parsed and
    projected, its patient's Account Id ("" when Salesforce does not know it) and the errors so far."""
    appointment, view, errors, account_id = appointment_common.outbound(resource, "Salesforce")
    if view["service_name"] and len(view["service_name"]) > SUBJECT_LENGTH:
        errors.append(FieldError("serviceType", "STRING_TOO_LONG", f"Subject holds at most {SUBJECT_LENGTH}"))
    return appointment, view, account_id, errors


def inbound(appointment: dict[str, Any], record_id: str, id_system: str, texts: dict, patient: str) -> HubResult:
    """The rest of a FHIR Appointment from a Salesforce record (identifiers, Subject, Description,
    the patient participant), validated: what both Salesforce appointment mappers read into."""
    identifiers = [(id_system, record_id), (CONCORD_ID_SYSTEM, texts[EXTERNAL_ID_FIELD])]
    if any(value for _, value in identifiers):
        appointment["identifier"] = [{"system": s, "value": v} for s, v in identifiers if v]
    if texts["Subject"]:
        appointment["serviceType"] = [{"text": texts["Subject"]}]
    if texts.get("AppointmentType"):
        appointment["appointmentType"] = {
            "coding": [{"system": APPOINTMENT_TYPE_SYSTEM, "code": texts["AppointmentType"]}]
        }
    if texts["Description"]:
        appointment["description"] = texts["Description"]
    appointment["participant"] = [{"actor": fhir_appointment.external_actor(patient), "status": "accepted"}]
    try:
        return HubResult(resource=fhir_appointment.parse_appointment(appointment), external_id=record_id)
    except InvalidArgument as error:
        raise RecordInvalid([FieldError.of(error)], record_id) from None


class SalesforceAppointmentMapper:
    integration_type = "salesforce"
    entity_type = "ENTITY_TYPE_APPOINTMENT"
    modified_field = "LastModifiedDate"  # the vendor's modification time (newest_wins)
    # ServiceAppointment fields an override may write, as its describe types them: the mapped ones,
    # and any custom field (…__c). Status is a restricted picklist; AppointmentType is not.
    vendor_schema = VendorSchema(
        {
            "Status": code(*TO_HUB_STATUS, max_length=255),
            "SchedStartTime": VendorField("instant"),
            "SchedEndTime": VendorField("instant"),
            "Subject": string(SUBJECT_LENGTH),
            "Description": string(32000),
            "AppointmentType": string(255),
            "Comments": string(32000),
        },
        custom_suffix="__c",
    )

    def default_field_mappings(self) -> list[FieldRule]:
        """The fields the code maps one to one (the patient, type and ids are references and
        identifiers the code resolves, not rules); times are UTC instants both ways."""
        status = ("enum", {"values": TO_SALESFORCE_STATUS, "hub_values": TO_HUB_STATUS})
        utc = ("datetime_zone", {"zone": "UTC"})
        fields = {
            "Status": "status",
            "SchedStartTime": "start",
            "SchedEndTime": "end",
            "Subject": "service_name",
            "Description": "description",
        }
        return rules_from(self.entity_type, fields, {"status": status, "start": utc, "end": utc})

    def to_hub(self, record: dict) -> HubResult:
        """A ServiceAppointment (query, collection or change-event shape) as a FHIR Appointment."""
        record_id = record.get("Id") if isinstance(record.get("Id"), str) else ""
        errors: list[FieldError] = []
        texts = {
            f: _text(record, f, errors)
            for f in ("Status", "ParentRecordId", "Subject", "Description", "AppointmentType", EXTERNAL_ID_FIELD)
        }
        status = TO_HUB_STATUS.get(texts["Status"] or "None")
        if status is None and not any(e.field == "Status" for e in errors):
            errors.append(FieldError("Status", "INVALID_CODE", "Status is not a ServiceAppointment status"))
        if texts["ParentRecordId"] is None and not any(e.field == "ParentRecordId" for e in errors):
            errors.append(FieldError("ParentRecordId", "MISSING_PATIENT", "the appointment has no ParentRecordId"))
        times: dict[str, str] = {}
        for sf_field, fhir_field in (("SchedStartTime", "start"), ("SchedEndTime", "end")):
            raw = _text(record, sf_field, errors)
            if raw is None:
                if status not in UNTIMED and not any(e.field == sf_field for e in errors):
                    errors.append(FieldError(sf_field, "MISSING_TIME", f"a {status} appointment needs {sf_field}"))
                continue
            try:
                times[fhir_field] = _instant(raw, sf_field)
            except InvalidArgument as error:
                errors.append(FieldError.of(error))
        kind = texts["AppointmentType"]
        if kind is not None and kind not in APPOINTMENT_TYPES:
            errors.append(FieldError("AppointmentType", "INVALID_CODE", "AppointmentType is not In Person/Video/Phone"))
        if errors:
            raise RecordInvalid(errors, record_id)
        appointment: dict[str, Any] = {"resourceType": "Appointment", "status": status, **times}
        return inbound(appointment, record_id, APPOINTMENT_ID_SYSTEM, texts, texts["ParentRecordId"])

    def to_vendor(self, resource: dict) -> dict:
        """A FHIR Appointment as a ServiceAppointment write body (no Id, no attributes), with the hub
        id in Concord_Appointment_Id__c when the resource has one, so upserts on it are idempotent."""
        appointment, view, account_id, errors = outbound(resource)
        if view["status"] not in UNTIMED and view["start"] is None:
            errors.append(FieldError("start", "MISSING_TIME", "Salesforce needs the appointment's start"))
        if errors:
            raise RecordInvalid(errors)
        record: dict[str, Any] = {
            "ParentRecordId": account_id,
            "AccountId": account_id,
            "Status": TO_SALESFORCE_STATUS[view["status"]],
        }
        for sf_field, value in (
            ("SchedStartTime", view["start"]),
            ("SchedEndTime", view["end"]),
            ("Subject", view["service_name"]),
            ("Description", view["description"]),
        ):
            if value is not None:
                record[sf_field] = value
        codings = (appointment.get("appointmentType") or {}).get("coding", [])
        kind = next((c.get("code") for c in codings if c.get("system") == APPOINTMENT_TYPE_SYSTEM), None)
        if kind in APPOINTMENT_TYPES:
            record["AppointmentType"] = kind
        if isinstance(appointment.get("id"), str):
            record[EXTERNAL_ID_FIELD] = appointment["id"]
        return record
