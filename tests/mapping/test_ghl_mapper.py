"""GHL contact <-> FHIR Patient, both ways, as pure functions."""

from __future__ import annotations

import pytest
from hypothesis import given, settings

from libs.fhir_patient import CONSENT_FIELDS, apply, parse_patient, project
from services.mapping.domain import RecordInvalid
from services.mapping.mappers.ghl import CONTACT_ID_SYSTEM, GhlPatientMapper
from tests.mapping.strategies import consenting_patients, full_date, patients
from tests.mapping.synthea import synthea_patients

MAPPER = GhlPatientMapper()
SYNTHEA = synthea_patients()
# UpdateContactDto's properties (docs/vendors/gohighlevel/apps/contacts.json) plus gender, which
# CreateContactDto and UpsertContactDto accept.
WRITE_FIELDS = {
    "firstName", "lastName", "name", "email", "phone", "address1", "city", "state", "postalCode", "website",
    "timezone", "dnd", "dndSettings", "inboundDndSettings", "tags", "customFields", "source", "dateOfBirth",
    "country", "assignedTo", "gender",
}  # fmt: skip

CONTACT = {
    "id": "seD4PfOuKoVMLkEZqohJ",
    "locationId": "ve9EPM428h8vShlRW1KT",
    "firstName": "rubika",
    "lastName": "Deo",
    "name": "rubika deo",
    "email": "rubika@deos.com",
    "phone": "+18832327657",
    "dateOfBirth": "1990-09-25",
    "gender": "female",
    "address1": "3535 1st St N",
    "city": "Dolomite",
    "state": "AL",
    "postalCode": "35061",
    "country": "US",
    "tags": ["vip"],
    "dateAdded": "2021-07-02T05:18:26.704Z",
}


def _errors(call, record: dict) -> list[tuple[str, str, str]]:  # noqa: ANN001
    with pytest.raises(RecordInvalid) as invalid:
        call(record)
    return [(e.field, e.reason, e.message) for e in invalid.value.errors]


def test_contact_to_patient() -> None:
    result = MAPPER.to_hub(CONTACT)
    assert result.external_id == "seD4PfOuKoVMLkEZqohJ"
    assert result.resource == {
        "resourceType": "Patient",
        "identifier": [{"system": CONTACT_ID_SYSTEM, "value": "seD4PfOuKoVMLkEZqohJ"}],
        "name": [{"use": "official", "family": "Deo", "given": ["rubika"]}],
        "telecom": [{"system": "phone", "value": "+18832327657", "use": "mobile"}, {"system": "email", "value": "rubika@deos.com"}],
        "gender": "female",
        "birthDate": "1990-09-25",
        "address": [{"line": ["3535 1st St N"], "city": "Dolomite", "state": "AL", "postalCode": "35061", "country": "US"}],
    }  # fmt: skip
    assert parse_patient(result.resource) == result.resource


def test_webhook_shape_with_iso_birth_date_non_ascii_names_and_no_id() -> None:
    webhook = {
        "type": "ContactCreate",
        "locationId": "loc1",
        "firstName": "José María",
        "lastName": "Núñez-Ødegård",
        "dateOfBirth": "2000-01-05T00:00:00.000Z",
        "phone": "(617) 555-0134",
        "email": "  Jose@Example.COM ",
        "gender": "Male",
        "country": "es",
        "city": "",
        "customFields": [{"id": "x", "value": "y"}],
    }
    result = MAPPER.to_hub(webhook)
    assert result.external_id == ""
    assert "identifier" not in result.resource
    fields = project(result.resource)
    assert fields["given_name"] == "José María"
    assert fields["family_name"] == "Núñez-Ødegård"
    assert fields["birth_date"] == "2000-01-05"
    assert fields["phone"] == "+16175550134"
    assert fields["email"] == "jose@example.com"
    assert fields["gender"] == "male"
    assert fields["country"] == "ES"
    assert fields["city"] is None
    assert MAPPER.to_vendor(result.resource)["firstName"] == "José María"


def test_contact_with_only_a_full_name() -> None:
    fields = project(MAPPER.to_hub({"id": "c1", "name": "Ana de la Cruz", "email": "ana@example.com"}).resource)
    assert (fields["given_name"], fields["family_name"]) == ("Ana", "de la Cruz")


