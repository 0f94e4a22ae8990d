"""FHIR R4 Patient at an EMR <-> the hub's FHIR R4 Patient: the same resource, less what belongs to
one side only.

| EMR Patient | hub Patient | |
|---|---|---|
| `id` | `external_id` | the hub keeps its own id; the link maps one to the other |
| `meta.versionId`, `.lastUpdated`, `.source` | dropped | each side's own bookkeeping; `profile`, `security`, `tag` are kept |
| `text` | dropped | narrative generated from the other elements; it would go stale as the hub merges them |
| `identifier` | `identifier` | the EMR's own (MRN, SSN, ...) kept both ways |
| `identifier[system=urn:concord:hub:patient]` | the hub's `id` | written to the EMR, so a retried create finds its record |
| everything else | the same | validated with fhir.resources (R4) both ways |

The canonical fields are declared as default field mappings (``ELEMENTS``: element path <-> hub
field, identity both ways, services/mapping/mappers/fhir_elements.py), so a config's overrides
can switch one off, send it one way only or pass it through a transform; their values are checked
against the elements' FHIR R4 types (a birthDate takes a FHIR date, gender an AdministrativeGender
code). Errors name the FHIR element (`birthDate`, `name[0].given`), never its value.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

from libs.errors import InvalidArgument
from libs.fhir_patient import GENDERS, apply, hub_patient, locate, parse_patient
from services.mapping.domain import FieldError, HubResult, RecordInvalid
from services.mapping.mappers.fhir_elements import Elements
from services.mapping.rules import FieldRule, rules_from
from services.mapping.schema import VendorField, code, string

# The adapter sends it as `If-None-Exist: identifier=<system>|<hub id>` (services/adapters/fhir/resources.py).
HUB_ID_SYSTEM = "urn:concord:hub:patient"
# Concord's own identifier systems: bookkeeping of one hub, never the patient's identity at an EMR.
_CONCORD_SYSTEMS = "urn:concord:"
_SERVER_META = ("versionId", "lastUpdated", "source")
_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


def whole_numbers(value: Any) -> Any:
    """Records arrive through protobuf Structs, whose numbers are all doubles: 2.0 is FHIR's integer 2."""
    if isinstance(value, dict):
        return {k: whole_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [whole_numbers(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def shared_elements(resource: dict) -> dict:
    """The resource without id, narrative, server meta and Concord's identifiers."""
    shared = {k: copy.deepcopy(v) for k, v in resource.items() if k not in ("id", "meta", "text")}
    meta = {k: copy.deepcopy(v) for k, v in (resource.get("meta") or {}).items() if k not in _SERVER_META}
    if meta:
        shared["meta"] = meta
    identifiers = [
        i
        for i in shared.get("identifier") or []
        if not (isinstance(i, dict) and str(i.get("system", "")).startswith(_CONCORD_SYSTEMS))
    ]
    shared.pop("identifier", None)
    if identifiers:
        shared["identifier"] = identifiers
    return shared


def _parsed(resource: dict, external_id: str = "", check: Callable[[dict], dict] = parse_patient) -> dict:
    try:
        return check(resource)
    except InvalidArgument as error:
        raise RecordInvalid([FieldError.of(error)], external_id) from None


def _leaves(patient: dict) -> dict[str, str]:
    # locate names "telecom" when the patient has no entry of the system: nothing to read there.
    return {field: "" if path == "telecom" else path for field, path in locate(patient).items()}


# Element path (the EMR's "vendor field") -> canonical field, with the element's FHIR R4 type.
ELEMENTS = Elements(
    fields={
        "name.given": "given_name",
        "name.family": "family_name",
        "birthDate": "birth_date",
        "gender": "gender",
        "telecom.where(system='phone').value": "phone",
        "telecom.where(system='email').value": "email",
        "address.line": "address_line",
        "address.city": "city",
        "address.state": "state",
        "address.postalCode": "postal_code",
        "address.country": "country",
    },
    types={
        "name.given": string(),
        "name.family": string(),
        "birthDate": VendorField("fhir_date"),
        "gender": code(*GENDERS),
        "telecom.where(system='phone').value": VendorField("phone"),
        "telecom.where(system='email').value": VendorField("email"),
        "address.line": string(),
        "address.city": string(),
        "address.state": string(),
        "address.postalCode": string(),
        "address.country": string(),
    },
    parse=lambda record: parse_patient(whole_numbers(record)),
    apply=apply,
    leaves=_leaves,
)


class FhirPatientMapper:
    integration_type = "fhir"
    entity_type = "ENTITY_TYPE_PATIENT"
    modified_field = "meta.lastUpdated"  # the vendor's modification time (newest_wins)
    vendor_schema = ELEMENTS.schema

    def default_field_mappings(self) -> list[FieldRule]:
        """Every canonical field, element for element: the EMR and the hub hold the same resource."""
        return rules_from(self.entity_type, ELEMENTS.fields, {})

    def read_vendor_field(self, record: dict, path: str) -> object:
        return ELEMENTS.read(record, path)

    def write_vendor_field(self, record: dict, path: str, value: object) -> None:
        ELEMENTS.write(record, path, value)

    def to_hub(self, record: dict) -> HubResult:
        """An EMR Patient (search match or read) as the hub's Patient; external_id is the EMR's id."""
        emr_id = record.get("id")
        emr_id = emr_id if isinstance(emr_id, str) else ""
        if record.get("resourceType") != "Patient":
            raise RecordInvalid([FieldError("resourceType", "INVALID_FHIR_RESOURCE", "resourceType must be Patient")])
        if not _ID.match(emr_id):
            raise RecordInvalid([FieldError("id", "MISSING_ID", "the Patient has no valid FHIR id")])
        return HubResult(resource=_parsed(shared_elements(whole_numbers(record)), emr_id), external_id=emr_id)

    def to_vendor(self, resource: dict) -> dict:
        """The hub's Patient as the EMR's write body: no id (the adapter sets the EMR's on updates),
        no hub meta, and the hub's id as an identifier."""
        patient = _parsed(whole_numbers(resource), check=hub_patient)
        body = shared_elements(patient)
        hub_id = patient.get("id")
        if hub_id:
            body["identifier"] = [
                *body.get("identifier", []),
                {"use": "secondary", "system": HUB_ID_SYSTEM, "value": hub_id},
            ]
        return body
