"""The Zenoti guest membership mapper and the canonical Coverage (libs/fhir_membership.py)."""

from __future__ import annotations

import pytest

from libs import fhir_membership
from libs.errors import InvalidArgument
from services.mapping.domain import RecordInvalid
from services.mapping.mappers.zenoti_memberships import ZenotiMembershipMapper

RECORD = {
    "id": "gm-1",
    "guest_id": "g-1",
    "membership": {"id": "plan-1", "code": "GLOW", "name": "Glow Monthly"},
    "center": {"id": "c-1", "name": "Boston"},
    "status": "Expired",
    "start_date": "2026-01-05",
    "end_date": "2026-11-30",
    "is_recurring": True,
    "price": {"currency_id": 148, "sales": 89.0, "tax": 0, "final": 89.0},
    "invoice_id": "inv-1",
}


def test_to_hub_builds_a_coverage_with_the_guest_as_beneficiary() -> None:
    hub = ZenotiMembershipMapper().to_hub(RECORD)
    assert hub.external_id == "gm-1" and hub.resource["resourceType"] == "Coverage"
    assert fhir_membership.project(hub.resource) == {
        "membership_id": "gm-1",
        "status": "active",
        "state": "expired",
        "patient": "external:g-1",
        "plan_id": "plan-1",
        "plan_code": "GLOW",
        "plan_name": "Glow Monthly",
        "center_id": "c-1",
        "center_name": "Boston",
        "start": "2026-01-05",
        "end": "2026-11-30",
        "price": "89.00",
        "currency": "USD",
    }


def test_the_patient_reference_is_replaced_both_ways() -> None:
    resource = ZenotiMembershipMapper().to_hub(RECORD).resource
    linked = fhir_membership.set_patient_reference(resource, "Patient/hub-7")
    assert fhir_membership.patient_reference(linked) == "Patient/hub-7"
    assert fhir_membership.parse_membership(linked)["beneficiary"] == {"reference": "Patient/hub-7"}
    back = fhir_membership.set_patient_reference(linked, "external:g-1")
    assert fhir_membership.patient_reference(back) == "external:g-1"


def test_apply_writes_a_merge_result_back() -> None:
    resource = ZenotiMembershipMapper().to_hub(RECORD).resource
    changed = fhir_membership.apply(resource, {"state": "cancelled", "status": "cancelled", "end": None})
    projected = fhir_membership.project(fhir_membership.parse_membership(changed))
    assert projected["state"] == "cancelled" and projected["status"] == "cancelled" and projected["end"] is None
    assert projected["start"] == "2026-01-05"


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        ({"id": ""}, "id", "MISSING_ID"),
        ({"guest_id": None}, "guest_id", "MISSING_PATIENT"),
        ({"membership": {}}, "membership.id", "MISSING_PLAN"),
        ({"status": "Frozen"}, "status", "INVALID_CODE"),
        ({"start_date": "yesterday"}, "start_date", "INVALID_DATE"),
        ({"price": {"sales": "lots"}}, "price.sales", "INVALID_PRICE"),
    ],
)
def test_bad_records_are_rejected_by_field_without_values(change: dict, field: str, reason: str) -> None:
    with pytest.raises(RecordInvalid) as refused:
        ZenotiMembershipMapper().to_hub({**RECORD, **change})
    assert [(e.field, e.reason) for e in refused.value.errors] == [(field, reason)]
    assert "Glow" not in str(refused.value) and "g-1" not in str(refused.value.errors[0].message)


def test_a_push_is_refused_as_read_only() -> None:
    with pytest.raises(RecordInvalid) as refused:
        ZenotiMembershipMapper().to_vendor(ZenotiMembershipMapper().to_hub(RECORD).resource)
    assert refused.value.errors[0].reason == "READ_ONLY_ENTITY"


def test_an_unknown_state_is_invalid() -> None:
    resource = ZenotiMembershipMapper().to_hub(RECORD).resource
    with pytest.raises(InvalidArgument):
        fhir_membership.parse_membership(fhir_membership.apply(resource, {"state": "frozen"}))
