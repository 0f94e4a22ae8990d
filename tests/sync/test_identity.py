"""Blind indexes and the identity decision (libs/blind_index.py): equal identities index alike
whatever their spelling, the digests say nothing without the practice's key, and the verdict follows
its rules whichever record is compared with which."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from libs.blind_index import KINDS, MATCH, NO_MATCH, POSSIBLE, BlindIndexer, decide, index_values

INDEXER = BlindIndexer(b"\x01" * 32)
ANN = {
    "given_name": "Ann Marie",
    "family_name": "O'Neil",
    "birth_date": "1980-02-29",
    "email": "ann.oneil@example.com",
    "phone": "+16175550100",
    "postal_code": "02110",
}


def test_spelling_case_accents_and_spacing_do_not_change_an_index() -> None:
    same = {
        **ANN,
        "given_name": "ANN",
        "family_name": "  o neil ".replace(" n", "n"),
        "email": "Ann.ONeil@Example.com ",
    }
    accented = {**ANN, "family_name": "Ó'Néil"}
    assert INDEXER.digests("p1", same) == INDEXER.digests("p1", ANN)
    assert INDEXER.digests("p1", accented)["family_birth"] == INDEXER.digests("p1", ANN)["family_birth"]


def test_digests_hold_no_plaintext_and_another_practice_or_key_never_matches() -> None:
    digests = INDEXER.digests("p1", ANN)
    assert set(digests) == set(KINDS)
    text = " ".join(digests.values())
    for value in ANN.values():
        assert value.lower() not in text
    assert not set(digests.values()) & set(INDEXER.digests("p2", ANN).values())
    assert not set(digests.values()) & set(BlindIndexer(b"\x02" * 32).digests("p1", ANN).values())
    # Kinds are keyed apart: an email and a phone never share a digest, whatever their text.
    assert INDEXER.digests("p1", {"email": "x"})["email"] != INDEXER.digests("p1", {"phone": "x"})["phone"]


def test_a_kind_is_indexed_only_when_all_its_fields_are_present() -> None:
    assert set(index_values({"family_name": "Okafor"})) == set()
    assert set(index_values({"family_name": "Okafor", "birth_date": "1975-01-02"})) == {"family_birth", "birth"}


def test_the_rules() -> None:
    def verdict(other: dict) -> str:
        return decide(INDEXER.digests("p1", other), INDEXER.digests("p1", ANN))[0]

    assert verdict({**ANN, "given_name": "Ann", "email": "new@example.com", "phone": "+16175550199"}) == MATCH
    assert verdict({"given_name": "ann", "family_name": "ONeil", "phone": "+16175550100"}) == MATCH  # name + phone
    # A family member: the household's phone and email, another given name and birth date.
    sibling = {**ANN, "given_name": "Bo", "birth_date": "2012-06-01"}
    verdict_sibling, why = decide(INDEXER.digests("p1", sibling), INDEXER.digests("p1", ANN))
    assert verdict_sibling == POSSIBLE
    assert {"email", "phone", "name_differs", "birth_differs"} <= set(why)
    assert verdict({**ANN, "birth_date": "1980-03-01"}) == POSSIBLE  # a typo in the birth date: a person decides
    assert verdict({"given_name": "Zed", "family_name": "Quill", "birth_date": "1980-02-29"}) == NO_MATCH


identities = st.fixed_dictionaries(
    {
        "given_name": st.sampled_from(["Ann", "ann marie", "Bo", None]),
        "family_name": st.sampled_from(["O'Neil", "Okafor", None]),
        "birth_date": st.sampled_from(["1980-02-29", "2012-06-01", None]),
        "email": st.sampled_from(["ann@example.com", "bo@example.org", None]),
        "phone": st.sampled_from(["+16175550100", "+16175550199", None]),
        "postal_code": st.sampled_from(["02110", "02903", None]),
    }
)


@given(identities, identities)
def test_the_verdict_does_not_depend_on_which_record_is_compared_with_which(a: dict, b: dict) -> None:
    da, db = INDEXER.digests("p1", a), INDEXER.digests("p1", b)
    assert decide(da, db)[0] == decide(db, da)[0]


@given(identities)
def test_a_record_with_a_name_and_birth_date_matches_itself(a: dict) -> None:
    digests = INDEXER.digests("p1", a)
    if "family_birth" in digests:
        assert decide(digests, dict(digests))[0] == MATCH
