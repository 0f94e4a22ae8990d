"""libs/minimum_necessary.py: what of a hub record may leave for a vendor."""

from __future__ import annotations

from datetime import date

import pytest

from libs import fhir_appointment, fhir_patient, minimum_necessary
from libs.errors import InvalidArgument
from libs.minimum_necessary import APPOINTMENT, PATIENT, SERVICE, Policy, policy_for, restrict

PATIENT_RESOURCE = {
    "resourceType": "Patient",
    "id": "hub-1",
    "name": [{"use": "official", "given": ["Ann"], "family": "Lee"}, {"use": "maiden", "family": "Old"}],
    "birthDate": "1980-01-02",
    "gender": "female",
    "telecom": [{"system": "email", "value": "ann@example.org"}, {"system": "phone", "value": "+14155550100"}],
    "address": [{"line": ["1 Main St"], "city": "Sausalito", "postalCode": "94965"}],
    "identifier": [{"system": "urn:ssn", "value": "123-45-6789"}],
}
APPOINTMENT_RESOURCE = {
    "resourceType": "Appointment",
    "id": "a-1",
    "status": "booked",
    "start": "2030-01-01T10:00:00Z",
    "end": "2030-01-01T11:00:00Z",
    "description": "knee review",
    "participant": [{"actor": {"reference": "Patient/hub-1"}, "status": "accepted"}],
}


def test_nothing_restricts_a_vendor_with_a_baa_and_no_list() -> None:
    cut = restrict(PATIENT, PATIENT_RESOURCE, Policy())
    assert cut.resource is PATIENT_RESOURCE and not cut.restricted and cut.withheld == ()


def test_without_a_baa_a_patient_is_withheld_whole_by_field_name() -> None:
    cut = restrict(PATIENT, PATIENT_RESOURCE, Policy(phi_permitted=False))
    assert cut.resource is None and cut.restricted
    assert set(cut.withheld) >= {"given_name", "family_name", "email", "phone", "birth_date", "postal_code"}
    assert not any("@" in name or name[0].isdigit() for name in cut.withheld)


def test_an_allow_list_sends_only_its_fields_and_nothing_outside_the_projection() -> None:
    policy = Policy(frozenset({"patient.email", "patient.given_name", "patient.family_name"}))
    cut = restrict(PATIENT, PATIENT_RESOURCE, policy)
    assert cut.resource is not None
    fhir_patient.parse_patient(cut.resource)
    present = {k for k, v in fhir_patient.project(cut.resource).items() if v is not None}
    assert present == {"email", "given_name", "family_name"} == set(cut.disclosed)
    assert "identifier" not in cut.resource and len(cut.resource["name"]) == 1  # no SSN, no maiden name
    assert set(cut.withheld) == {"birth_date", "gender", "phone", "address_line", "city", "postal_code"}


def test_a_list_leaving_a_patient_no_name_or_contact_withholds_it() -> None:
    cut = restrict(PATIENT, PATIENT_RESOURCE, Policy(frozenset({"patient.gender"})))
    assert cut.resource is None


def test_appointments_without_a_baa_are_withheld_and_services_go() -> None:
    assert restrict(APPOINTMENT, APPOINTMENT_RESOURCE, Policy(phi_permitted=False)).resource is None
    service = {"resourceType": "HealthcareService", "id": "s-1", "name": "Facial", "comment": "60 minutes"}
    assert restrict(SERVICE, service, Policy(phi_permitted=False)).resource is service
    listed = Policy(frozenset({"appointment.status", "appointment.patient", "appointment.start"}))
    cut = restrict(APPOINTMENT, APPOINTMENT_RESOURCE, listed)
    assert cut.resource is not None and "description" not in cut.resource and "end" not in cut.resource
    fhir_appointment.parse_appointment(cut.resource)
    assert set(cut.withheld) == {"description", "end"}


def test_the_baa_is_in_effect_from_its_date() -> None:
    today = date(2024, 5, 1)
    assert not policy_for([], True, "", today).phi_permitted
    assert not policy_for([], True, "2024-05-02", today).phi_permitted
    assert policy_for([], True, "2024-05-01", today).phi_permitted
    assert policy_for([], False, "", today).phi_permitted


@pytest.mark.parametrize(
    ("names", "field", "reason"),
    [
        (["patient.ssn"], "field_allow_list[0]", "UNKNOWN_HUB_FIELD"),
        (["patient.email", "patient.email"], "field_allow_list[1]", "DUPLICATE_FIELD"),
        (["appointment.start", "appointment.status"], "field_allow_list", "FHIR_FIELD_REQUIRED"),
    ],
)
def test_allow_lists_are_validated(names: list[str], field: str, reason: str) -> None:
    with pytest.raises(InvalidArgument) as error:
        minimum_necessary.validate_allow_list(names)
    assert (error.value.field, error.value.reason) == (field, reason)