def test_bad_contact_fields_are_named_without_their_values() -> None:
    bad = {
        **CONTACT,
        "dateOfBirth": "25/09/1990",
        "email": "rubika at deos",
        "phone": "call me maybe",
        "gender": "f",
        "city": 12,
    }
    errors = _errors(MAPPER.to_hub, bad)
    assert {(field, reason) for field, reason, _ in errors} == {
        ("dateOfBirth", "INVALID_DATE"),
        ("email", "INVALID_EMAIL"),
        ("phone", "INVALID_PHONE"),
        ("gender", "INVALID_GENDER"),
        ("city", "INVALID_TYPE"),
    }
    for _, _, message in errors:
        for value in ("25/09/1990", "rubika", "call me", "deos"):
            assert value not in message
    with pytest.raises(RecordInvalid) as invalid:
        MAPPER.to_hub(bad)
    assert invalid.value.external_id == CONTACT["id"]


def test_contact_without_any_name() -> None:
    errors = _errors(MAPPER.to_hub, {"id": "c1", "email": "ana@example.com", "firstName": " "})
    assert errors[0][:2] == ("firstName", "MISSING_NAME")


def test_patient_to_contact_write_shape() -> None:
    patient = MAPPER.to_hub(CONTACT).resource
    contact = MAPPER.to_vendor(patient)
    assert contact == {
        "firstName": "rubika",
        "lastName": "Deo",
        "email": "rubika@deos.com",
        "phone": "+18832327657",
        "dateOfBirth": "1990-09-25",
        "gender": "female",
        "address1": "3535 1st St N",
        "city": "Dolomite",
        "state": "AL",
        "postalCode": "35061",
        "country": "US",
    }


def test_every_synthea_patient_maps_to_ghl_and_back() -> None:
    for resource in SYNTHEA:
        contact = MAPPER.to_vendor(resource)
        assert set(contact) <= WRITE_FIELDS
        assert "locationId" not in contact and "id" not in contact
        assert project(MAPPER.to_hub(contact).resource) == {**project(parse_patient(resource))}


def test_maiden_name_is_not_sent() -> None:
    married = next(p for p in SYNTHEA if any(n.get("use") == "maiden" for n in p["name"]))
    official = next(n for n in married["name"] if n["use"] == "official")
    contact = MAPPER.to_vendor(married)
    assert (contact["firstName"], contact["lastName"]) == (" ".join(official["given"]), official["family"])


def test_deceased_patient_maps_with_do_not_disturb() -> None:
    deceased = next(p for p in SYNTHEA if "deceasedDateTime" in p)
    contact = MAPPER.to_vendor(deceased)
    assert contact["dnd"] is True
    assert contact["lastName"] == project(parse_patient(deceased))["family_name"]
    assert "dnd" not in MAPPER.to_vendor({k: v for k, v in deceased.items() if k != "deceasedDateTime"})
    assert MAPPER.to_vendor({"resourceType": "Patient", "name": [{"family": "X"}], "deceasedBoolean": True})["dnd"]


def test_what_ghl_cannot_carry_is_omitted() -> None:
    patient = {
        "resourceType": "Patient",
        "id": "p1",
        "identifier": [{"system": CONTACT_ID_SYSTEM, "value": "c1"}],
        "name": [{"use": "official", "family": "Smith", "given": ["Ann"], "prefix": ["Dr."]}],
        "gender": "unknown",
        "birthDate": "1980",
        "address": [{"city": "Boston", "country": "United States"}],
    }
    assert MAPPER.to_vendor(patient) == {"firstName": "Ann", "lastName": "Smith", "city": "Boston", "country": "US"}


def test_bad_patients_name_the_fhir_path_without_the_value() -> None:
    base = {"resourceType": "Patient", "name": [{"use": "official", "family": "Smith"}]}
    cases = [
        ({**base, "birthDate": "1980-02-31"}, "birthDate", "INVALID_FHIR_RESOURCE", "1980-02-31"),
        (
            {**base, "telecom": [{"system": "email", "value": "a@b.co"}, {"system": "phone", "value": "ask at desk"}]},
            "telecom[1].value",
            "INVALID_PHONE",
            "ask at desk",
        ),
        (
            {**base, "telecom": [{"system": "email", "value": "smith at home"}]},
            "telecom[0].value",
            "INVALID_EMAIL",
            "smith",
        ),
        ({**base, "address": [{"country": "Narnia"}]}, "address[0].country", "INVALID_COUNTRY", "Narnia"),
        ({"resourceType": "Patient", "name": [{"use": "maiden", "family": "Jones"}]}, "name", "MISSING_NAME", "Jones"),
        ({"resourceType": "Observation"}, "resourceType", "INVALID_FHIR_RESOURCE", "Observation"),
    ]
    for patient, field, reason, value in cases:
        [(got_field, got_reason, message)] = _errors(MAPPER.to_vendor, patient)
        assert (got_field, got_reason) == (field, reason)
        assert value not in message


