"""Salesforce Person Account <-> FHIR Patient, both ways, as pure functions."""

from __future__ import annotations

import pytest
from hypothesis import given, settings

from libs.fhir_patient import parse_patient, project
from services.mapping.domain import RecordInvalid
from services.mapping.mappers.salesforce import (
    ACCOUNT_ID_SYSTEM,
    CONCORD_ID_SYSTEM,
    FIELDS,
    PHONES,
    SalesforcePatientMapper,
)
from tests.mapping.strategies import full_date, patients
from tests.mapping.synthea import synthea_patients

MAPPER = SalesforcePatientMapper()
SYNTHEA = synthea_patients()
WRITE_FIELDS = {*FIELDS, *PHONES, "Concord_Patient_Id__c"}

# A Person Account as the adapter returns it from a SOQL query (attributes dropped).
ACCOUNT = {
    "Id": "001Dn00000abcDEFAA2",
    "FirstName": "María José",
    "LastName": "Núñez",
    "PersonEmail": "Maria.Nunez@Example.com",
    "PersonBirthdate": "1987-03-14",
    "PersonMobilePhone": "(617) 555-0134",
    "PersonHomePhone": "617-555-0199",
    "PersonMailingStreet": "12 Harbor St\nApt 4",
    "PersonMailingCity": "Boston",
    "PersonMailingState": "MA",
    "PersonMailingPostalCode": "02110",
    "PersonMailingCountry": "United States",
    "PersonGenderIdentity": "Female",
    "Concord_Patient_Id__c": "6f1c6a8e-hub",
    "SystemModstamp": "2024-05-20T20:49:32.000+0000",
    "LastModifiedDate": "2024-05-20T20:49:32.000+0000",
}


def _errors(call, record: dict) -> list[tuple[str, str, str]]:  # noqa: ANN001
    with pytest.raises(RecordInvalid) as invalid:
        call(record)
    return [(e.field, e.reason, e.message) for e in invalid.value.errors]


def test_person_account_to_patient() -> None:
    result = MAPPER.to_hub(ACCOUNT)
    assert result.external_id == ACCOUNT["Id"]
    assert result.resource == {
        "resourceType": "Patient",
        "identifier": [
            {"system": ACCOUNT_ID_SYSTEM, "value": ACCOUNT["Id"]},
            {"system": CONCORD_ID_SYSTEM, "value": "6f1c6a8e-hub"},
        ],
        "name": [{"use": "official", "family": "Núñez", "given": ["María", "José"]}],
        "telecom": [
            {"system": "phone", "value": "+16175550134", "use": "mobile"},
            {"system": "email", "value": "maria.nunez@example.com"},
        ],
        "gender": "female",
        "birthDate": "1987-03-14",
        "address": [
            {
                "line": ["12 Harbor St", "Apt 4"],
                "city": "Boston",
                "state": "MA",
                "postalCode": "02110",
                "country": "United States",
            }
        ],
    }
    assert parse_patient(result.resource) == result.resource
    assert project(result.resource)["address_line"] == "12 Harbor St, Apt 4"


def test_home_phone_is_used_when_there_is_no_mobile_and_goes_back_to_the_same_field() -> None:
    account = {k: v for k, v in ACCOUNT.items() if k != "PersonMobilePhone"}
    patient = MAPPER.to_hub(account).resource
    assert patient["telecom"][0] == {"system": "phone", "value": "+16175550199", "use": "home"}
    written = MAPPER.to_vendor({**patient, "id": "hub-1"})
    assert written["PersonHomePhone"] == "+16175550199" and "PersonMobilePhone" not in written


def test_patient_to_person_account_write_shape() -> None:
    patient = {**MAPPER.to_hub(ACCOUNT).resource, "id": "hub-patient-1"}
    assert MAPPER.to_vendor(patient) == {
        "FirstName": "María José",
        "LastName": "Núñez",
        "PersonEmail": "maria.nunez@example.com",
        "PersonBirthdate": "1987-03-14",
        "PersonGenderIdentity": "Female",
        "PersonMailingStreet": "12 Harbor St\nApt 4",
        "PersonMailingCity": "Boston",
        "PersonMailingState": "MA",
        "PersonMailingPostalCode": "02110",
        "PersonMailingCountry": "United States",
        "PersonMobilePhone": "+16175550134",
        "Concord_Patient_Id__c": "hub-patient-1",
    }


def test_the_hub_id_goes_to_the_external_id_field_only_when_there_is_one() -> None:
    patient = {"resourceType": "Patient", "name": [{"family": "Smith"}]}
    assert MAPPER.to_vendor(patient) == {"LastName": "Smith"}
    assert MAPPER.to_vendor({**patient, "id": "a1b2"})["Concord_Patient_Id__c"] == "a1b2"


