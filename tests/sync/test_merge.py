"""Properties of the field-level three-way merge, over canonical projections."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from libs import fhir_patient
from libs.fhir_patient import CANONICAL_FIELDS, CONSENT_FIELDS
from services.sync.domain import HUB_WINS, VENDOR_WINS, merge
from services.sync.entities import ENTITIES, PATIENT

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


# A revoked marketing consent prevails: the patient entity's merge rule (services/sync/entities.py).
PREVAILING = ENTITIES[PATIENT].prevailing
consents = st.fixed_dictionaries({field: st.none() | st.sampled_from(["permit", "deny"]) for field in CONSENT_FIELDS})


@given(consents, consents, consents, policies)
def test_a_revoked_consent_wins_any_conflict_whatever_the_policy(
    base: dict, ours: dict, theirs: dict, policy: str
) -> None:
    result = merge(base, ours, theirs, policy, PREVAILING)
    merged = {**ours, **result.changes}
    for name in CONSENT_FIELDS:
        b, o, t = base[name], ours[name], theirs[name]
        if o != b and t != b and o != t:
            assert name in result.conflicts
            if "deny" in (o, t):
                assert merged[name] == "deny"
            else:
                assert merged[name] == (t if policy == VENDOR_WINS else o)
        else:
            assert merged[name] == expected_one(b, o, t)


def expected_one(b: object, o: object, t: object) -> object:
    """No conflict: the side that changed it (the vendor's when the hub did not)."""
    return t if o == b else o


@given(projections, projections, projections, policies)
def test_the_prevailing_rule_leaves_the_canonical_fields_alone(
    base: dict, ours: dict, theirs: dict, policy: str
) -> None:
    assert merge(base, ours, theirs, policy, PREVAILING) == merge(base, ours, theirs, policy)
