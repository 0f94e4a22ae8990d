"""The canonical appointment every service shares: a FHIR R4 Appointment, and its flat projection
for the sync service's field-level merge.

References to the patient are hub references (``Patient/<hub id>``) inside the hub. Vendors know
their own patient ids, so mapped records carry a logical reference instead
(``{"type": "Patient", "identifier": {"system": EXTERNAL_ID_SYSTEM, "value": <vendor id>}}``) that
the sync service resolves through its links, both ways.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pydantic
from fhir.resources.R4B.appointment import Appointment

from libs.errors import InvalidArgument
from libs.fhir_patient import INVALID_FHIR_RESOURCE, fhir_path
from libs.fhir_values import set_or_drop

EXTERNAL_ID_SYSTEM = "urn:concord:vendor-id"
STATUSES = (
    "proposed",
    "pending",
    "booked",
    "arrived",
    "fulfilled",
    "cancelled",
    "noshow",
    "entered-in-error",
    "checked-in",
    "waitlist",
)
CANONICAL_FIELDS = ("status", "start", "end", "service_code", "service_name", "patient", "description")


def parse_appointment(resource_json: str | dict) -> dict:
    """Validates a FHIR R4 Appointment; returns it as a plain dict without empty values."""
    resource: Any = resource_json
    if isinstance(resource_json, str):
        try:
            resource = json.loads(resource_json)
        except ValueError:
            raise InvalidArgument("the resource is not JSON", field="", reason=INVALID_FHIR_RESOURCE) from None
    if not isinstance(resource, dict) or resource.get("resourceType") != "Appointment":
        raise InvalidArgument("resourceType must be Appointment", field="resourceType", reason=INVALID_FHIR_RESOURCE)
    try:
        model = Appointment.model_validate(resource)
    except pydantic.ValidationError as error:
        first = error.errors()[0]
        path = fhir_path(first["loc"])
        raise InvalidArgument(
            f"{path or 'the resource'} is not valid FHIR R4 ({first['type']})", field=path, reason=INVALID_FHIR_RESOURCE
        ) from None
    appointment = model.model_dump(mode="json", exclude_none=True, by_alias=True)
    if appointment.get("status") not in STATUSES:
        raise InvalidArgument("status is not an Appointment status", field="status", reason="INVALID_CODE")
    return appointment


def instant(value: str | None) -> str | None:
    """An ISO instant normalised to UTC with a Z, so both sides compare equal."""
    if not value:
        return None
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def patient_participant(appointment: dict) -> dict | None:
    for participant in appointment.get("participant", []):
        actor = participant.get("actor") or {}
        if actor.get("type") == "Patient" or str(actor.get("reference", "")).startswith("Patient/"):
            return participant
    return None


def patient_reference(appointment: dict) -> str | None:
    """``Patient/<id>`` for a hub reference, ``external:<vendor id>`` for a logical one."""
    participant = patient_participant(appointment)
    if participant is None:
        return None
    actor = participant["actor"]
    if actor.get("reference"):
        return actor["reference"]
    identifier = actor.get("identifier") or {}
    if identifier.get("system") == EXTERNAL_ID_SYSTEM and identifier.get("value"):
        return f"external:{identifier['value']}"
    return None


def set_patient_reference(appointment: dict, reference: str) -> dict:
    """A copy whose patient participant points at ``Patient/<id>`` or ``external:<vendor id>``."""
    result = copy.deepcopy(appointment)
    actor = {"reference": reference} if reference.startswith("Patient/") else external_actor(reference[9:])
    participant = patient_participant(result)
    if participant is None:
        result.setdefault("participant", []).append({"actor": actor, "status": "accepted"})
    else:
        participant["actor"] = actor
    return result


def external_actor(vendor_id: str) -> dict:
    return {"type": "Patient", "identifier": {"system": EXTERNAL_ID_SYSTEM, "value": vendor_id}}


def project(appointment: dict) -> dict[str, str | None]:
    service = (appointment.get("serviceType") or [{}])[0]
    coding = (service.get("coding") or [{}])[0]
    return {
        "status": appointment.get("status"),
        "start": instant(appointment.get("start")),
        "end": instant(appointment.get("end")),
        "service_code": coding.get("code"),
        "service_name": service.get("text") or coding.get("display"),
        "patient": patient_reference(appointment),
        "description": appointment.get("description"),
    }


def apply(appointment: dict, changes: dict[str, str | None]) -> dict:
    """A copy with the canonical changes written back; fields outside the projection untouched."""
    result = copy.deepcopy(appointment)
    for name, value in changes.items():
        if name in ("status", "description"):
            set_or_drop(result, name, value)
        elif name in ("start", "end"):
            set_or_drop(result, name, instant(value))
        elif name in ("service_code", "service_name"):
            service = (result.setdefault("serviceType", [{}]) or [{}])[0]
            if name == "service_name":
                set_or_drop(service, "text", value)
            else:
                coding = service.setdefault("coding", [{}])[0]
                set_or_drop(coding, "code", value)
        elif name == "patient" and value:
            result = set_patient_reference(result, value)
    return result