@pytest.mark.parametrize(
    ("stored", "fhir", "written"),
    [("Male", "male", "Male"), ("Female", "female", "Female"), ("Nonbinary", "other", "Not Listed")],
)
def test_gender_identity(stored: str, fhir: str, written: str) -> None:
    patient = MAPPER.to_hub({**ACCOUNT, "PersonGenderIdentity": stored}).resource
    assert patient["gender"] == fhir
    assert MAPPER.to_vendor(patient)["PersonGenderIdentity"] == written


def test_what_a_person_account_cannot_carry_is_omitted() -> None:
    patient = {
        "resourceType": "Patient",
        "name": [{"use": "official", "family": "Smith", "given": ["Ann"], "prefix": ["Dr."]}],
        "gender": "unknown",
        "birthDate": "1980-04",
        "telecom": [{"system": "fax", "value": "617-555-0100"}],
    }
    assert MAPPER.to_vendor(patient) == {"FirstName": "Ann", "LastName": "Smith"}


def test_bad_account_fields_are_named_without_their_values() -> None:
    bad = {
        **ACCOUNT,
        "PersonBirthdate": "14/03/1987",
        "PersonEmail": "maria at example",
        "PersonMobilePhone": "call me maybe",
        "PersonGenderIdentity": "F",
        "PersonMailingCity": 12,
    }
    errors = _errors(MAPPER.to_hub, bad)
    assert {(field, reason) for field, reason, _ in errors} == {
        ("PersonBirthdate", "INVALID_DATE"),
        ("PersonEmail", "INVALID_EMAIL"),
        ("PersonMobilePhone", "INVALID_PHONE"),
        ("PersonGenderIdentity", "INVALID_GENDER"),
        ("PersonMailingCity", "INVALID_TYPE"),
    }
    for _, _, message in errors:
        for value in ("14/03/1987", "maria", "call me", "example"):
            assert value not in message
    with pytest.raises(RecordInvalid) as invalid:
        MAPPER.to_hub(bad)
    assert invalid.value.external_id == ACCOUNT["Id"]
    assert _errors(MAPPER.to_hub, {"Id": ACCOUNT["Id"], "FirstName": "Ann"})[0][:2] == ("LastName", "MISSING_NAME")


def test_bad_patients_name_the_fhir_path_without_the_value() -> None:
    base = {"resourceType": "Patient", "name": [{"use": "official", "family": "Smith"}]}
    long_city = "Llanfairpwllgwyngyllgogerychwyrndrobwllllantysiliogogogoch"
    cases = [
        ({"resourceType": "Patient", "name": [{"given": ["Ann"]}]}, "name[0].family", "MISSING_NAME", "Ann"),
        ({**base, "address": [{"city": long_city}]}, "address[0].city", "STRING_TOO_LONG", long_city),
        (
            {**base, "telecom": [{"system": "phone", "value": "ask at desk"}]},
            "telecom[0].value",
            "INVALID_PHONE",
            "ask at desk",
        ),
        ({**base, "birthDate": "1980-02-31"}, "birthDate", "INVALID_FHIR_RESOURCE", "1980-02-31"),
    ]
    for patient, field, reason, value in cases:
        [(got_field, got_reason, message)] = _errors(MAPPER.to_vendor, patient)
        assert (got_field, got_reason) == (field, reason)
        assert value not in message


def test_every_synthea_patient_maps_to_a_person_account_and_back() -> None:
    for resource in SYNTHEA:
        account = MAPPER.to_vendor(resource)
        assert set(account) <= WRITE_FIELDS
        assert account["Concord_Patient_Id__c"] == resource["id"]
        expected = project(parse_patient(resource))
        assert project(MAPPER.to_hub(account).resource) == {
            **expected,
            "gender": None if expected["gender"] == "unknown" else expected["gender"],
        }


@settings(max_examples=200, deadline=None)
@given(patient=patients(birth_date=full_date))
def test_hub_salesforce_hub_round_trip_keeps_what_a_person_account_carries(patient: dict) -> None:
    fields = project(parse_patient(patient))
    if fields["family_name"] is None:
        assert _errors(MAPPER.to_vendor, patient)[0][1] == "MISSING_NAME"
        return
    account = MAPPER.to_vendor(patient)
    assert set(account) <= WRITE_FIELDS
    back = MAPPER.to_hub(account).resource
    assert project(back) == {**fields, "gender": None if fields["gender"] == "unknown" else fields["gender"]}
    # And the account it maps back to is the one that was written: nothing drifts on the next push.
    assert MAPPER.to_vendor(back) == account
