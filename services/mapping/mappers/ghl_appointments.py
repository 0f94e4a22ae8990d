"""GoHighLevel calendar event <-> FHIR R4 Appointment (docs/vendors/gohighlevel/apps/calendars.json,
Version 2021-04-15). Both ways go through libs.fhir_appointment's canonical fields.

| GHL `appointmentStatus` | FHIR `status`                                 |
|-------------------------|-----------------------------------------------|
| new                     | proposed  (and pending, waitlist to GHL)      |
| confirmed               | booked    (and active from GHL)               |
| cancelled               | cancelled                                     |
| showed                  | fulfilled (and arrived, checked-in to GHL; completed from GHL) |
| noshow                  | noshow                                        |
| invalid                 | entered-in-error                              |

- startTime / endTime (ISO 8601 with an offset) <-> start / end.
- description, else notes, else a title of the GHL user's own (not the calendar's name, GHL's
  default; with no calendarName the title is left alone) -> description; description -> description (notes are a sub-resource GHL writes elsewhere; the
  title stays GHL's default, the calendar's name). Notes and descriptions are PHI: never logged.
- calendarId <-> serviceType: a coding (CALENDAR_ID_SYSTEM, calendarId) with the calendar's name
  as text. A hub service without that coding goes to GHL as a hint (code, name) that the adapter
  resolves to a calendar.
- contactId <-> the patient participant, a logical reference (fhir_appointment.external_actor)
  that the sync service translates through its patient links.
- assignedUserId <-> a Practitioner participant identified in USER_ID_SYSTEM (optional).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from libs import fhir_appointment
from libs.errors import InvalidArgument
from services.adapters.ghl.schemas import CALENDAR_NAME, SERVICE_HINT
from services.mapping.domain import FieldError, HubResult, RecordInvalid
from services.mapping.mappers.appointment_common import outbound, participant_value, service_code
from services.mapping.rules import FieldRule, rules_from

APPOINTMENT_ID_SYSTEM = "https://gohighlevel.com/appointment-id"
CALENDAR_ID_SYSTEM = "https://gohighlevel.com/calendar-id"
USER_ID_SYSTEM = "https://gohighlevel.com/user-id"
TO_HUB_STATUS = {
    "new": "proposed",
    "confirmed": "booked",
    "cancelled": "cancelled",
    "showed": "fulfilled",
    "noshow": "noshow",
    "invalid": "entered-in-error",
    # In AppointmentSchemaResponse's enum only.
    "active": "booked",
    "completed": "fulfilled",
}
TO_GHL_STATUS = {
    "proposed": "new",
    "pending": "new",
    "waitlist": "new",
    "booked": "confirmed",
    "arrived": "showed",
    "checked-in": "showed",
    "fulfilled": "showed",
    "cancelled": "cancelled",
    "noshow": "noshow",
    "entered-in-error": "invalid",
}


def _instant(raw: Any, field: str) -> str:
    """GHL's ISO time kept in its own offset (a FHIR instant needs one)."""
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except (AttributeError, ValueError):
        moment = None
    if moment is None or moment.tzinfo is None:
        raise InvalidArgument(
            f"{field} must be an ISO 8601 date-time with an offset", field=field, reason="INVALID_DATE"
        )
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def _text(event: dict, field: str, errors: list[FieldError]) -> str | None:
    value = event.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        errors.append(FieldError(field, "INVALID_TYPE", f"{field} must be a string"))
        return None
    return value.strip() or None


