"""A Zenoti catalog service (``GET /v1/centers/{center_id}/services``) <-> the hub's catalog item
(libs/fhir_service.py). Pull only: Zenoti's public API has no catalog writes
(services/adapters/zenoti/README.md), so ``to_vendor`` refuses with READ_ONLY_ENTITY.

| Zenoti service | hub HealthcareService | |
|---|---|---|
| `id` | `external_id`, `identifier[https://zenoti.com/service-id]` | the link maps it to the hub's id; the identifier is what a hub appointment names in `serviceType` to be booked at Zenoti |
| `code` | `type[0].coding[0].code` (urn:concord:service-code) | |
| `name` | `name` | |
| `description` | `comment` | empty is absent |
| `duration` (minutes) | duration extension (`valueDuration`, UCUM min) | |
| `price_info.sale_price`, `.currency_id` | price extension (`valueMoney`) | the center's price before tax; currency_id 148 is USD |
| `additional_info.category{id, name}` | `category[0].coding[0].code`, `category[0].text` | |
| `catalog_info.can_book` | `active` | |
"""

from __future__ import annotations

from typing import Any

from libs import fhir_service
from libs.errors import InvalidArgument
from services.mapping.domain import FieldError, HubResult, RecordInvalid

# The system a Zenoti appointment's serviceType coding uses too (zenoti_appointments.py).
SERVICE_ID_SYSTEM = "https://zenoti.com/service-id"
# Zenoti's numeric currency ids (148 in the sandbox seed, sandbox/zenoti/model.py); unknown ids stay unnamed.
CURRENCIES = {148: "USD"}


def _text(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


class ZenotiServiceMapper:
    integration_type = "zenoti"
    entity_type = "ENTITY_TYPE_SERVICE"

    def to_hub(self, record: dict) -> HubResult:
        service_id = record.get("id")
        service_id = service_id if isinstance(service_id, str) else ""
        if not service_id:
            raise RecordInvalid([FieldError("id", "MISSING_ID", "the service has no id")])
        name = _text(record.get("name"))
        if name is None:
            raise RecordInvalid([FieldError("name", "MISSING_NAME", "the service has no name")], service_id)
        duration = record.get("duration")
        if duration is not None and (
            isinstance(duration, bool)
            or not isinstance(duration, int | float)
            or duration < 0
            or duration != int(duration)
        ):
            raise RecordInvalid(
                [FieldError("duration", "INVALID_DURATION", "the duration is not whole minutes")], service_id
            )
        price_info = record.get("price_info") if isinstance(record.get("price_info"), dict) else {}
        price = price_info.get("sale_price")
        if price is not None and (isinstance(price, bool) or not isinstance(price, int | float) or price < 0):
            raise RecordInvalid(
                [FieldError("price_info.sale_price", "INVALID_PRICE", "the price is not an amount")], service_id
            )
        currency_id = price_info.get("currency_id")
        additional = record.get("additional_info") if isinstance(record.get("additional_info"), dict) else {}
        category = additional.get("category") if isinstance(additional.get("category"), dict) else {}
        catalog = record.get("catalog_info") if isinstance(record.get("catalog_info"), dict) else {}
        try:
            resource = fhir_service.catalog_item(
                name=name,
                service_code=_text(record.get("code")),
                category_code=_text(category.get("id")),
                category_name=_text(category.get("name")),
                duration_minutes=None if duration is None else int(duration),
                price=price,
                currency=CURRENCIES.get(int(currency_id)) if isinstance(currency_id, int | float) else None,
                description=_text(record.get("description")),
                active=catalog.get("can_book") is not False,
            )
        except InvalidArgument as error:
            raise RecordInvalid([FieldError.of(error)], service_id) from None
        resource["identifier"] = [{"system": SERVICE_ID_SYSTEM, "value": service_id}]
        return HubResult(resource=resource, external_id=service_id)

    def to_vendor(self, resource: dict) -> dict:
        raise RecordInvalid(
            [FieldError("", "READ_ONLY_ENTITY", "Zenoti's API does not create or update catalog services")]
        )
