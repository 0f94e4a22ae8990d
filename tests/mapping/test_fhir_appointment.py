"""The canonical appointment: validation, projection and write-back."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from libs import fhir_appointment as fa
from libs.errors import InvalidArgument

BASE = {
    "resourceType": "Appointment",
    "status": "booked",
    "start": "2026-12-01T10:00:00-05:00",
    "end": "2026-12-01T10:30:00-05:00",
    "serviceType": [{"coding": [{"code": "facial"}], "text": "Hydrating facial"}],
    "participant": [
        {"actor": {"reference": "Patient/p1"}, "status": "accepted"},
        {"actor": {"display": "Dr. Ada"}, "status": "accepted"},
    ],
    "comment": "kept as is",
}


def test_projection_normalises_instants_and_reads_the_patient() -> None:
    view = fa.project(fa.parse_appointment(BASE))
    assert view == {
        "status": "booked",
        "start": "2026-12-01T15:00:00Z",
        "end": "2026-12-01T15:30:00Z",
        "service_code": "facial",
        "service_name": "Hydrating facial",
        "patient": "Patient/p1",
        "description": None,
    }


def test_vendor_references_are_logical_until_sync_resolves_them() -> None:
    external = fa.set_patient_reference(BASE, "external:c-42")
    assert fa.patient_reference(external) == "external:c-42"
    assert fa.patient_participant(external)["actor"]["identifier"]["system"] == fa.EXTERNAL_ID_SYSTEM
    assert fa.patient_reference(fa.set_patient_reference(external, "Patient/p9")) == "Patient/p9"
    assert fa.parse_appointment(external)  # a logical reference is valid FHIR


@given(
    status=st.sampled_from(fa.STATUSES),
    hour=st.integers(min_value=0, max_value=22),
    code=st.sampled_from(["facial", "botox", "consult"]),
    description=st.one_of(st.none(), st.text(st.characters(categories=["L", "N"]), min_size=1, max_size=20)),
)
def test_apply_then_project_gives_the_changes_and_keeps_the_rest(
    status: str, hour: int, code: str, description: str | None
) -> None:
    changes = {
        "status": status,
        "start": f"2026-12-02T{hour:02d}:00:00Z",
        "end": f"2026-12-02T{hour + 1:02d}:00:00Z",
        "service_code": code,
        "description": description,
    }
    result = fa.apply(fa.parse_appointment(BASE), changes)
    assert fa.project(result) == {**fa.project(fa.parse_appointment(BASE)), **changes}
    assert result["comment"] == "kept as is"
    assert fa.parse_appointment(result)


@pytest.mark.parametrize(
    ("resource", "field"),
    [
        ({**BASE, "status": "maybe"}, "status"),
        ({**BASE, "start": "not-a-time"}, "start"),
        ({**BASE, "resourceType": "Patient"}, "resourceType"),
    ],
)
def test_invalid_appointments_name_the_field_without_the_value(resource: dict, field: str) -> None:
    with pytest.raises(InvalidArgument) as error:
        fa.parse_appointment(resource)
    assert error.value.field == field
    assert "not-a-time" not in error.value.message and "maybe" not in error.value.message
