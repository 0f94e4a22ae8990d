"""Properties of the field-level three-way merge, over canonical projections."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from libs import fhir_patient
from libs.fhir_patient import CANONICAL_FIELDS, CONSENT_FIELDS
from services.sync.domain import (
    CLOCK_SKEW,
    DELETE,
    HUB_WINS,
    KEEP,
    MANUAL_REVIEW,
    NEWEST_WINS,
    POLICIES,
    REVIEW,
    VENDOR_WINS,
    Clocks,
    decide_delete,
    merge,
)
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


# --- every policy, per-field overrides, newest_wins and its clock-skew guard ----------------------------

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
all_policies = st.sampled_from(POLICIES)
# Modification times around now: some far apart, some within the skew, some ahead of the hub's clock.
instants = st.none() | st.integers(min_value=-600, max_value=300).map(lambda s: NOW + timedelta(seconds=s))
clocks = st.builds(Clocks, instants, instants, st.just(NOW))
overrides = st.dictionaries(st.sampled_from(sorted(CANONICAL_FIELDS)), all_policies, max_size=4)


def settle(rule: str, clocks: Clocks) -> str:
    """What a conflict under ``rule`` does: the side that wins, or "held"."""
    if rule == NEWEST_WINS:
        ours, theirs = clocks.ours, clocks.theirs
        ahead = NOW + CLOCK_SKEW
        if ours is None or theirs is None or ours > ahead or theirs > ahead or abs(ours - theirs) <= CLOCK_SKEW:
            return "held"
        return "theirs" if theirs > ours else "ours"
    return {HUB_WINS: "ours", VENDOR_WINS: "theirs", MANUAL_REVIEW: "held"}[rule]


@given(projections, projections, projections, all_policies, overrides, clocks)
def test_every_conflict_follows_its_fields_rule_and_no_one_sided_change_is_lost(
    base: dict, ours: dict, theirs: dict, policy: str, per_field: dict, clocks: Clocks
) -> None:
    result = merge(base, ours, theirs, policy, field_policies=per_field, clocks=clocks)
    merged = {**ours, **result.changes}
    assert set(result.held) <= set(result.conflicts)
    for name in CANONICAL_FIELDS:
        b, o, t = base[name], ours[name], theirs[name]
        if o == b or t == b or o == t:  # one side changed it, or none, or both alike
            assert name not in result.conflicts
            assert merged[name] == (t if o == b else o)
            continue
        assert name in result.conflicts
        outcome = settle(per_field.get(name, policy), clocks)
        assert (name in result.held) == (outcome == "held")
        assert merged[name] == (t if outcome == "theirs" else o)  # a held field keeps the hub's value


@given(projections, projections, projections, st.integers(min_value=0, max_value=120))
def test_newest_wins_never_orders_edits_closer_than_the_skew(base: dict, ours: dict, theirs: dict, gap: int) -> None:
    both = Clocks(NOW - timedelta(minutes=5), NOW - timedelta(minutes=5) + timedelta(seconds=gap), NOW)
    result = merge(base, ours, theirs, NEWEST_WINS, clocks=both)
    assert set(result.held) == set(result.conflicts)
    assert not set(result.changes) & set(result.conflicts)


@given(projections, projections, projections)
def test_newest_wins_takes_the_later_side_and_distrusts_a_clock_running_ahead(
    base: dict, ours: dict, theirs: dict
) -> None:
    later_vendor = merge(base, ours, theirs, NEWEST_WINS, clocks=Clocks(NOW - timedelta(hours=1), NOW, NOW))
    later_hub = merge(base, ours, theirs, NEWEST_WINS, clocks=Clocks(NOW, NOW - timedelta(hours=1), NOW))
    ahead = merge(base, ours, theirs, NEWEST_WINS, clocks=Clocks(NOW, NOW + timedelta(hours=1), NOW))
    for name in later_vendor.conflicts:
        assert later_vendor.changes[name] == theirs[name] and name not in later_vendor.held
        assert name not in later_hub.changes and name not in later_hub.held
        assert name in ahead.held and name not in ahead.changes
    assert later_vendor.conflicts == later_hub.conflicts == ahead.conflicts


# A vendor's delete is the whole record's change to "gone" (domain.decide_delete).


@given(st.sampled_from(POLICIES), st.integers(min_value=-7200, max_value=7200))
def test_a_delete_nobody_contradicted_is_taken_under_every_policy(policy: str, gap: int) -> None:
    now = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    clocks = Clocks(now + timedelta(seconds=gap), now, now)
    assert decide_delete(policy, hub_changed=False, clocks=clocks) == DELETE


@given(st.integers(min_value=0, max_value=7200))
def test_a_delete_against_a_hub_edit_follows_the_policy(seconds_ago: int) -> None:
    now = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    clocks = Clocks(now - timedelta(seconds=seconds_ago), now, now)
    assert decide_delete(HUB_WINS, hub_changed=True, clocks=clocks) == KEEP
    assert decide_delete(VENDOR_WINS, hub_changed=True, clocks=clocks) == DELETE
    assert decide_delete(MANUAL_REVIEW, hub_changed=True, clocks=clocks) == REVIEW
    # newest_wins: the delete (now) is later than the hub edit only beyond the skew guard.
    newest = decide_delete(NEWEST_WINS, hub_changed=True, clocks=clocks)
    assert newest == (DELETE if timedelta(seconds=seconds_ago) > CLOCK_SKEW else REVIEW)
    assert decide_delete(NEWEST_WINS, hub_changed=True, clocks=None) == REVIEW
