"""The kinds of canonical record the hub keeps, and what sync needs to know of each: how to
validate it (FHIR R4), its flat projection for the field-level merge, and how to write a merge
result back. Adding an entity is adding one entry here (and its mappers and adapter resources)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from libs import fhir_appointment, fhir_membership, fhir_patient, fhir_service
from libs.errors import InvalidArgument

PATIENT = "ENTITY_TYPE_PATIENT"
APPOINTMENT = "ENTITY_TYPE_APPOINTMENT"
SERVICE = "ENTITY_TYPE_SERVICE"
MEMBERSHIP = "ENTITY_TYPE_MEMBERSHIP"


@dataclass(frozen=True)
class EntityKind:
    entity_type: str
    resource_type: str
    parse: Callable[[str | dict], dict]
    project: Callable[[dict], dict[str, Any]]
    apply: Callable[[dict, dict[str, Any]], dict]
    # Associated-data purposes of its ciphertexts (part of every stored ciphertext: never rename).
    purpose: str
    base_purpose: str
    # Whether an audit event names the record as the patient it concerns.
    is_patient: bool = False
    # For records that point at a patient: read and replace that reference ("Patient/<hub id>" in
    # the hub, "external:<vendor id>" in mapped vendor records); sync translates through its links.
    patient_ref: Callable[[dict], str | None] | None = None
    with_patient_ref: Callable[[dict, str], dict] | None = None
    # Projected field -> the value that wins a merge conflict whatever the policy (domain.merge).
    prevailing: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


ENTITIES: dict[str, EntityKind] = {
    PATIENT: EntityKind(
        entity_type=PATIENT,
        resource_type="Patient",
        parse=fhir_patient.parse_patient,
        project=fhir_patient.project,
        apply=fhir_patient.apply,
        purpose="patient-resource",
        base_purpose="patient-merge-base",
        is_patient=True,
        # A revoked marketing consent (hub or vendor) is never undone by the other side's conflict.
        prevailing=MappingProxyType(dict.fromkeys(fhir_patient.CONSENT_FIELDS, fhir_patient.DENY)),
    ),
    APPOINTMENT: EntityKind(
        entity_type=APPOINTMENT,
        resource_type="Appointment",
        parse=fhir_appointment.parse_appointment,
        project=fhir_appointment.project,
        apply=fhir_appointment.apply,
        purpose="appointment-resource",
        base_purpose="appointment-merge-base",
        patient_ref=fhir_appointment.patient_reference,
        with_patient_ref=fhir_appointment.set_patient_reference,
    ),
    SERVICE: EntityKind(
        entity_type=SERVICE,
        resource_type="HealthcareService",
        parse=fhir_service.parse_service,
        project=fhir_service.project,
        apply=fhir_service.apply,
        purpose="service-resource",
        base_purpose="service-merge-base",
    ),
    MEMBERSHIP: EntityKind(
        entity_type=MEMBERSHIP,
        resource_type="Coverage",
        parse=fhir_membership.parse_membership,
        project=fhir_membership.project,
        apply=fhir_membership.apply,
        purpose="membership-resource",
        base_purpose="membership-merge-base",
        patient_ref=fhir_membership.patient_reference,
        with_patient_ref=fhir_membership.set_patient_reference,
    ),
}


def kind_of(entity_type: str, field: str = "entity_type") -> EntityKind:
    if entity_type not in ENTITIES:
        raise InvalidArgument(
            f"{entity_type or 'an unspecified entity'} does not sync yet", field=field, reason="UNSUPPORTED_ENTITY"
        )
    return ENTITIES[entity_type]
