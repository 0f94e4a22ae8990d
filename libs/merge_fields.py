"""The fields of each hub entity the field-level merge compares (their canonical projections), as a
config's per-field conflict policies name them: ``<entity>.<field>``, e.g. ``patient.email``,
``appointment.start``. Shared by the registry (which validates the names) and sync (which applies them)."""

from __future__ import annotations

from libs import fhir_appointment, fhir_membership, fhir_patient, fhir_service

MERGE_FIELDS: dict[str, tuple[str, ...]] = {
    "ENTITY_TYPE_PATIENT": tuple(fhir_patient.PROJECTED_FIELDS),
    "ENTITY_TYPE_APPOINTMENT": tuple(fhir_appointment.CANONICAL_FIELDS),
    "ENTITY_TYPE_SERVICE": tuple(fhir_service.CANONICAL_FIELDS),
    "ENTITY_TYPE_MEMBERSHIP": tuple(fhir_membership.CANONICAL_FIELDS),
}


def entity_key(entity_type: str) -> str:
    """ENTITY_TYPE_PATIENT -> patient."""
    return entity_type.removeprefix("ENTITY_TYPE_").lower()


# Every name a per-field policy may use.
FIELD_KEYS: frozenset[str] = frozenset(
    f"{entity_key(entity)}.{name}" for entity, names in MERGE_FIELDS.items() for name in names
)


def field_policies_for(entity_type: str, policies: dict[str, str]) -> dict[str, str]:
    """A config's per-field policies that concern one entity, by bare field name."""
    prefix = f"{entity_key(entity_type)}."
    return {key.removeprefix(prefix): policy for key, policy in policies.items() if key.startswith(prefix)}
