"""The canonical catalog item every service shares: a FHIR R4 HealthcareService, and its flat
projection for the sync service's field-level merge.

One resource holds the whole item (docs/ARCHITECTURE.md, "Catalog"):

| what | where in the HealthcareService |
|---|---|
| the vendor's service code and name | ``type[0].coding[0]`` (system ``SERVICE_CODE_SYSTEM``), ``name`` |
| its category | ``category[0].coding[0]`` (system ``CATEGORY_SYSTEM``, code = the category's id), ``.text`` |
| duration in minutes | extension ``DURATION_URL``, ``valueDuration`` in UCUM ``min`` |
| price (before tax) and currency | extension ``PRICE_URL``, ``valueMoney`` |
| description | ``comment`` |
| bookable | ``active`` |

The price is an extension rather than an embedded ChargeItemDefinition: the catalog's price is one
amount per service (per center), which a ChargeItemDefinition would hold as a price component three
levels down with its own id, status and references to keep consistent; one resource is one record,
one link and one merge. Catalog items name no patient: they are not PHI, yet stored encrypted like
every record.
"""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

from fhir.resources.R4B.healthcareservice import HealthcareService

from libs.errors import InvalidArgument
from libs.fhir_patient import validated
from libs.fhir_values import amount, extension, set_extension, set_or_drop

SERVICE_CODE_SYSTEM = "urn:concord:service-code"
CATEGORY_SYSTEM = "urn:concord:service-category"
DURATION_URL = "https://concord.health/fhir/StructureDefinition/service-duration"
PRICE_URL = "https://concord.health/fhir/StructureDefinition/service-price"
CANONICAL_FIELDS = (
    "name",
    "active",
    "service_code",
    "category_code",
    "category_name",
    "duration_minutes",
    "price",
    "currency",
    "description",
)


def parse_service(resource_json: str | dict) -> dict:
    """Validates a FHIR R4 HealthcareService; returns it as a plain dict without empty values."""
    service = validated(resource_json, HealthcareService)
    if not service.get("name"):
        raise InvalidArgument("a catalog item needs a name", field="name", reason="MISSING_NAME")
    price = extension(service, PRICE_URL)
    if price is not None and amount((price.get("valueMoney") or {}).get("value")) is None:
        raise InvalidArgument("the price has no amount", field="extension.valueMoney", reason="INVALID_PRICE")
    return service


def _coding(service: dict, key: str) -> dict:
    concept = (service.get(key) or [{}])[0]
    return {**((concept.get("coding") or [{}])[0]), "_text": concept.get("text")}


def project(service: dict) -> dict[str, str | None]:
    kind, category = _coding(service, "type"), _coding(service, "category")
    duration = (extension(service, DURATION_URL) or {}).get("valueDuration") or {}
    money = (extension(service, PRICE_URL) or {}).get("valueMoney") or {}
    minutes = duration.get("value")
    active = service.get("active")
    return {
        "name": service.get("name"),
        "active": None if active is None else ("true" if active else "false"),
        "service_code": kind.get("code"),
        "category_code": category.get("code"),
        "category_name": category.get("_text") or category.get("display"),
        "duration_minutes": None if minutes is None else str(int(Decimal(str(minutes)))),
        "price": amount(money.get("value")),
        "currency": money.get("currency"),
        "description": service.get("comment"),
    }


def apply(service: dict, changes: dict[str, str | None]) -> dict:
    """A copy with the canonical changes written back; fields outside the projection untouched."""
    result = copy.deepcopy(service)
    for name, value in changes.items():
        if name == "name":
            set_or_drop(result, "name", value)
        elif name == "description":
            set_or_drop(result, "comment", value)
        elif name == "active":
            set_or_drop(result, "active", None if value is None else value == "true")
        elif name == "service_code":
            _set_coding(result, "type", SERVICE_CODE_SYSTEM, "code", value)
        elif name == "category_code":
            _set_coding(result, "category", CATEGORY_SYSTEM, "code", value)
        elif name == "category_name":
            concept = result.setdefault("category", [{}])[0]
            set_or_drop(concept, "text", value)
        elif name == "duration_minutes":
            set_extension(result, DURATION_URL, "valueDuration", "value", None if value is None else int(value))
            duration = extension(result, DURATION_URL)
            if duration is not None:
                duration["valueDuration"].update(unit="min", system="http://unitsofmeasure.org", code="min")
        elif name in ("price", "currency"):
            money_value: Any = float(value) if name == "price" and value is not None else value
            set_extension(result, PRICE_URL, "valueMoney", "value" if name == "price" else "currency", money_value)
    return result


def _set_coding(service: dict, key: str, system: str, element: str, value: str | None) -> None:
    concept = service.setdefault(key, [{}])[0]
    coding = concept.setdefault("coding", [{"system": system}])[0]
    set_or_drop(coding, element, value)


def catalog_item(
    *,
    name: str,
    service_code: str | None,
    category_code: str | None,
    category_name: str | None,
    duration_minutes: int | None,
    price: Any,
    currency: str | None,
    description: str | None = None,
    active: bool = True,
) -> dict:
    """A validated canonical HealthcareService from a vendor's catalog fields (mappers build with it)."""
    base: dict = {"resourceType": "HealthcareService"}
    changes = {
        "name": name,
        "active": "true" if active else "false",
        "service_code": service_code,
        "category_code": category_code,
        "category_name": category_name,
        "duration_minutes": None if duration_minutes is None else str(duration_minutes),
        "price": amount(price),
        "currency": currency,
        "description": description or None,
    }
    return parse_service(apply(base, changes))
