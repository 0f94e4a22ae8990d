"""The canonical membership every service shares: a FHIR R4 Coverage, and its flat projection for the
sync service's field-level merge.

A membership is a self-pay plan the patient holds at the practice: Coverage is the R4 resource for
"a plan under which a beneficiary's services are paid", with the patient as ``beneficiary`` and the
practice (the vendor's center) as ``payor`` (docs/ARCHITECTURE.md, "Memberships").

| what | where in the Coverage |
|---|---|
| the vendor's membership id | ``identifier[0]`` (system ``MEMBERSHIP_ID_SYSTEM``) |
| the patient | ``beneficiary``: ``Patient/<hub id>`` in the hub, a logical ``external:`` reference in mapped vendor records (as appointments) |
| the plan's id, code and name | ``class[0]`` (type ``plan``): ``value`` = the plan id, ``name``; its code in extension ``PLAN_CODE_URL`` |
| the center | ``payor[0]``: an Organization by identifier (system ``CENTER_SYSTEM``), ``display`` = its name |
| start, end | ``period`` (dates) |
| the vendor's state (active, expired, cancelled) | extension ``STATE_URL`` ``valueCode``; ``status`` is ``cancelled`` for a cancelled one, else ``active`` |
| price and currency | extension ``PRICE_URL`` (``valueMoney``) |

A membership names its patient and is PHI: stored encrypted, never logged.
"""

from __future__ import annotations

import copy
from typing import Any

from fhir.resources.R4B.coverage import Coverage

from libs import fhir_appointment
from libs.errors import InvalidArgument
from libs.fhir_patient import validated
from libs.fhir_values import amount, extension, set_extension, set_or_drop

MEMBERSHIP_ID_SYSTEM = "urn:concord:membership-id"
CENTER_SYSTEM = "urn:concord:center-id"
PLAN_CODE_URL = "https://concord.health/fhir/StructureDefinition/membership-plan-code"
STATE_URL = "https://concord.health/fhir/StructureDefinition/membership-state"
PRICE_URL = "https://concord.health/fhir/StructureDefinition/membership-price"
PLAN_CLASS = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/coverage-class", "code": "plan"}]}
STATES = ("active", "expired", "cancelled", "inactive")
CANONICAL_FIELDS = (
    "membership_id",
    "status",
    "state",
    "patient",
    "plan_id",
    "plan_code",
    "plan_name",
    "center_id",
    "center_name",
    "start",
    "end",
    "price",
    "currency",
)


def parse_membership(resource_json: str | dict) -> dict:
    """Validates a FHIR R4 Coverage; returns it as a plain dict without empty values."""
    coverage = validated(resource_json, Coverage)
    state = (extension(coverage, STATE_URL) or {}).get("valueCode")
    if state is not None and state not in STATES:
        raise InvalidArgument("the membership state is not known", field="extension.valueCode", reason="INVALID_CODE")
    return coverage


def patient_reference(coverage: dict) -> str | None:
    """``Patient/<id>`` for a hub reference, ``external:<vendor id>`` for a logical one."""
    beneficiary = coverage.get("beneficiary") or {}
    if beneficiary.get("reference"):
        return beneficiary["reference"]
    identifier = beneficiary.get("identifier") or {}
    if identifier.get("system") == fhir_appointment.EXTERNAL_ID_SYSTEM and identifier.get("value"):
        return f"external:{identifier['value']}"
    return None


def set_patient_reference(coverage: dict, reference: str) -> dict:
    """A copy whose beneficiary points at ``Patient/<id>`` or ``external:<vendor id>``."""
    result = copy.deepcopy(coverage)
    if reference.startswith("Patient/"):
        result["beneficiary"] = {"reference": reference}
    else:
        result["beneficiary"] = fhir_appointment.external_actor(reference.removeprefix("external:"))
    return result


def _plan(coverage: dict) -> dict:
    return (coverage.get("class") or [{}])[0]


def _payor(coverage: dict) -> dict:
    return (coverage.get("payor") or [{}])[0]


def project(coverage: dict) -> dict[str, str | None]:
    plan, payor = _plan(coverage), _payor(coverage)
    period = coverage.get("period") or {}
    money = (extension(coverage, PRICE_URL) or {}).get("valueMoney") or {}
    return {
        "membership_id": ((coverage.get("identifier") or [{}])[0]).get("value"),
        "status": coverage.get("status"),
        "state": (extension(coverage, STATE_URL) or {}).get("valueCode"),
        "patient": patient_reference(coverage),
        "plan_id": plan.get("value"),
        "plan_code": (extension(coverage, PLAN_CODE_URL) or {}).get("valueString"),
        "plan_name": plan.get("name"),
        "center_id": (payor.get("identifier") or {}).get("value"),
        "center_name": payor.get("display"),
        "start": period.get("start"),
        "end": period.get("end"),
        "price": amount(money.get("value")),
        "currency": money.get("currency"),
    }


def apply(coverage: dict, changes: dict[str, str | None]) -> dict:
    """A copy with the canonical changes written back; fields outside the projection untouched."""
    result = copy.deepcopy(coverage)
    for name, value in changes.items():
        if name == "membership_id":
            result["identifier"] = [{"system": MEMBERSHIP_ID_SYSTEM, "value": value}] if value else []
            if not value:
                del result["identifier"]
        elif name == "status":
            set_or_drop(result, "status", value)
        elif name == "state":
            _set_scalar(result, STATE_URL, "valueCode", value)
        elif name == "patient":
            if value:
                result = set_patient_reference(result, value)
        elif name in ("plan_id", "plan_name"):
            plan = result.setdefault("class", [{"type": copy.deepcopy(PLAN_CLASS)}])[0]
            set_or_drop(plan, "value" if name == "plan_id" else "name", value)
        elif name == "plan_code":
            _set_scalar(result, PLAN_CODE_URL, "valueString", value)
        elif name in ("center_id", "center_name"):
            payor = result.setdefault("payor", [{"type": "Organization"}])[0]
            if name == "center_id":
                payor["identifier"] = {"system": CENTER_SYSTEM, "value": value}
                if not value:
                    del payor["identifier"]
            else:
                set_or_drop(payor, "display", value)
        elif name in ("start", "end"):
            period = result.setdefault("period", {})
            set_or_drop(period, name, value)
            if not period:
                del result["period"]
        elif name in ("price", "currency"):
            money_value: Any = float(value) if name == "price" and value is not None else value
            set_extension(result, PRICE_URL, "valueMoney", "value" if name == "price" else "currency", money_value)
    return result


def _set_scalar(coverage: dict, url: str, kind: str, value: str | None) -> None:
    extensions = [e for e in coverage.get("extension", []) if e.get("url") != url]
    if value is not None:
        extensions.append({"url": url, kind: value})
    coverage["extension"] = extensions
    if not extensions:
        del coverage["extension"]


def membership(**fields: Any) -> dict:
    """A validated canonical Coverage from a vendor's membership fields (mappers build with it)."""
    changes = {name: fields.get(name) for name in CANONICAL_FIELDS}
    changes["price"] = amount(changes["price"])
    return parse_membership(apply({"resourceType": "Coverage"}, changes))
