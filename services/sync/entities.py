"""The kinds of canonical record the hub keeps, and what sync needs to know of each: how to
validate it (FHIR R4), its flat projection for the field-level merge, and how to write a merge
result back. Adding an entity is adding one entry here (and its mappers and adapter resources)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from libs import fhir_patient
from libs.errors import InvalidArgument

PATIENT = "ENTITY_TYPE_PATIENT"


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
    ),
}


def kind_of(entity_type: str, field: str = "entity_type") -> EntityKind:
    if entity_type not in ENTITIES:
        raise InvalidArgument(
            f"{entity_type or 'an unspecified entity'} does not sync yet", field=field, reason="UNSUPPORTED_ENTITY"
        )
    return ENTITIES[entity_type]
