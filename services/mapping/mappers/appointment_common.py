"""Helpers every vendor's appointment mapper shares (Zenoti's and GHL's use them; Salesforce's still
carries its own copy of the outbound steps and can move here)."""

from __future__ import annotations

from libs import fhir_appointment
from libs.errors import InvalidArgument
from services.mapping.domain import FieldError, RecordInvalid


def participant_value(appointment: dict, system: str, actor_type: str | None = None) -> str | None:
    """The identifier value in ``system`` of the first participant (of ``actor_type``, if given)."""
    for participant in appointment.get("participant") or []:
        actor = participant.get("actor") or {}
        identifier = actor.get("identifier") or {}
        if actor_type is not None and actor.get("type") != actor_type:
            continue
        if identifier.get("system") == system and identifier.get("value"):
            return identifier["value"]
    return None


def service_code(appointment: dict, system: str) -> str | None:
    """The first code in ``system`` among the appointment's serviceType codings (a vendor's service or
    calendar id)."""
    codings = (c for service in appointment.get("serviceType") or [] for c in service.get("coding") or [])
    return next((c["code"] for c in codings if c.get("system") == system and c.get("code")), None)


def outbound(resource: dict, vendor: str) -> tuple[dict, dict, list[FieldError], str]:
    """Parses a hub Appointment for a vendor write: (appointment, projection, errors so far, vendor
    patient id); an unlinked or missing patient is already an error in the list."""
    try:
        appointment = fhir_appointment.parse_appointment(resource)
    except InvalidArgument as error:
        raise RecordInvalid([FieldError.of(error)]) from None
    view = fhir_appointment.project(appointment)
    errors: list[FieldError] = []
    patient = view["patient"] or ""
    if not patient.startswith("external:"):
        reason = "PATIENT_NOT_LINKED" if patient else "MISSING_PATIENT"
        errors.append(FieldError("participant", reason, f"the appointment names no patient {vendor} knows"))
    return appointment, view, errors, patient.removeprefix("external:")
