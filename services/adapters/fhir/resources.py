"""The entity types the adapter serves, each as a FHIR resource type. FHIR's RESTful API is the
same for every type, so adding an entity is adding one entry here (and its scope to the definition)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from libs.protos.concord.common.v1 import common_pb2


@dataclass(frozen=True)
class FhirResource:
    entity_type: int
    type: str
    # Identifier system under which the hub's own id is written to the EMR; conditional creates match on it.
    # Must equal the mapper's (services/mapping/mappers/fhir*.py), which adds the identifier.
    hub_system: str

    def hub_id(self, resource: dict[str, Any]) -> str | None:
        for identifier in resource.get("identifier") or []:
            if isinstance(identifier, dict) and identifier.get("system") == self.hub_system:
                value = identifier.get("value")
                return value if isinstance(value, str) and value else None
        return None


PATIENT = FhirResource(common_pb2.ENTITY_TYPE_PATIENT, "Patient", "urn:concord:hub:patient")
APPOINTMENT = FhirResource(common_pb2.ENTITY_TYPE_APPOINTMENT, "Appointment", "urn:concord:hub:appointment")
SERVICE = FhirResource(common_pb2.ENTITY_TYPE_SERVICE, "HealthcareService", "urn:concord:hub:service")
RESOURCES = {resource.entity_type: resource for resource in (PATIENT, APPOINTMENT, SERVICE)}
