"""FHIR R4 Appointment at an EMR <-> the hub's FHIR R4 Appointment: the same resource, less what
belongs to one side only (as for Patient, services/mapping/mappers/fhir.py), and the patient
participant translated between the EMR's reference and the hub's logical one.

| EMR Appointment | hub Appointment | |
|---|---|---|
| `id` | `external_id` | the hub keeps its own id; the link maps one to the other |
| `meta.versionId`, `.lastUpdated`, `.source`, `text` | dropped | each side's own bookkeeping |
| `identifier[system=urn:concord:hub:appointment]` | the hub's `id` | written to the EMR for conditional creates |
| patient participant `actor.reference = Patient/<EMR id>` | `fhir_appointment.external_actor(<EMR id>)` | the sync service resolves it through its patient links, both ways |
| other participants, `slot`, `basedOn`, ... | the same | the EMR's own references (Practitioner, Location): not linked by the hub |
| everything else | the same | validated with fhir.resources (R4) both ways |

Status, times, service and description are declared as default field mappings (``ELEMENTS``,
identity both ways; services/mapping/mappers/fhir_elements.py) that a config's overrides can
change; the patient participant is a reference the code translates, not a rule. Errors name the
FHIR element, never its value.
"""

from __future__ import annotations

import copy
import re

from libs import fhir_appointment
from libs.errors import InvalidArgument
from services.mapping.domain import FieldError, HubResult, RecordInvalid
from services.mapping.mappers.fhir import shared_elements, whole_numbers
from services.mapping.mappers.fhir_elements import Elements
from services.mapping.rules import FieldRule, rules_from
from services.mapping.schema import VendorField, code, string

# The adapter sends it as `If-None-Exist: identifier=<system>|<hub id>` (services/adapters/fhir/resources.py).
HUB_ID_SYSTEM = "urn:concord:hub:appointment"
_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
# A relative reference to the EMR's Patient, possibly version-specific.
_PATIENT_REFERENCE = re.compile(r"^Patient/([A-Za-z0-9\-.]{1,64})(?:/_history/[A-Za-z0-9\-.]{1,64})?$")


def _parsed(resource: dict, external_id: str = "") -> dict:
    try:
        return fhir_appointment.parse_appointment(resource)
    except InvalidArgument as error:
        raise RecordInvalid([FieldError.of(error)], external_id) from None


def _with_actor(appointment: dict, actor: dict) -> dict:
    """A copy whose patient participant has this actor; the participant's other elements are kept."""
    result = copy.deepcopy(appointment)
    participant = fhir_appointment.patient_participant(result)
    assert participant is not None  # callers found it first
    participant["actor"] = actor
    return result


_LEAVES = {
    "status": "status",
    "start": "start",
    "end": "end",
    "service_code": "serviceType[0].coding[0].code",
    "service_name": "serviceType[0].text",
    "description": "description",
}
# Element path (the EMR's "vendor field") -> canonical field, with the element's FHIR R4 type.
ELEMENTS = Elements(
    fields={
        "status": "status",
        "start": "start",
        "end": "end",
        "serviceType.coding.code": "service_code",
        "serviceType.text": "service_name",
        "description": "description",
    },
    types={
        "status": code(*fhir_appointment.STATUSES),
        "start": VendorField("instant"),
        "end": VendorField("instant"),
        "serviceType.coding.code": string(),
        "serviceType.text": string(),
        "description": string(),
    },
    parse=lambda record: fhir_appointment.parse_appointment(whole_numbers(record)),
    apply=fhir_appointment.apply,
    leaves=lambda appointment: _LEAVES,
)


class FhirAppointmentMapper:
    integration_type = "fhir"
    entity_type = "ENTITY_TYPE_APPOINTMENT"
    modified_field = "meta.lastUpdated"  # the vendor's modification time (newest_wins)
    vendor_schema = ELEMENTS.schema

    def default_field_mappings(self) -> list[FieldRule]:
        """The elements the hub's projection reads, one to one (the patient is a reference the code
        translates through the sync service's links, not a rule)."""
        return rules_from(self.entity_type, ELEMENTS.fields, {})

    def read_vendor_field(self, record: dict, path: str) -> object:
        return ELEMENTS.read(record, path)

    def write_vendor_field(self, record: dict, path: str, value: object) -> None:
        ELEMENTS.write(record, path, value)

    def to_hub(self, record: dict) -> HubResult:
        """An EMR Appointment as the hub's, its patient the logical reference to the EMR's patient id."""
        emr_id = record.get("id")
        emr_id = emr_id if isinstance(emr_id, str) else ""
        if record.get("resourceType") != "Appointment":
            raise RecordInvalid(
                [FieldError("resourceType", "INVALID_FHIR_RESOURCE", "resourceType must be Appointment")]
            )
        if not _ID.match(emr_id):
            raise RecordInvalid([FieldError("id", "MISSING_ID", "the Appointment has no valid FHIR id")])
        appointment = _parsed(shared_elements(whole_numbers(record)), emr_id)
        participant = fhir_appointment.patient_participant(appointment)
        if participant is None:
            raise RecordInvalid(
                [FieldError("participant", "MISSING_PATIENT", "the Appointment names no patient")], emr_id
            )
        match = _PATIENT_REFERENCE.match(str(participant["actor"].get("reference", "")))
        if match is None:
            raise RecordInvalid(
                [FieldError("participant.actor", "INVALID_REFERENCE", "the patient is not a Patient/<id> reference")],
                emr_id,
            )
        hub = _with_actor(appointment, fhir_appointment.external_actor(match.group(1)))
        return HubResult(resource=_parsed(hub, emr_id), external_id=emr_id)

    def to_vendor(self, resource: dict) -> dict:
        """The hub's Appointment as the EMR's write body: no id, no hub meta, the hub's id as an
        identifier, and the patient as `Patient/<EMR id>` (the sync service resolved the link)."""
        appointment = _parsed(whole_numbers(resource))
        patient = fhir_appointment.patient_reference(appointment) or ""
        emr_patient = patient.removeprefix("external:")
        if not patient.startswith("external:") or not _ID.match(emr_patient):
            reason = "PATIENT_NOT_LINKED" if patient else "MISSING_PATIENT"
            raise RecordInvalid([FieldError("participant", reason, "the appointment names no patient the EMR knows")])
        body = shared_elements(_with_actor(appointment, {"reference": f"Patient/{emr_patient}"}))
        hub_id = appointment.get("id")
        if hub_id:
            body["identifier"] = [
                *body.get("identifier", []),
                {"use": "secondary", "system": HUB_ID_SYSTEM, "value": hub_id},
            ]
        return body