class GhlAppointmentMapper:
    integration_type = "ghl"
    entity_type = "ENTITY_TYPE_APPOINTMENT"
    modified_field = "dateUpdated"  # the vendor's modification time (newest_wins)
    required_hub_fields = frozenset({"status", "start"})

    def default_field_mappings(self) -> list[FieldRule]:
        """The event fields the code maps one to one (the patient, calendar and user are references
        the code resolves, not rules)."""
        status = ("enum", {"values": TO_GHL_STATUS, "hub_values": TO_HUB_STATUS})
        fields = {"appointmentStatus": "status", "startTime": "start", "endTime": "end", "description": "description"}
        return rules_from(self.entity_type, fields, {"status": status})

    def to_hub(self, event: dict) -> HubResult:
        """A GHL event (list, read, write answer or webhook shape, plus the adapter's calendarName)."""
        event_id = event.get("id") if isinstance(event.get("id"), str) else ""
        errors: list[FieldError] = []
        texts = {f: _text(event, f, errors) for f in ("appointmentStatus", "contactId", "calendarId", "assignedUserId")}
        status = TO_HUB_STATUS.get(texts["appointmentStatus"] or "")
        if status is None and not any(e.field == "appointmentStatus" for e in errors):
            errors.append(
                FieldError("appointmentStatus", "INVALID_CODE", "appointmentStatus is not a GoHighLevel status")
            )
        if texts["contactId"] is None and not any(e.field == "contactId" for e in errors):
            errors.append(FieldError("contactId", "MISSING_PATIENT", "the event has no contactId"))
        times: dict[str, str] = {}
        for ghl_field, fhir_field in (("startTime", "start"), ("endTime", "end")):
            if event.get(ghl_field) is None:
                if ghl_field == "startTime":
                    errors.append(FieldError(ghl_field, "MISSING_TIME", "the event has no startTime"))
                continue
            try:
                times[fhir_field] = _instant(event[ghl_field], ghl_field)
            except InvalidArgument as error:
                errors.append(FieldError.of(error))
        calendar_name = _text(event, CALENDAR_NAME, errors)
        description = _text(event, "description", errors) or _text(event, "notes", errors)
        title = _text(event, "title", errors)
        if description is None and calendar_name is not None and title not in (None, calendar_name):
            description = title  # a title the GHL user wrote; without the calendar's name, unknowable
        if errors:
            raise RecordInvalid(errors, event_id)
        appointment: dict = {"resourceType": "Appointment", "status": status, **times}
        if event_id:
            appointment["identifier"] = [{"system": APPOINTMENT_ID_SYSTEM, "value": event_id}]
        if description:
            appointment["description"] = description
        if texts["calendarId"]:
            coding = {"system": CALENDAR_ID_SYSTEM, "code": texts["calendarId"]}
            appointment["serviceType"] = [{"coding": [coding], **({"text": calendar_name} if calendar_name else {})}]
        appointment["participant"] = [
            {"actor": fhir_appointment.external_actor(texts["contactId"]), "status": "accepted"}
        ]
        if texts["assignedUserId"]:
            actor = {"type": "Practitioner", "identifier": {"system": USER_ID_SYSTEM, "value": texts["assignedUserId"]}}
            appointment["participant"].append({"actor": actor, "status": "accepted"})
        try:
            return HubResult(resource=fhir_appointment.parse_appointment(appointment), external_id=event_id)
        except InvalidArgument as error:
            raise RecordInvalid([FieldError.of(error)], event_id) from None

    def to_vendor(self, resource: dict) -> dict:
        """A FHIR Appointment as a GHL write body, without locationId; calendarId only when the
        hub's service is a GHL calendar, else the service hint the adapter resolves."""
        appointment, view, errors, patient_id = outbound(resource, "GoHighLevel")
        if view["start"] is None:
            errors.append(FieldError("start", "MISSING_TIME", "GoHighLevel needs the appointment's start"))
        calendar_id = service_code(appointment, CALENDAR_ID_SYSTEM)
        if not (calendar_id or view["service_code"] or view["service_name"]):
            errors.append(
                FieldError("serviceType", "MISSING_SERVICE", "GoHighLevel books a calendar: name the service")
            )
        if errors:
            raise RecordInvalid(errors)
        event: dict = {
            "contactId": patient_id,
            "startTime": appointment["start"],
            "appointmentStatus": TO_GHL_STATUS[view["status"]],
        }
        if appointment.get("end"):
            event["endTime"] = appointment["end"]
        if calendar_id:
            event["calendarId"] = calendar_id
        else:
            event[SERVICE_HINT] = {
                k: v for k, v in (("code", view["service_code"]), ("name", view["service_name"])) if v
            }
        if view["description"]:
            event["description"] = view["description"]
        if user_id := participant_value(appointment, USER_ID_SYSTEM):
            event["assignedUserId"] = user_id
        return event
