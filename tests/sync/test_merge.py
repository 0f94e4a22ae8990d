"""Properties of the field-level three-way merge, over canonical projections."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from libs import fhir_patient
from libs.fhir_patient import CANONICAL_FIELDS
from services.sync.domain import HUB_WINS, VENDOR_WINS, merge

# Few values per field, so that sides often agree, and often differ.
VALUES = {
    "given_name": ["Ann", "Ann Marie", "Bo"],
    "family_name": ["Okafor", "Lindqvist"],
    "birth_date": ["1980-02-29", "1975", "2001-07"],
    "gender": ["female", "male", "unknown"],
    "phone": ["+16175550100", "+16175550199"],
    "email": ["ann@example.com", "bo@example.org"],
    "address_line": ["12 Main St", "9 Elm Ave, Unit 3"],
    "city": ["Boston", "Salem"],
    "state": ["MA", "RI"],
    "postal_code": ["02110", "02903"],
    "country": ["US", "CA"],
}
projections = st.fixed_dictionaries({field: st.none() | st.sampled_from(VALUES[field]) for field in CANONICAL_FIELDS})
policies = st.sampled_from([HUB_WINS, VENDOR_WINS])


def expected(base: dict, ours: dict, theirs: dict, policy: str) -> dict:
    """What each field of the hub record should hold after the merge."""
    out = {}
    for name in CANONICAL_FIELDS:
        b, o, t = base[name], ours[name], theirs[name]
        if o == b:
            out[name] = t  # only the vendor changed it (or nobody did)
        elif t == b or o == t:
            out[name] = o  # only the hub changed it, or both agree
        else:
            out[name] = t if policy == VENDOR_WINS else o
    return out


@given(projections, projections, projections, policies)
def test_each_field_follows_the_side_that_changed_it(base: dict, ours: dict, theirs: dict, policy: str) -> None:
    result = merge(base, ours, theirs, policy)
    for name in CANONICAL_FIELDS:
        b, o, t = base[name], ours[name], theirs[name]
        if o == b and t != b:
            assert result.changes[name] == t and name not in result.conflicts
        elif t == b:
            assert name not in result.changes and name not in result.conflicts
        elif o == t:
            assert name not in result.changes and name not in result.conflicts
        else:
            assert name in result.conflicts
            if policy == HUB_WINS:
                assert name not in result.changes
            else:
                assert result.changes[name] == t
    assert list(result.conflicts) == sorted(set(result.conflicts))


@given(projections, projections, projections, policies)
def test_applying_the_changes_loses_no_one_sided_change(base: dict, ours: dict, theirs: dict, policy: str) -> None:
    result = merge(base, ours, theirs, policy)
    assert {**ours, **result.changes} == expected(base, ours, theirs, policy)


@given(projections, projections, projections, policies)
def test_the_merged_fhir_patient_holds_what_the_merge_decided(
    base: dict, ours: dict, theirs: dict, policy: str
) -> None:
    # The sync path: the changes are written into the hub's FHIR Patient with fhir_patient.apply.
    hub = fhir_patient.apply({"resourceType": "Patient"}, ours)
    assert fhir_patient.project(hub) == ours
    merged = fhir_patient.apply(hub, merge(base, ours, theirs, policy).changes)
    fhir_patient.parse_patient(merged)  # still valid FHIR R4
    assert fhir_patient.project(merged) == expected(base, ours, theirs, policy)


@given(projections, policies)
def test_nothing_changed_merges_to_nothing(base: dict, policy: str) -> None:
    result = merge(base, base, base, policy)
    assert result.changes == {} and result.conflicts == ()


@given(projections, projections, policies)
def test_a_vendor_record_equal_to_the_hub_is_never_a_conflict(base: dict, ours: dict, policy: str) -> None:
    result = merge(base, ours, dict(ours), policy)
    assert result.changes == {} and result.conflicts == ()
