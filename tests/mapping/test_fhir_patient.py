"""libs.fhir_patient: validation, the canonical projection and writing it back."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from libs.errors import InvalidArgument
from libs.fhir_patient import (
    CANONICAL_FIELDS,
    CONSENT_FIELDS,
    MARKETING_CONSENT_URL,
    apply,
    locate,
    normalise_email,
    normalise_phone,
    parse_patient,
    project,
)
from tests.mapping.strategies import changes, consent_changes, consenting_patients, patients
from tests.mapping.synthea import synthea_patients

SYNTHEA = synthea_patients()


def test_all_synthea_patients_parse_and_project() -> None:
    assert len(SYNTHEA) == 60
    for resource in SYNTHEA:
        patient = parse_patient(resource)
        assert patient["id"] == resource["id"]
        fields = project(patient)
        assert set(fields) == set(CANONICAL_FIELDS)
        assert fields["family_name"] and fields["given_name"] and fields["birth_date"]
        assert fields["phone"].startswith("+1") and len(fields["phone"]) == 12
        assert fields["email"] is None
        assert fields["country"] == "US"


def test_parse_accepts_json_text_and_drops_nothing_it_understands() -> None:
    resource = SYNTHEA[0]
    assert parse_patient(json.dumps(resource)) == parse_patient(resource)
    assert parse_patient(resource)["extension"] == resource["extension"]


def test_maiden_name_is_not_the_projected_name() -> None:
    married = next(p for p in SYNTHEA if any(n.get("use") == "maiden" for n in p["name"]))
    official = next(n for n in married["name"] if n["use"] == "official")
    maiden = next(n for n in married["name"] if n["use"] == "maiden")
    assert official["family"] != maiden["family"]
    assert project(parse_patient(married))["family_name"] == official["family"]
    only_maiden = {"resourceType": "Patient", "name": [maiden]}
    assert project(only_maiden)["family_name"] is None


@pytest.mark.parametrize(
    ("resource", "field"),
    [
        ({"resourceType": "Patient", "birthDate": "1990-13-45"}, "birthDate"),
        ({"resourceType": "Patient", "birthDate": "1990-02-30"}, "birthDate"),
        ({"resourceType": "Patient", "telecom": [{"system": "bogus", "value": "555-000-1111"}]}, "telecom[0].system"),
        ({"resourceType": "Patient", "telecom": [{"system": "phone", "value": 5551234}]}, "telecom[0].value"),
        ({"resourceType": "Patient", "name": [{"given": [""]}]}, "name[0].given[0]"),
        ({"resourceType": "Patient", "gender": "m"}, "gender"),
        ({"resourceType": "Patient", "nickname": "Sam"}, "nickname"),
        ({"resourceType": "Observation"}, "resourceType"),
        ({"name": []}, "resourceType"),
    ],
)
def test_invalid_resources_name_the_fhir_path(resource: dict, field: str) -> None:
    with pytest.raises(InvalidArgument) as error:
        parse_patient(resource)
    assert error.value.field == field
    assert error.value.reason == "INVALID_FHIR_RESOURCE"
    for value in ("1990-13-45", "1990-02-30", "bogus", "555-000-1111", "5551234", "Sam"):
        assert value not in error.value.message


def test_non_json_is_an_invalid_resource() -> None:
    with pytest.raises(InvalidArgument) as error:
        parse_patient("{not json")
    assert error.value.reason == "INVALID_FHIR_RESOURCE"


def test_normalise_phone() -> None:
    assert normalise_phone("555-871-8805") == "+15558718805"
    assert normalise_phone("(888) 888-8888") == "+18888888888"
    assert normalise_phone("+44 20 7946 0958") == "+442079460958"
    assert normalise_phone("020 7946 0958", region="GB") == "+442079460958"
    for bad in ("call me maybe", "12", ""):
        with pytest.raises(InvalidArgument) as error:
            normalise_phone(bad, field="telecom[0].value")
        assert (error.value.reason, error.value.field) == ("INVALID_PHONE", "telecom[0].value")
        assert not bad or bad not in error.value.message


def test_normalise_email() -> None:
    assert normalise_email(" Ana@Example.COM ") == "ana@example.com"
    for bad in ("ana", "ana@example", "a b@example.com", "@example.com"):
        with pytest.raises(InvalidArgument) as error:
            normalise_email(bad)
        assert error.value.reason == "INVALID_EMAIL"


def test_project_reads_first_phone_and_email_and_keeps_an_unparseable_phone_as_stored() -> None:
    patient = {
        "resourceType": "Patient",
        "telecom": [
            {"system": "fax", "value": "555-000-0000"},
            {"system": "email", "value": "Ana@Example.com"},
            {"system": "phone", "value": "ask at desk"},
            {"system": "phone", "value": "555-111-2222"},
        ],
    }
    fields = project(patient)
    assert fields["email"] == "ana@example.com"
    assert fields["phone"] == "ask at desk"
    assert locate(patient)["phone"] == "telecom[2].value"
    assert locate(patient)["email"] == "telecom[1].value"


def test_apply_keeps_what_it_does_not_cover() -> None:
    patient = parse_patient(next(p for p in SYNTHEA if "deceasedDateTime" in p))
    changed = apply(
        patient, {"family_name": "Ørsted", "phone": "(617) 555-0199", "email": "New@Example.org", "city": "Boston"}
    )
    assert project(changed) == {
        **project(patient),
        "family_name": "Ørsted",
        "phone": "+16175550199",
        "email": "new@example.org",
        "city": "Boston",
    }
    for key in ("identifier", "extension", "deceasedDateTime", "maritalStatus", "communication", "text"):
        assert changed.get(key) == patient.get(key)
    assert changed["address"][0]["extension"] == patient["address"][0]["extension"]
    assert changed["telecom"][0]["use"] == "home"
    assert patient["telecom"][0]["value"] != "+16175550199"  # the input is not modified
    parse_patient(changed)


def test_apply_rejects_bad_values_and_unknown_fields() -> None:
    cases = [
        ({"birth_date": "05/01/2000"}, "birth_date", "INVALID_DATE"),
        ({"gender": "f"}, "gender", "INVALID_GENDER"),
        ({"phone": "nope"}, "phone", "INVALID_PHONE"),
        ({"email": "nope"}, "email", "INVALID_EMAIL"),
        ({"ssn": "999"}, "ssn", "UNKNOWN_FIELD"),
    ]
    for change, field, reason in cases:
        with pytest.raises(InvalidArgument) as error:
            apply({"resourceType": "Patient"}, change)
        assert (error.value.field, error.value.reason) == (field, reason)


@settings(max_examples=300, deadline=None)
@given(patient=patients(), change=changes)
def test_project_of_apply_is_the_projection_with_the_changes(patient: dict, change: dict) -> None:
    patient = parse_patient(patient)
    changed = apply(patient, change)
    assert project(changed) == {**project(patient), **change}
    assert parse_patient(changed) == changed
    for key in ("identifier", "extension", "deceasedBoolean", "deceasedDateTime"):
        assert changed.get(key) == patient.get(key)
    others = [n for n in patient.get("name", []) if n.get("use") in ("maiden", "nickname", "old")]
    assert others == [n for n in changed.get("name", []) if n.get("use") in ("maiden", "nickname", "old")]
    faxes = [t for t in patient.get("telecom", []) if t["system"] == "fax"]
    assert faxes == [t for t in changed.get("telecom", []) if t["system"] == "fax"]


@settings(max_examples=100, deadline=None)
@given(patient=patients())
def test_apply_of_the_own_projection_changes_nothing(patient: dict) -> None:
    patient = parse_patient(patient)
    assert apply(patient, project(patient)) == patient


@given(st.sampled_from(SYNTHEA))
def test_synthea_projection_round_trips_through_apply_on_an_empty_patient(resource: dict) -> None:
    fields = project(parse_patient(resource))
    assert project(apply({"resourceType": "Patient"}, fields)) == fields


# --- marketing consent: a Patient extension per channel -------------------------------------------

CONSENTED = {
    "resourceType": "Patient",
    "extension": [
        {"url": "http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName", "valueString": "X"},
        {
            "url": MARKETING_CONSENT_URL,
            "extension": [{"url": "channel", "valueCode": "sms"}, {"url": "decision", "valueCode": "deny"}],
        },
    ],
}


def test_consent_is_projected_only_where_recorded() -> None:
    assert project(parse_patient(CONSENTED))["sms_marketing_consent"] == "deny"
    assert "email_marketing_consent" not in project(parse_patient(CONSENTED))
    assert not set(project(SYNTHEA[0])) - set(CANONICAL_FIELDS)  # a patient without one projects as before
    assert locate(CONSENTED)["sms_marketing_consent"] == "extension[1]"


def test_apply_sets_replaces_and_removes_a_channels_consent_and_keeps_other_extensions() -> None:
    granted = apply(CONSENTED, {"email_marketing_consent": "permit", "sms_marketing_consent": "permit"})
    assert parse_patient(granted) == granted
    assert {k: v for k, v in project(granted).items() if k in CONSENT_FIELDS} == {
        "email_marketing_consent": "permit",
        "sms_marketing_consent": "permit",
    }
    assert granted["extension"][0] == CONSENTED["extension"][0]
    assert len(granted["extension"]) == 3  # the sms one replaced in place, the email one added
    cleared = apply(granted, {"email_marketing_consent": None, "sms_marketing_consent": None})
    assert cleared["extension"] == CONSENTED["extension"][:1]
    assert "extension" not in apply(
        {"resourceType": "Patient", "extension": CONSENTED["extension"][1:]}, {"sms_marketing_consent": None}
    )
    with pytest.raises(InvalidArgument) as error:
        apply(CONSENTED, {"email_marketing_consent": "opted-in"})
    assert (error.value.field, error.value.reason) == ("email_marketing_consent", "INVALID_CONSENT")
    assert "opted-in" not in error.value.message


@pytest.mark.parametrize(
    "parts",
    [
        [{"url": "channel", "valueCode": "fax"}, {"url": "decision", "valueCode": "permit"}],
        [{"url": "channel", "valueCode": "email"}, {"url": "decision", "valueCode": "maybe"}],
        [{"url": "channel", "valueCode": "email"}],
        [
            {"url": "channel", "valueCode": "email"},
            {"url": "decision", "valueCode": "deny"},
            {"url": "by", "valueCode": "x"},
        ],
    ],
)
def test_a_malformed_consent_extension_is_refused_naming_it(parts: list[dict]) -> None:
    resource = {"resourceType": "Patient", "extension": [{"url": MARKETING_CONSENT_URL, "extension": parts}]}
    with pytest.raises(InvalidArgument) as error:
        parse_patient(resource)
    assert (error.value.field, error.value.reason) == ("extension[0]", "INVALID_FHIR_RESOURCE")
    for value in ("fax", "maybe"):
        assert value not in error.value.message


def test_one_consent_per_channel() -> None:
    twice = {"resourceType": "Patient", "extension": [CONSENTED["extension"][1]] * 2}
    with pytest.raises(InvalidArgument) as error:
        parse_patient(twice)
    assert error.value.field == "extension[1]"


@settings(max_examples=200, deadline=None)
@given(patient=consenting_patients(), change=consent_changes)
def test_project_of_apply_holds_the_consent_changes(patient: dict, change: dict) -> None:
    patient = parse_patient(patient)
    changed = apply(patient, change)
    assert parse_patient(changed) == changed
    expected = {**project(patient), **change}
    assert project(changed) == {k: v for k, v in expected.items() if v is not None or k in CANONICAL_FIELDS}
    others = [e for e in patient.get("extension", []) if e["url"] != MARKETING_CONSENT_URL]
    assert others == [e for e in changed.get("extension", []) if e["url"] != MARKETING_CONSENT_URL]
    assert apply(changed, project(changed)) == changed
