"""FHIR R4 HealthcareService at an EMR <-> the hub's catalog item (libs/fhir_service.py): the same
resource, less what belongs to one side only (as for Patient, services/mapping/mappers/fhir.py).

| EMR HealthcareService | hub HealthcareService | |
|---|---|---|
| `id` | `external_id` | the hub keeps its own id; the link maps one to the other |
| `meta.versionId`, `.lastUpdated`, `.source`, `text` | dropped | each side's own bookkeeping |
| `identifier[system=urn:concord:hub:service]` | the hub's `id` | written to the EMR for conditional creates |
| `providedBy`, `location`, ... | the same | the EMR's own references: not linked by the hub |
| everything else | the same | validated with fhir.resources (R4) both ways |
"""

from __future__ import annotations

import re

from libs import fhir_service
from libs.errors import InvalidArgument
from services.mapping.domain import FieldError, HubResult, RecordInvalid
from services.mapping.mappers.fhir import shared_elements, whole_numbers

# The adapter sends it as `If-None-Exist: identifier=<system>|<hub id>` (services/adapters/fhir/resources.py).
HUB_ID_SYSTEM = "urn:concord:hub:service"
_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


def parsed(resource: dict, external_id: str = "") -> dict:
    """The canonical catalog item, or RecordInvalid naming the element (never its value)."""
    try:
        return fhir_service.parse_service(resource)
    except InvalidArgument as error:
        raise RecordInvalid([FieldError.of(error)], external_id) from None


class FhirServiceMapper:
    integration_type = "fhir"
    entity_type = "ENTITY_TYPE_SERVICE"
    modified_field = "meta.lastUpdated"  # the vendor's modification time (newest_wins)

    def to_hub(self, record: dict) -> HubResult:
        emr_id = record.get("id")
        emr_id = emr_id if isinstance(emr_id, str) else ""
        if record.get("resourceType") != "HealthcareService":
            raise RecordInvalid(
                [FieldError("resourceType", "INVALID_FHIR_RESOURCE", "resourceType must be HealthcareService")]
            )
        if not _ID.match(emr_id):
            raise RecordInvalid([FieldError("id", "MISSING_ID", "the HealthcareService has no valid FHIR id")])
        return HubResult(resource=parsed(shared_elements(whole_numbers(record)), emr_id), external_id=emr_id)

    def to_vendor(self, resource: dict) -> dict:
        """The hub's item as the EMR's write body: no id, no hub meta, the hub's id as an identifier."""
        service = parsed(whole_numbers(resource))
        body = shared_elements(service)
        hub_id = service.get("id")
        if hub_id:
            body["identifier"] = [
                *body.get("identifier", []),
                {"use": "secondary", "system": HUB_ID_SYSTEM, "value": hub_id},
            ]
        return body
