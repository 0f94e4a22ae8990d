"""The transformation library: each transform, its inverse, and errors that name the field."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from libs.errors import InvalidArgument
from services.mapping import transforms as t

WORD = st.text(alphabet=st.characters(categories=("Lu", "Ll")), min_size=1, max_size=12)


@given(WORD, st.lists(WORD, max_size=3))
def test_split_and_join_names_round_trip(given_name: str, family: list[str]) -> None:
    family_name = " ".join(family) or None
    assert t.split_name(t.join_name(given_name, family_name)) == (given_name, family_name)


def test_names_and_case() -> None:
    assert t.split_name("  ") == (None, None)
    assert t.join_name(None, " ") is None
    assert t.change_case("mary-ann o'neil", "title") == "Mary-ann O'neil"
    assert t.change_case("Ada", "upper") == "ADA"
    with pytest.raises(InvalidArgument) as error:
        t.change_case("Ada", "sideways", field="firstName")
    assert (error.value.field, error.value.reason) == ("firstName", "INVALID_TRANSFORM")


@given(st.integers(min_value=200, max_value=999), st.integers(min_value=0, max_value=9999))
def test_us_phones_to_e164_in_any_common_format(exchange: int, line: int) -> None:
    e164 = f"+1617{exchange:03d}{line:04d}"
    for written in (
        f"(617) {exchange:03d}-{line:04d}",
        f"617.{exchange:03d}.{line:04d}",
        e164,
        f"1 617 {exchange:03d} {line:04d}",
    ):
        assert t.phone_e164(written) == e164
    assert t.phone_e164(t.phone_national(e164)) == e164


def test_phone_regions_and_errors() -> None:
    assert t.phone_e164("020 7946 0958", "gb") == "+442079460958"
    with pytest.raises(InvalidArgument) as error:
        t.phone_e164("12", field="personal_info.mobile_phone.number")
    assert (error.value.field, error.value.reason) == ("personal_info.mobile_phone.number", "INVALID_PHONE")
    assert "12" not in error.value.message


@given(st.dates(min_value=date(1000, 1, 1)))
def test_dates_round_trip_through_a_vendor_format(day) -> None:  # noqa: ANN001
    for fmt in ("%Y-%m-%d", "%m/%d/%Y", "%d.%m.%Y"):
        assert t.parse_date(t.format_date(day.isoformat(), fmt), fmt) == day.isoformat()


def test_dates_and_zones() -> None:
    assert t.parse_date("2000-01-05T00:00:00.000Z") == "2000-01-05"
    assert t.to_zone("2026-03-08T06:30:00Z", "America/New_York") == "2026-03-08T01:30:00-05:00"
    assert t.to_zone("2026-03-08T12:00:00Z", "America/New_York") == "2026-03-08T08:00:00-04:00"  # after the DST switch
    assert t.to_zone("2026-07-01T09:00:00", "UTC", naive_zone="Europe/Berlin") == "2026-07-01T07:00:00+00:00"
    with pytest.raises(InvalidArgument) as error:
        t.parse_date("31/31/2000", "%d/%m/%Y", field="dob")
    assert (error.value.field, error.value.reason) == ("dob", "INVALID_DATE")
    with pytest.raises(InvalidArgument) as error:
        t.to_zone("2026-01-01T00:00:00Z", "Mars/Olympus", field="start")
    assert (error.value.field, error.value.reason) == ("start", "INVALID_TRANSFORM")


@given(st.sampled_from(t.FHIR_GENDERS))
def test_genders_round_trip(gender: str) -> None:
    assert t.gender_to_hub(t.gender_to_vendor(gender)) == gender
    codes = {"male": "1", "female": "0"}
    code = t.gender_to_vendor(gender, codes)
    assert code is None or t.gender_to_hub(code, codes) == gender


def test_gender_errors() -> None:
    assert t.gender_to_hub(" f ") == "female"
    with pytest.raises(InvalidArgument) as error:
        t.gender_to_hub("X", field="gender")
    assert error.value.reason == "INVALID_GENDER"
    with pytest.raises(InvalidArgument):
        t.gender_to_vendor("robot")


@given(st.sampled_from(sorted(t.US_STATES)))
def test_us_states_by_code_or_name(code: str) -> None:
    assert t.us_state_code(t.US_STATES[code].upper()) == code
    assert t.us_state_code(code.lower()) == code
    assert t.us_state_name(code) == t.US_STATES[code]


def test_addresses() -> None:
    with pytest.raises(InvalidArgument) as error:
        t.us_state_code("Atlantis", field="address_info.state")
    assert (error.value.field, error.value.reason) == ("address_info.state", "INVALID_STATE")
    assert t.country_code("United States") == "US" and t.country_code("gb") == "GB"
    with pytest.raises(InvalidArgument):
        t.country_code("Britain")
    assert t.postal_code(" 021391234 ") == "02139-1234" and t.postal_code("sw1a 1aa") == "SW1A 1AA"


@given(st.dictionaries(WORD, WORD, min_size=1, max_size=6).filter(lambda d: len(set(d.values())) == len(d)))
def test_enumerations_round_trip(values: dict[str, str]) -> None:
    for hub in values:
        assert t.enum_to_hub(t.enum_to_vendor(hub, values), values) == hub


def test_enumeration_errors_and_defaults() -> None:
    assert t.enum_to_vendor("x", {"a": "A"}, "Other") == "Other"
    with pytest.raises(InvalidArgument) as error:
        t.enum_to_hub("Z", {"a": "A"}, field="status")
    assert (error.value.field, error.value.reason) == ("status", "UNMAPPED_VALUE")


def test_custom_and_dotted_fields() -> None:
    record: dict = {"customFields": [{"id": "keep", "value": "1"}]}
    t.write_field(record, "customFields[contact.insurance_id]", "INS-1")
    t.write_field(record, "customFields[AbC123]", "v")
    assert record["customFields"] == [
        {"id": "keep", "value": "1"},
        {"key": "contact.insurance_id", "field_value": "INS-1"},
        {"id": "AbC123", "field_value": "v"},
    ]
    assert t.read_field({"customFields": [{"id": "AbC123", "value": "v"}]}, "customFields[AbC123]") == "v"
    assert t.read_field(record, "customFields[insurance_id]") is None
    assert t.read_field(record, "customFields[contact.insurance_id]") == "INS-1"
    t.write_field(record, "customFields[AbC123]", None)
    assert {"id": "AbC123", "field_value": "v"} not in record["customFields"]
    nested: dict = {}
    t.write_field(nested, "personal_info.email", "x")
    assert nested == {"personal_info": {"email": "x"}} and t.read_field(nested, "personal_info.email") == "x"
    t.write_field(nested, "personal_info.email", None)
    assert nested == {"personal_info": {}}
    assert t.is_field_path("a.b_c") and t.is_field_path("customFields[contact.x]") and not t.is_field_path("a..b")


def test_check_transform_names_the_field() -> None:
    t.check_transform("enum", {"values": {"a": "A"}}, field="overrides[0].transform")
    for name, params, reason in (
        ("nope", {}, "UNKNOWN_TRANSFORM"),
        ("date", {"zone": "UTC"}, "INVALID_TRANSFORM"),
        ("enum", {"values": {"a": 1}}, "INVALID_TRANSFORM"),
        ("datetime_zone", {"zone": "Nowhere/Else"}, "INVALID_TRANSFORM"),
    ):
        with pytest.raises(InvalidArgument) as error:
            t.check_transform(name, params, field="overrides[3].transform")
        assert (error.value.field, error.value.reason) == ("overrides[3].transform", reason)
