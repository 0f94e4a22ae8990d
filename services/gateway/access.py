"""What a caller's data access level lets it see of a patient, and what its writes keep.

``full`` (admin and provider by default) sees the whole FHIR Patient. ``limited`` (staff by
default: the front desk, which registers, books, checks in and calls patients) and ``read_only``
see only what that work needs, the minimum necessary of HIPAA 164.502(b):

- kept: ``resourceType``, ``id``, ``meta`` (version and time: no PHI), ``active``, ``name`` (to
  find and greet the patient), ``telecom`` (phone and email, to reach them), ``birthDate`` (to tell
  two namesakes apart, as every front desk asks), ``gender``, and of ``identifier`` only the
  medical record number (type ``MR``), the practice's own handle for the patient;
- hidden: ``address``, every other identifier (SSN, driver's licence, insurance member ids,
  vendor ids), ``text`` (the narrative may restate anything), ``contact`` (next of kin, emergency
  contacts), ``maritalStatus``, ``photo``, ``communication``, ``deceased[x]``, ``multipleBirth[x]``,
  ``generalPractitioner``, ``managingOrganization``, ``link`` (merged duplicates), and every
  ``extension`` and ``modifierExtension`` (marketing consent, race, ethnicity, ...). Elements are
  kept by an allow-list: one FHIR adds later is hidden until it is listed here.

A limited caller may still write what it cannot read (the front desk registers a patient's
address). Its ``PUT`` replaces only what it could see: a hidden element it does not send is kept
from the current version, and the If-Match check then runs against that version, so a record
read through a limited view and written back loses nothing. A hidden element it does send
replaces the current one; it cannot delete one.

Only the gateway's patient responses are shaped here. The sync service's audit event of a read
names every field the record holds, not only those a limited view returned (the level does not
travel to the services).
"""

from __future__ import annotations

import json
from typing import Any

from libs.grpc_client import call
from libs.identity import Caller
from libs.protos.concord.sync.v1 import sync_pb2
from services.gateway.auth import access_level
from services.gateway.deps import Backends

LIMITED_PATIENT_ELEMENTS = frozenset(
    {"resourceType", "id", "meta", "active", "name", "telecom", "gender", "birthDate", "identifier"}
)
# HL7 v2 table 0203 identifier type of a medical record number.
_MRN_CODE = "MR"


def _is_mrn(identifier: Any) -> bool:
    if not isinstance(identifier, dict):
        return False
    coding = (identifier.get("type") or {}).get("coding") or []
    return any(isinstance(c, dict) and c.get("code") == _MRN_CODE for c in coding)


def patient_view(resource: dict[str, Any], caller: Caller) -> dict[str, Any]:
    """The patient as ``caller`` may see it."""
    if access_level(caller) == "full":
        return resource
    shaped = {name: value for name, value in resource.items() if name in LIMITED_PATIENT_ELEMENTS}
    mrns = [i for i in shaped.pop("identifier", None) or [] if _is_mrn(i)]
    if mrns:
        shaped["identifier"] = mrns
    return shaped


def keep_hidden(sent: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    """The resource a limited caller's replacement writes: what it sent, plus each hidden element
    of ``current`` it did not send (absent from its view is not deleted)."""
    merged = dict(sent)
    for name, value in current.items():
        if name not in LIMITED_PATIENT_ELEMENTS:
            merged.setdefault(name, value)
    hidden_ids = [i for i in current.get("identifier") or [] if not _is_mrn(i)]
    if hidden_ids:
        given = sent.get("identifier") if isinstance(sent.get("identifier"), list) else []
        merged["identifier"] = list(given) + [i for i in hidden_ids if i not in given]
    return merged


async def replacement_for(
    backends: Backends, caller: Caller, patient_id: str, resource: dict[str, Any], expected_version: int
) -> tuple[dict[str, Any], int]:
    """``PUT /patients/{id}``'s resource and expected version: unchanged for a full caller; for a
    limited one, merged with the current version's hidden elements and bound to that version
    (If-Match, when given, still decides: a different version is refused by the sync service)."""
    if access_level(caller) == "full":
        return resource, expected_version
    found = await call(
        backends.sync.GetPatient, sync_pb2.GetPatientRequest(practice_id=caller.practice_id, patient_id=patient_id)
    )
    current = json.loads(found.patient.resource_json)
    return keep_hidden(resource, current), expected_version or found.patient.version
