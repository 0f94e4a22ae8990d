"""Zenoti guest <-> FHIR Patient, both ways, as pure functions."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given, settings

from libs.fhir_patient import parse_patient, project
from sandbox.zenoti import render
from sandbox.zenoti.app import create_app
from services.mapping.domain import RecordInvalid
from services.mapping.mappers.zenoti import GUEST_ID_SYSTEM, STATE_CODES, STATE_IDS, ZenotiPatientMapper
from tests.mapping.strategies import full_date, patients
from tests.mapping.synthea import synthea_patients

MAPPER = ZenotiPatientMapper()
SYNTHEA = synthea_patients()

# The guest object of GET /v1/guests/{id} (VENDOR_APIS §2, the docs' samples).
GUEST = {
    "id": "b9e61937-d5ce-46d5-be26-2659280d5eb9",
    "code": "1A347",
    "center_id": "34aac717-e7df-4231-afc8-14420213957c",
    "personal_info": {
        "user_name": "",
        "first_name": "Mary Ann",
        "last_name": "Harrington",
        "middle_name": "Louise",
        "email": "Mary.Harrington@Example.com",
        "mobile_phone": {"country_code": 225, "number": "6175550134"},
        "work_phone": None,
        "home_phone": {"country_code": 225, "number": "6175559999"},
        "gender": 0,
        "date_of_birth": "1997-08-02T00:00:00",
        "is_minor": False,
        "nationality_id": -1,
        "anniversary_date": "0001-01-01T00:00:00",
    },
    "address_info": {
        "address_1": "12 Beacon St",
        "address_2": "Apt 4",
        "city": "Boston",
        "country_id": 225,
        "state_id": 22,
        "state_other": "",
        "zip_code": "02108",
    },
    "preferences": {"receive_marketing_email": True},
    "tags": ["vip"],
}


def _errors(call, record: dict) -> list[tuple[str, str, str]]:  # noqa: ANN001
    with pytest.raises(RecordInvalid) as invalid:
        call(record)
    return [(e.field, e.reason, e.message) for e in invalid.value.errors]


def test_guest_to_patient() -> None:
    result = MAPPER.to_hub(GUEST)
    assert result.external_id == GUEST["id"]
    assert result.resource == {
        "resourceType": "Patient",
        "identifier": [{"system": GUEST_ID_SYSTEM, "value": GUEST["id"]}],
        "name": [{"use": "official", "family": "Harrington", "given": ["Mary", "Ann", "Louise"]}],
        "telecom": [{"system": "phone", "value": "+16175550134", "use": "mobile"}, {"system": "email", "value": "mary.harrington@example.com"}],
        "gender": "female",
        "birthDate": "1997-08-02",
        "address": [{"line": ["12 Beacon St, Apt 4"], "city": "Boston", "state": "MA", "postalCode": "02108", "country": "US"}],
    }  # fmt: skip
    assert parse_patient(result.resource) == result.resource


def test_webhook_data_with_nulls_and_unset_dates() -> None:
    """``data`` of Guest.Created (docs/vendors/zenoti/docs/reference/guest-created.md)."""
    data = {
        "id": "b9e61937-d5ce-46d5-be26-2659280d5eb9",
        "_id": 683768,
        "code": "1A347",
        "center_id": "34aac717-e7df-4231-afc8-14420213957c",
        "center_name": "Chicago",
        "created_date": "2022-03-11T14:59:49",
        "personal_info": {
            "user_name": "",
            "first_name": "Joseph",
            "last_name": "Harrington",
            "middle_name": "",
            "email": "",
            "mobile_phone": None,
            "work_phone": None,
            "home_phone": None,
            "gender": -1,
            "date_of_birth": None,
            "is_minor": False,
            "nationality_id": 95,
            "anniversary_date": None,
            "dob_incomplete_year": None,
        },
        "address_info": {
            "address_1": "",
            "address_2": "",
            "city": "",
            "country_id": 225,
            "state_id": -1,
            "state_other": "",
            "zip_code": "29214",
        },
    }
    fields = project(MAPPER.to_hub(data).resource)
    assert fields == {
        "given_name": "Joseph",
        "family_name": "Harrington",
        "birth_date": None,
        "gender": None,
        "phone": None,
        "email": None,
        "address_line": None,
        "city": None,
        "state": None,
        "postal_code": "29214",
        "country": "US",
    }


def test_numbers_that_crossed_a_protobuf_struct_are_read_as_ints() -> None:
    guest = copy.deepcopy(GUEST)
    guest["personal_info"].update(gender=1.0, mobile_phone={"country_code": 225.0, "number": "6175550134"})
    guest["address_info"].update(state_id=22.0, country_id=225.0)
    fields = project(MAPPER.to_hub(guest).resource)
    assert (fields["gender"], fields["phone"], fields["state"], fields["country"]) == (
        "male",
        "+16175550134",
        "MA",
        "US",
    )


def test_state_other_unknown_ids_and_unpublished_countries() -> None:
    guest = copy.deepcopy(GUEST)
    guest["address_info"].update(state_id=-2, state_other="Ontario", country_id=38)
    fields = project(MAPPER.to_hub(guest).resource)
    assert (fields["state"], fields["country"]) == ("Ontario", None)
    guest["address_info"].update(state_id=125, state_other="")
    assert project(MAPPER.to_hub(guest).resource)["state"] is None  # an id outside the table is not guessed


def test_bad_guest_fields_are_named_without_their_values() -> None:
    bad = copy.deepcopy(GUEST)
    bad["personal_info"].update(
        email="mary at example",
        mobile_phone={"country_code": 225, "number": "call me"},
        gender=7,
        date_of_birth="02/08/1997",
        last_name=12,
    )
    bad["address_info"].update(state_id="Mass", city=["Boston"])
    errors = _errors(MAPPER.to_hub, bad)
    assert {(field, reason) for field, reason, _ in errors} == {
        ("personal_info.email", "INVALID_EMAIL"),
        ("personal_info.mobile_phone.number", "INVALID_PHONE"),
        ("personal_info.gender", "INVALID_GENDER"),
        ("personal_info.date_of_birth", "INVALID_DATE"),
        ("personal_info.last_name", "INVALID_TYPE"),
        ("address_info.state_id", "INVALID_TYPE"),
        ("address_info.city", "INVALID_TYPE"),
    }
    for _, _, message in errors:
        for value in ("mary at", "call me", "02/08/1997", "Mass", "Boston"):
            assert value not in message
    with pytest.raises(RecordInvalid) as invalid:
        MAPPER.to_hub(bad)
    assert invalid.value.external_id == GUEST["id"]


def test_guest_without_names_or_with_an_unknown_phone_country() -> None:
    nameless = {"id": "g1", "personal_info": {"first_name": " ", "last_name": "", "email": "a@example.com"}}
    assert _errors(MAPPER.to_hub, nameless)[0][:2] == ("personal_info.first_name", "MISSING_NAME")
    abroad = {
        **GUEST,
        "personal_info": {**GUEST["personal_info"], "mobile_phone": {"country_code": 77, "number": "12345678"}},
    }
    assert _errors(MAPPER.to_hub, abroad)[0][:2] == ("personal_info.mobile_phone.country_code", "INVALID_PHONE")
    assert _errors(MAPPER.to_hub, {"id": "g1", "personal_info": "Mary"})[0][:2] == ("personal_info", "INVALID_TYPE")


def test_patient_to_guest_write_shape() -> None:
    guest = MAPPER.to_vendor(MAPPER.to_hub(GUEST).resource)
    assert guest == {
        "personal_info": {
            "first_name": "Mary",
            "middle_name": "Ann Louise",
            "last_name": "Harrington",
            "email": "mary.harrington@example.com",
            "mobile_phone": {"country_code": 225, "number": "6175550134"},
            "gender": 0,
            "date_of_birth": "1997-08-02T00:00:00",
        },
        "address_info": {
            "address_1": "12 Beacon St",
            "address_2": "Apt 4",
            "city": "Boston",
            "zip_code": "02108",
            "country_id": 225,
            "state_id": 22,
            "state_other": "",
        },
    }


def test_what_zenoti_cannot_carry_is_omitted() -> None:
    patient = {
        "resourceType": "Patient",
        "name": [{"use": "official", "family": "Dupont", "given": ["Anne"]}],
        "telecom": [{"system": "phone", "value": "+33 1 42 68 53 00"}],
        "gender": "other",
        "birthDate": "1980-05",
        "address": [{"city": "Paris", "state": "Île-de-France", "country": "FR"}],
        "deceasedBoolean": True,
    }
    assert MAPPER.to_vendor(patient) == {
        "personal_info": {"first_name": "Anne", "middle_name": "", "last_name": "Dupont"},
        "address_info": {"city": "Paris", "state_id": -2, "state_other": "Île-de-France"},
    }


def test_bad_patients_name_the_fhir_path_without_the_value() -> None:
    base = {"resourceType": "Patient", "name": [{"use": "official", "family": "Smith", "given": ["Ann"]}]}
    cases = [
        ({**base, "birthDate": "1980-02-31"}, "birthDate", "INVALID_FHIR_RESOURCE", "1980-02-31"),
        (
            {**base, "telecom": [{"system": "email", "value": "a@b.co"}, {"system": "phone", "value": "ask at desk"}]},
            "telecom[1].value",
            "INVALID_PHONE",
            "ask at desk",
        ),
        ({**base, "telecom": [{"system": "email", "value": "smith at home"}]}, "telecom[0].value", "INVALID_EMAIL", "smith"),
        ({"resourceType": "Patient", "name": [{"use": "official", "family": "Jones"}]}, "name[0].given", "MISSING_NAME", "Jones"),
        ({"resourceType": "Patient", "name": [{"use": "official", "given": ["Jo"]}]}, "name[0].family", "MISSING_NAME", "Jo"),
        ({"resourceType": "Patient", "name": [{"use": "maiden", "family": "Jones"}]}, "name", "MISSING_NAME", "Jones"),
        ({"resourceType": "Observation"}, "resourceType", "INVALID_FHIR_RESOURCE", "Observation"),
    ]  # fmt: skip
    for patient, field, reason, value in cases:
        [(got_field, got_reason, message)] = _errors(MAPPER.to_vendor, patient)
        assert (got_field, got_reason) == (field, reason)
        assert value not in message


def _carried(fields: dict) -> dict:
    """The canonical fields as they come back from Zenoti: no 'other'/'unknown' gender, countries
    other than the US dropped, US states (code or name) back as USPS codes."""
    expected = {**fields, "gender": fields["gender"] if fields["gender"] in ("female", "male") else None}
    country, state = fields["country"], fields["state"]
    us = country is not None and country.casefold() in ("us", "usa", "united states", "united states of america")
    expected["country"] = "US" if us else None
    if state is not None and (us or country is None) and state.casefold() in STATE_IDS:
        expected["state"] = STATE_CODES[STATE_IDS[state.casefold()]]
    return expected


def test_every_synthea_patient_maps_to_zenoti_and_back() -> None:
    for resource in SYNTHEA:
        guest = MAPPER.to_vendor(resource)
        assert set(guest) <= {"personal_info", "address_info"}
        assert project(MAPPER.to_hub(guest).resource) == _carried(project(parse_patient(resource)))


def test_the_sandbox_seeded_guests_map_to_the_hub() -> None:
    """The 60 Synthea guests as the Zenoti sandbox renders them; one carries an email with a space
    (a two-word first name), which the hub refuses by field, not by value."""
    org = next(iter(create_app().state.sandbox.orgs.values()))
    refused = []
    for record in org.guests.values():
        guest = render.guest(record)
        try:
            patient = MAPPER.to_hub(guest).resource
        except RecordInvalid as invalid:
            refused += [(e.field, e.reason) for e in invalid.errors]
            continue
        assert project(MAPPER.to_hub(MAPPER.to_vendor(patient)).resource) == project(patient)
    assert refused == [("personal_info.email", "INVALID_EMAIL")]


@settings(max_examples=200, deadline=None)
@given(patient=patients(birth_date=full_date))
def test_hub_zenoti_hub_round_trip_keeps_what_zenoti_carries(patient: dict) -> None:
    fields = project(parse_patient(patient))
    if fields["given_name"] is None or fields["family_name"] is None:
        assert _errors(MAPPER.to_vendor, patient)[0][1] == "MISSING_NAME"
        return
    guest = MAPPER.to_vendor(patient)
    assert set(guest) <= {"personal_info", "address_info"}
    assert project(MAPPER.to_hub(guest).resource) == _carried(fields)
