"""HIPAA "minimum necessary": which of a hub record's fields may leave for a vendor.

Two rules, applied where hub records become vendor payloads (the mapping service's MapToVendor,
which every push, Zapier delivery and Zapier sample goes through):

- **Allow-list** (``IntegrationConfig.field_allow_list``): canonical hub fields named
  ``<entity>.<field>`` as the merge names them (``libs/merge_fields.py``: ``patient.email``,
  ``patient.given_name``, ``appointment.start``). An entity the list names no field of keeps every
  mapped field (an empty list is today's behaviour); an entity it names sends only the fields named.
- **Business Associate Agreement**: a vendor whose definition says ``baa_required`` receives no PHI
  field (``PHI_FIELDS``) until the practice's BAA with that vendor is recorded and in effect
  (its effective date is today or earlier).

A record either rule restricts is rebuilt from its canonical projection with only the fields that
may go, so nothing outside the projection (other names, identifiers, extensions, notes) leaves
with it. A record that would keep none of its subject's fields (``SUBJECT_FIELDS``: a patient
with no name, phone or email left, an appointment or membership whose patient is withheld), or no
field at all, is withheld whole: nothing about it is sent, and it stays due for a later push (it
goes when the BAA is recorded or the list allows it). What is withheld is reported by field name
only, never by value. Pure; no I/O.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from libs import fhir_appointment, fhir_membership, fhir_patient, fhir_service
from libs.errors import InvalidArgument
from libs.merge_fields import FIELD_KEYS, MERGE_FIELDS, entity_key

PATIENT = "ENTITY_TYPE_PATIENT"
APPOINTMENT = "ENTITY_TYPE_APPOINTMENT"
SERVICE = "ENTITY_TYPE_SERVICE"
MEMBERSHIP = "ENTITY_TYPE_MEMBERSHIP"

# PHI: the fields that identify the individual or say something about them (HIPAA Safe Harbor's
# identifiers and what is tied to them): names, birth date, telecom (phone, email), every part of
# the address, free-text notes, marketing consent (a decision of the patient), the patient a record
# is about and a membership's number. Concord's own ids are not PHI (they identify no one outside
# Concord); a vendor's own ids are its own. The catalog (services) holds none.
PHI_FIELDS: dict[str, frozenset[str]] = {
    # Every canonical patient field but gender (a category, identifying no one), and consent.
    PATIENT: frozenset(fhir_patient.CANONICAL_FIELDS) - {"gender"} | frozenset(fhir_patient.CONSENT_FIELDS),
    APPOINTMENT: frozenset({"patient", "description"}),
    MEMBERSHIP: frozenset({"patient", "membership_id"}),
    SERVICE: frozenset(),
}
# A record none of whose subject fields go is pointless to the vendor (a contact it cannot name or
# reach, an appointment of nobody): withheld whole. An entity without any (services) never is.
SUBJECT_FIELDS: dict[str, frozenset[str]] = {
    PATIENT: frozenset({"given_name", "family_name", "phone", "email"}),
    APPOINTMENT: frozenset({"patient"}),
    MEMBERSHIP: frozenset({"patient"}),
    SERVICE: frozenset(),
}
# Fields FHIR R4 requires of a resource that is sent at all: an allow-list naming the entity names them.
REQUIRED_FIELDS: dict[str, frozenset[str]] = {APPOINTMENT: frozenset({"status", "patient"})}

_RESOURCES: dict[str, tuple[str, Callable[[dict], dict], Callable[[dict, dict], dict]]] = {
    PATIENT: ("Patient", fhir_patient.project, fhir_patient.apply),
    APPOINTMENT: ("Appointment", fhir_appointment.project, fhir_appointment.apply),
    SERVICE: ("HealthcareService", fhir_service.project, fhir_service.apply),
    MEMBERSHIP: ("Coverage", fhir_membership.project, fhir_membership.apply),
}
# Kept in a rebuilt resource: they say which record it is, nothing about anyone.
_STRUCTURAL = ("resourceType", "id", "meta")


@dataclass(frozen=True)
class Policy:
    """What one config may send: ``allow_list`` (``<entity>.<field>`` names; empty = every mapped
    field) and whether PHI may go at all (``phi_permitted``: the vendor needs no BAA, or the
    practice's BAA with it is in effect)."""

    allow_list: frozenset[str] = frozenset()
    phi_permitted: bool = True

    def allowed(self, entity_type: str) -> frozenset[str] | None:
        """The entity's fields that may go; None when nothing restricts it."""
        fields = frozenset(MERGE_FIELDS.get(entity_type, ()))
        prefix = f"{entity_key(entity_type)}."
        named = frozenset(key.removeprefix(prefix) for key in self.allow_list if key.startswith(prefix))
        allowed = named if named else fields
        if not self.phi_permitted:
            allowed -= PHI_FIELDS.get(entity_type, frozenset())
        return None if allowed == fields else allowed


@dataclass(frozen=True)
class Restricted:
    """``resource`` as it may go (None: withheld whole), the canonical fields it carried that were
    withheld, and the ones it still carries (both empty when nothing restricted it)."""

    resource: dict | None
    withheld: tuple[str, ...] = ()
    disclosed: tuple[str, ...] = ()
    restricted: bool = False


def policy_for(allow_list: Iterable[str], baa_required: bool, baa_effective_date: str, today: date) -> Policy:
    """The config's policy: PHI may go unless the vendor needs a BAA and none is in effect today."""
    in_effect = False
    if baa_effective_date:
        try:
            in_effect = date.fromisoformat(baa_effective_date) <= today
        except ValueError:
            in_effect = False
    return Policy(frozenset(allow_list), phi_permitted=not baa_required or in_effect)


async def config_policy(registry: Any, config_id: str) -> Policy:
    """What a config may send its vendor now: its allow-list, its vendor's baa_required and the
    practice's BAA date, read from the registry (``registry`` a RegistryServiceStub)."""
    from libs.grpc_client import call
    from libs.protos.concord.registry.v1 import registry_pb2

    config = (
        await call(registry.GetIntegrationConfig, registry_pb2.GetIntegrationConfigRequest(config_id=config_id))
    ).config
    definition = (
        await call(
            registry.GetIntegrationDefinition,
            registry_pb2.GetIntegrationDefinitionRequest(integration_type=config.integration_type),
        )
    ).definition
    return policy_now(config, definition)


def policy_now(config: Any, definition: Any) -> Policy:
    """The Policy of an IntegrationConfig and its IntegrationDefinition today."""
    return policy_for(
        config.field_allow_list, definition.baa_required, config.baa_effective_date, datetime.now(UTC).date()
    )


def restrict(entity_type: str, resource: dict, policy: Policy) -> Restricted:
    """``resource`` (a hub FHIR resource of ``entity_type``) as ``policy`` lets it go."""
    allowed = policy.allowed(entity_type)
    known = _RESOURCES.get(entity_type)
    if allowed is None or known is None:
        return Restricted(resource)
    resource_type, project, apply = known
    values = project(resource)
    present = {name for name, value in values.items() if value is not None}
    kept = present & allowed
    withheld = tuple(sorted(present - allowed))
    subject = SUBJECT_FIELDS.get(entity_type, frozenset())
    if not kept or (present & subject and not kept & subject):
        return Restricted(None, withheld=tuple(sorted(present)), restricted=True)
    skeleton = {key: copy.deepcopy(resource[key]) for key in _STRUCTURAL if key in resource}
    skeleton["resourceType"] = resource_type
    rebuilt = apply(skeleton, {name: values[name] for name in sorted(kept)})
    return Restricted(rebuilt, withheld=withheld, disclosed=tuple(sorted(kept)), restricted=True)


def validate_allow_list(names: Iterable[str], where: str = "field_allow_list") -> list[str]:
    """The list, checked: each name a canonical ``<entity>.<field>`` (InvalidArgument
    UNKNOWN_HUB_FIELD naming ``field_allow_list[i]``), none twice (DUPLICATE_FIELD), and an entity
    it names with the fields FHIR R4 requires of it (FHIR_FIELD_REQUIRED). Names only in errors."""
    names = list(names)
    seen: set[str] = set()
    for i, name in enumerate(names):
        at = f"{where}[{i}]"
        if name not in FIELD_KEYS:
            raise InvalidArgument(
                f"{at} is not a canonical hub field <entity>.<field>, e.g. patient.email or patient.given_name",
                field=at,
                reason="UNKNOWN_HUB_FIELD",
            )
        if name in seen:
            raise InvalidArgument(f"{at} is named twice", field=at, reason="DUPLICATE_FIELD")
        seen.add(name)
    for entity_type, required in REQUIRED_FIELDS.items():
        prefix = f"{entity_key(entity_type)}."
        if any(name.startswith(prefix) for name in names):
            missing = sorted(prefix + f for f in required if prefix + f not in seen)
            if missing:
                raise InvalidArgument(
                    f"{where} names {entity_key(entity_type)} fields, so it must name {', '.join(missing)} "
                    "(FHIR R4 requires them)",
                    field=where,
                    reason="FHIR_FIELD_REQUIRED",
                )
    return names


def validate_effective_date(value: str, where: str = "effective_date") -> str:
    """An ISO 8601 calendar date (YYYY-MM-DD); InvalidArgument INVALID_DATE otherwise."""
    try:
        if len(value) != 10:
            raise ValueError
        return date.fromisoformat(value).isoformat()
    except ValueError:
        raise InvalidArgument(f"{where} must be a date YYYY-MM-DD", field=where, reason="INVALID_DATE") from None
