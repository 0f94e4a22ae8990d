"""The canonical catalog item (libs/fhir_service.py) and its Zenoti and FHIR mappers."""

from __future__ import annotations

import copy

import pytest

from libs import fhir_service
from libs.errors import InvalidArgument
from services.mapping.domain import RecordInvalid
from services.mapping.mappers import default_mappers
from services.mapping.mappers.fhir_services import HUB_ID_SYSTEM, FhirServiceMapper
from services.mapping.mappers.zenoti_services import ZenotiServiceMapper
from services.sync.entities import SERVICE, kind_of

ZENOTI_SERVICE = {
    "id": "5b2a6f1e-0000-4000-8000-000000000001",
    "code": "HF60",
    "name": "Hydrafacial",
    "description": "",
    "duration": 60,
    "price_info": {"currency_id": 148, "sale_price": 165.0, "tax": 16.91, "final_price": 181.91},
    "additional_info": {"category": {"id": "c-facials", "name": "Facials"}},
    "catalog_info": {"can_book": True},
}


def _item(**changes: object) -> dict:
    fields = {
        "name": "Hydrafacial",
        "service_code": "HF60",
        "category_code": "c-facials",
        "category_name": "Facials",
        "duration_minutes": 60,
        "price": "165",
        "currency": "USD",
    }
    return fhir_service.catalog_item(**{**fields, **changes})  # type: ignore[arg-type]


def test_the_entity_is_registered_with_its_mappers_and_names_no_patient() -> None:
    kind = kind_of(SERVICE)
    assert kind.resource_type == "HealthcareService" and not kind.is_patient and kind.patient_ref is None
    mappers = default_mappers()
    assert ("zenoti", SERVICE) in mappers and ("fhir", SERVICE) in mappers


def test_zenoti_service_maps_to_a_valid_healthcare_service() -> None:
    hub = ZenotiServiceMapper().to_hub(ZENOTI_SERVICE)
    assert hub.external_id == ZENOTI_SERVICE["id"]
    assert fhir_service.parse_service(hub.resource) == hub.resource
    assert fhir_service.project(hub.resource) == {
        "name": "Hydrafacial",
        "active": "true",
        "service_code": "HF60",
        "category_code": "c-facials",
        "category_name": "Facials",
        "duration_minutes": "60",
        "price": "165.00",
        "currency": "USD",
        "description": None,
    }


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        ({"id": None}, "id", "MISSING_ID"),
        ({"name": "  "}, "name", "MISSING_NAME"),
        ({"duration": 12.5}, "duration", "INVALID_DURATION"),
        ({"duration": "an hour"}, "duration", "INVALID_DURATION"),
        ({"price_info": {"sale_price": "free"}}, "price_info.sale_price", "INVALID_PRICE"),
        ({"price_info": {"sale_price": -1}}, "price_info.sale_price", "INVALID_PRICE"),
    ],
)
def test_a_malformed_zenoti_service_is_rejected_naming_the_field(change: dict, field: str, reason: str) -> None:
    record = {**copy.deepcopy(ZENOTI_SERVICE), **change}
    with pytest.raises(RecordInvalid) as refused:
        ZenotiServiceMapper().to_hub(record)
    assert (refused.value.errors[0].field, refused.value.errors[0].reason) == (field, reason)


def test_projection_and_apply_round_trip() -> None:
    item = _item()
    changes = {"price": "99.50", "duration_minutes": "45", "category_name": "Peels", "description": "gentle"}
    changed = fhir_service.apply(item, changes)
    assert fhir_service.project(changed) == {**fhir_service.project(item), **changes}
    assert fhir_service.parse_service(changed) == changed
    cleared = fhir_service.apply(item, {"duration_minutes": None})
    assert fhir_service.project(cleared)["duration_minutes"] is None
    assert fhir_service.project(fhir_service.apply(item, {"price": "165.0"})) == fhir_service.project(item)


def test_invalid_resources_are_refused_without_their_values() -> None:
    with pytest.raises(InvalidArgument) as refused:
        fhir_service.parse_service({"resourceType": "HealthcareService", "name": "X", "active": "Secret-Value"})
    assert refused.value.field == "active" and "Secret-Value" not in refused.value.message
    with pytest.raises(InvalidArgument) as refused:
        fhir_service.parse_service({"resourceType": "HealthcareService"})
    assert refused.value.reason == "MISSING_NAME"
    with pytest.raises(InvalidArgument):
        fhir_service.parse_service({"resourceType": "Patient"})


def test_fhir_mapper_round_trip_adds_the_hub_identifier_and_drops_server_meta() -> None:
    hub = {**_item(), "id": "hub-1"}
    body = FhirServiceMapper().to_vendor(hub)
    assert "id" not in body and {"use": "secondary", "system": HUB_ID_SYSTEM, "value": "hub-1"} in body["identifier"]
    emr = {**body, "id": "emr-7", "meta": {"versionId": "3", "lastUpdated": "2024-06-03T09:00:00Z"}}
    back = FhirServiceMapper().to_hub(emr)
    assert back.external_id == "emr-7" and "identifier" not in back.resource and "meta" not in back.resource
    assert fhir_service.project(back.resource) == fhir_service.project(hub)
    with pytest.raises(RecordInvalid):
        FhirServiceMapper().to_hub({**emr, "id": ""})