@settings(max_examples=200, deadline=None)
@given(patient=patients(birth_date=full_date))
def test_hub_ghl_hub_round_trip_keeps_what_ghl_carries(patient: dict) -> None:
    fields = project(parse_patient(patient))
    if fields["given_name"] is None and fields["family_name"] is None:
        assert _errors(MAPPER.to_vendor, patient)[0][1] == "MISSING_NAME"
        return
    contact = MAPPER.to_vendor(patient)
    assert set(contact) <= WRITE_FIELDS
    expected = {**fields, "gender": None if fields["gender"] == "unknown" else fields["gender"]}
    assert project(MAPPER.to_hub(contact).resource) == expected


# --- marketing consent <-> dndSettings ------------------------------------------------------------


def _consenting(email: str | None, sms: str | None) -> dict:
    patient = {"resourceType": "Patient", "name": [{"use": "official", "family": "Okafor"}]}
    return apply(patient, {"email_marketing_consent": email, "sms_marketing_consent": sms})


def _consent(resource: dict) -> dict:
    return {k: v for k, v in project(resource).items() if k in CONSENT_FIELDS}


def test_hub_consent_goes_to_ghl_as_dnd_per_channel() -> None:
    both = MAPPER.to_vendor(_consenting("permit", "deny"))
    assert both["dndSettings"] == {"Email": {"status": "inactive"}, "SMS": {"status": "active"}}
    # A channel without a consent is not sent: GHL keeps its own setting for it.
    assert MAPPER.to_vendor(_consenting(None, "permit"))["dndSettings"] == {"SMS": {"status": "inactive"}}
    assert "dndSettings" not in MAPPER.to_vendor(_consenting(None, None))


def test_ghl_dnd_on_reads_as_the_consent_denied_and_dnd_off_as_no_consent() -> None:
    contact = {
        **CONTACT,
        "dnd": True,
        "dndSettings": {"Email": {"status": "permanent", "code": "103"}, "SMS": {"status": "inactive"}},
    }
    assert _consent(MAPPER.to_hub(contact).resource) == {"email_marketing_consent": "deny"}
    sms_only = {
        **CONTACT,
        "dndSettings": {"SMS": {"status": "active", "message": "STOP"}, "Call": {"status": "active"}},
    }
    assert _consent(MAPPER.to_hub(sms_only).resource) == {"sms_marketing_consent": "deny"}
    # GHL's default (every channel inactive), the all-channels flag, or junk: no consent either way.
    for dnd in ({"dndSettings": {"Email": {"status": "inactive"}}}, {"dnd": True}, {"dndSettings": "junk"}):
        assert _consent(MAPPER.to_hub({**CONTACT, **dnd}).resource) == {}


def test_a_denied_consent_round_trips_and_a_permit_reads_back_as_nothing_recorded() -> None:
    for email, sms in (("deny", "deny"), ("deny", None), ("permit", "deny"), ("permit", "permit")):
        back = _consent(MAPPER.to_hub(MAPPER.to_vendor(_consenting(email, sms))).resource)
        assert back == {f: d for f, d in zip(CONSENT_FIELDS, (email, sms), strict=True) if d == "deny"}


@settings(max_examples=100, deadline=None)
@given(patient=consenting_patients(birth_date=full_date))
def test_consent_never_changes_what_else_goes_to_ghl(patient: dict) -> None:
    fields = project(parse_patient(patient))
    if fields["given_name"] is None and fields["family_name"] is None:
        return
    without = apply(patient, dict.fromkeys(CONSENT_FIELDS))
    contact = MAPPER.to_vendor(patient)
    assert {k: v for k, v in contact.items() if k != "dndSettings"} == MAPPER.to_vendor(without)
    assert set(contact) <= WRITE_FIELDS
