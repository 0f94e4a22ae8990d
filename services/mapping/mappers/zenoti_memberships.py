"""A Zenoti guest membership (one element of ``GET /v1/guests/{guest_id}/memberships``, as the
adapter returns it: the guest's id added as ``guest_id``) <-> the hub's membership
(libs/fhir_membership.py, a Coverage). Pull only: Zenoti's public API sells memberships through
invoices, not a membership write, so ``to_vendor`` refuses with READ_ONLY_ENTITY.

| Zenoti guest membership | hub Coverage | |
|---|---|---|
| `id` | `external_id`, `identifier[0]` | |
| `guest_id` | `beneficiary` (logical ``external:`` reference, resolved through patient links) | |
| `membership{id, code, name}` | `class[0].value`, plan code extension, `class[0].name` | |
| `center{id, name}` | `payor[0]` (Organization by identifier, display) | |
| `status` Active / Expired / Cancelled | state extension; `status` cancelled for Cancelled, else active | |
| `start_date`, `end_date` | `period.start`, `period.end` (dates) | |
| `price.sales`, `price.currency_id` | price extension (`valueMoney`) | |
"""

from __future__ import annotations

from datetime import date
from typing import Any

from libs import fhir_membership
from libs.errors import InvalidArgument
from services.mapping.domain import FieldError, HubResult, RecordInvalid
from services.mapping.mappers.zenoti_services import CURRENCIES

STATES = {"active": "active", "expired": "expired", "cancelled": "cancelled", "canceled": "cancelled"}


def _text(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _section(record: dict, key: str) -> dict:
    value = record.get(key)
    return value if isinstance(value, dict) else {}


def _date(record: dict, key: str, errors: list[FieldError]) -> str | None:
    raw = record.get(key)
    if raw in (None, ""):
        return None
    if not isinstance(raw, str):
        errors.append(FieldError(key, "INVALID_DATE", f"{key} must be a date"))
        return None
    try:
        return date.fromisoformat(raw[:10]).isoformat()
    except ValueError:
        errors.append(FieldError(key, "INVALID_DATE", f"{key} must be a date"))
        return None


class ZenotiMembershipMapper:
    integration_type = "zenoti"
    entity_type = "ENTITY_TYPE_MEMBERSHIP"

    def to_hub(self, record: dict) -> HubResult:
        membership_id = _text(record.get("id")) or ""
        if not membership_id:
            raise RecordInvalid([FieldError("id", "MISSING_ID", "the membership has no id")])
        errors: list[FieldError] = []
        guest_id = _text(record.get("guest_id"))
        if guest_id is None:
            errors.append(FieldError("guest_id", "MISSING_PATIENT", "the membership names no guest"))
        plan, center, price_info = _section(record, "membership"), _section(record, "center"), _section(record, "price")
        if _text(plan.get("id")) is None:
            errors.append(FieldError("membership.id", "MISSING_PLAN", "the membership names no plan"))
        raw_state = record.get("status")
        state = STATES.get(raw_state.strip().lower()) if isinstance(raw_state, str) else None
        if state is None:
            errors.append(FieldError("status", "INVALID_CODE", "the membership status is not known"))
        start, end = _date(record, "start_date", errors), _date(record, "end_date", errors)
        price = price_info.get("sales")
        if price is not None and (isinstance(price, bool) or not isinstance(price, int | float) or price < 0):
            errors.append(FieldError("price.sales", "INVALID_PRICE", "the price is not an amount"))
        if errors:
            raise RecordInvalid(errors, membership_id)
        currency_id = price_info.get("currency_id")
        try:
            resource = fhir_membership.membership(
                membership_id=membership_id,
                status="cancelled" if state == "cancelled" else "active",
                state=state,
                patient=f"external:{guest_id}",
                plan_id=_text(plan.get("id")),
                plan_code=_text(plan.get("code")),
                plan_name=_text(plan.get("name")),
                center_id=_text(center.get("id")),
                center_name=_text(center.get("name")),
                start=start,
                end=end,
                price=price,
                currency=CURRENCIES.get(int(currency_id)) if isinstance(currency_id, int | float) else None,
            )
        except InvalidArgument as error:
            raise RecordInvalid([FieldError.of(error)], membership_id) from None
        return HubResult(resource=resource, external_id=membership_id)

    def to_vendor(self, resource: dict) -> dict:
        raise RecordInvalid(
            [FieldError("", "READ_ONLY_ENTITY", "Zenoti's API does not create or update guest memberships")]
        )
