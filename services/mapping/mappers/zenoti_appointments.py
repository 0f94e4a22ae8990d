"""Zenoti appointment <-> FHIR R4 Appointment (sandbox/zenoti/render.py ``appointment``: one element
of GET /v1/appointments). Both ways go through libs.fhir_appointment's canonical fields.

| Zenoti `status`       | FHIR `status`                                   |
|-----------------------|-------------------------------------------------|
| -2 no show            | noshow                                          |
| -1 cancelled          | cancelled (and entered-in-error to Zenoti)      |
|  0 booked             | booked    (and proposed, pending, waitlist)     |
|  1 closed             | fulfilled                                       |
|  2 checked in         | checked-in (and arrived to Zenoti)              |
|  4 confirmed          | booked    (from Zenoti only)                    |

- appointment_id <-> identifier[APPOINTMENT_ID_SYSTEM]; the hub id travels out as ``concord_id``.
- guest.id <-> the patient participant, a logical reference the sync service resolves through its
  patient links (fhir_appointment.external_actor).
- therapist.id <-> a Practitioner participant identified in THERAPIST_ID_SYSTEM (provider
  availability is the therapist's free slots for the service: the adapter books only into one).
- start_time_utc / end_time_utc (wall clock in UTC, no offset) <-> start / end (UTC instants).
- service.id / service.name <-> serviceType[0].coding[SERVICE_ID_SYSTEM] / serviceType[0].text.
- notes (treatment notes, PHI: never logged) <-> comment.

to_vendor returns the adapter's booking intent (guest, service, therapist, start, notes, status), not
a single Zenoti request body: creating goes through the three-step booking flow.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from libs import fhir_appointment
from libs.errors import InvalidArgument
from services.mapping.domain import FieldError, HubResult, RecordInvalid
from services.mapping.mappers.appointment_common import outbound, participant_value, service_code
from services.mapping.mappers.zenoti_services import SERVICE_ID_SYSTEM

APPOINTMENT_ID_SYSTEM = "https://zenoti.com/appointment-id"
THERAPIST_ID_SYSTEM = "https://zenoti.com/therapist-id"
CONCORD_ID_SYSTEM = "urn:concord:appointment-id"
TO_HUB_STATUS = {-2: "noshow", -1: "cancelled", 0: "booked", 1: "fulfilled", 2: "checked-in", 4: "booked"}
TO_ZENOTI_STATUS = {
    "noshow": -2,
    "cancelled": -1,
    "entered-in-error": -1,
    "proposed": 0,
    "pending": 0,
    "waitlist": 0,
    "booked": 0,
    "fulfilled": 1,
    "checked-in": 2,
    "arrived": 2,
}


def _id(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _utc(raw: Any, field: str, errors: list[FieldError]) -> str | None:
    """Zenoti's ``2026-12-02T14:30:00`` in UTC (the *_utc fields) as a FHIR instant."""
    if not isinstance(raw, str) or not raw:
        errors.append(FieldError(field, "MISSING_TIME", f"the appointment has no {field}"))
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        errors.append(FieldError(field, "INVALID_DATE", f"{field} must be a date-time"))
        return None
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def _wall_clock(instant: str) -> str:
    return datetime.fromisoformat(instant.replace("Z", "+00:00")).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def therapist_id(appointment: dict) -> str | None:
    """The Zenoti therapist of a hub appointment's Practitioner participant, if any."""
    return participant_value(appointment, THERAPIST_ID_SYSTEM, "Practitioner")


class ZenotiAppointmentMapper:
    integration_type = "zenoti"
    entity_type = "ENTITY_TYPE_APPOINTMENT"

    def to_hub(self, record: dict) -> HubResult:
        record_id = _id(record.get("appointment_id")) or ""
        errors: list[FieldError] = []
        if not record_id:
            errors.append(FieldError("appointment_id", "MISSING_ID", "the appointment has no appointment_id"))
        raw_status = record.get("status")
        # Records arrive through protobuf Structs, where every number is a float.
        whole = (
            isinstance(raw_status, int | float) and not isinstance(raw_status, bool) and raw_status == int(raw_status)
        )
        status = TO_HUB_STATUS.get(int(raw_status)) if whole else None
        if status is None:
            errors.append(FieldError("status", "INVALID_CODE", "status is not a Zenoti appointment status"))
        guest_id = _id((record.get("guest") or {}).get("id")) if isinstance(record.get("guest"), dict) else None
        if guest_id is None:
            errors.append(FieldError("guest.id", "MISSING_PATIENT", "the appointment has no guest"))
        service = record.get("service") if isinstance(record.get("service"), dict) else {}
        service_id = _id(service.get("id"))
        if service_id is None:
            errors.append(FieldError("service.id", "MISSING_SERVICE", "the appointment has no service"))
        start = _utc(record.get("start_time_utc"), "start_time_utc", errors)
        end = _utc(record.get("end_time_utc"), "end_time_utc", errors)
        notes = record.get("notes")
        if notes is not None and not isinstance(notes, str):
            errors.append(FieldError("notes", "INVALID_TYPE", "notes must be a string"))
        if errors:
            raise RecordInvalid(errors, record_id)
        coding = {"system": SERVICE_ID_SYSTEM, "code": service_id}
        if _id(service.get("name")):
            coding["display"] = service["name"].strip()
        appointment: dict[str, Any] = {
            "resourceType": "Appointment",
            "status": status,
            "start": start,
            "end": end,
            "identifier": [{"system": APPOINTMENT_ID_SYSTEM, "value": record_id}],
            "serviceType": [{"coding": [coding], **({"text": coding["display"]} if "display" in coding else {})}],
            "participant": [{"actor": fhir_appointment.external_actor(guest_id), "status": "accepted"}],
        }
        therapist = record.get("therapist") if isinstance(record.get("therapist"), dict) else {}
        if _id(therapist.get("id")):
            actor = {"type": "Practitioner", "identifier": {"system": THERAPIST_ID_SYSTEM, "value": therapist["id"]}}
            appointment["participant"].append({"actor": actor, "status": "accepted"})
        if isinstance(notes, str) and notes.strip():
            appointment["comment"] = notes
        try:
            return HubResult(resource=fhir_appointment.parse_appointment(appointment), external_id=record_id)
        except InvalidArgument as error:
            raise RecordInvalid([FieldError.of(error)], record_id) from None

    def to_vendor(self, resource: dict) -> dict:
        """A FHIR Appointment as the adapter's booking intent: guest_id, service_id, therapist_id,
        start_time_utc (Zenoti wall clock in UTC), status, notes and the hub id (concord_id)."""
        appointment, view, errors, guest_id = outbound(resource, "Zenoti")
        service_id = service_code(appointment, SERVICE_ID_SYSTEM)
        if service_id is None:
            errors.append(FieldError("serviceType", "MISSING_SERVICE", "Zenoti books a service: name its id"))
        if view["start"] is None and view["status"] != "cancelled":
            errors.append(FieldError("start", "MISSING_TIME", "Zenoti needs the appointment's start"))
        if errors:
            raise RecordInvalid(errors)
        intent: dict[str, Any] = {
            "guest_id": guest_id,
            "service_id": service_id,
            "therapist_id": therapist_id(appointment),
            "start_time_utc": _wall_clock(view["start"]) if view["start"] else None,
            "status": TO_ZENOTI_STATUS[view["status"]],
            "notes": appointment.get("comment"),
        }
        if isinstance(appointment.get("id"), str):
            intent["concord_id"] = appointment["id"]
        return intent
