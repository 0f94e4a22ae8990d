"""Hypothesis strategies for valid FHIR Patients and canonical field values."""

from __future__ import annotations

from datetime import date

from hypothesis import strategies as st

from libs.fhir_patient import CANONICAL_FIELDS, CONSENT_DECISIONS, CONSENT_FIELDS, GENDERS, apply

word = st.text(st.characters(categories=("Lu", "Ll")), min_size=1, max_size=10)
words = st.lists(word, min_size=1, max_size=3).map(" ".join)
full_date = st.dates(date(1900, 1, 1), date(2025, 12, 31)).map(date.isoformat)
fhir_date = full_date | full_date.map(lambda d: d[:4]) | full_date.map(lambda d: d[:7])
us_e164 = st.from_regex(r"\+1[2-9][0-9]{2}[2-9][0-9]{6}", fullmatch=True)
national_phone = st.from_regex(r"[2-9][0-9]{2}-[2-9][0-9]{2}-[0-9]{4}", fullmatch=True)
email = st.from_regex(r"[a-z0-9._+-]{1,10}@[a-z0-9-]{1,10}\.[a-z]{2,6}", fullmatch=True)
country_code = st.from_regex(r"[A-Z]{2}", fullmatch=True)
street = st.from_regex(r"[0-9]{1,4} [A-Z][a-z]{2,8}( St| Ave|, Unit [0-9]{1,3})?", fullmatch=True)


def _maybe(strategy: st.SearchStrategy) -> st.SearchStrategy:
    return st.none() | strategy


def _drop_none(**values: object) -> dict:
    return {key: value for key, value in values.items() if value is not None and value != []}


human_name = st.builds(
    _drop_none,
    use=_maybe(st.sampled_from(["official", "usual", "maiden", "nickname", "old"])),
    family=_maybe(words),
    given=st.lists(word, max_size=2),
    prefix=st.lists(st.sampled_from(["Mr.", "Mrs.", "Dr."]), max_size=1),
).filter(bool)
telecom = st.one_of(
    st.builds(_drop_none, system=st.just("phone"), value=us_e164 | national_phone, use=_maybe(st.just("home"))),
    st.builds(_drop_none, system=st.just("email"), value=email),
    st.builds(_drop_none, system=st.just("fax"), value=national_phone),
)
geolocation = {
    "url": "http://hl7.org/fhir/StructureDefinition/geolocation",
    "extension": [{"url": "latitude", "valueDecimal": 42.26}, {"url": "longitude", "valueDecimal": -71.8}],
}
address = st.builds(
    _drop_none,
    use=_maybe(st.sampled_from(["home", "work"])),
    line=st.lists(street, max_size=2),
    city=_maybe(words),
    state=_maybe(words),
    postalCode=_maybe(st.from_regex(r"[0-9]{5}", fullmatch=True)),
    country=_maybe(country_code),
    extension=st.lists(st.just(geolocation), max_size=1),
).filter(bool)
deceased = st.sampled_from([{}, {"deceasedBoolean": True}, {"deceasedDateTime": "2019-04-01T10:00:00Z"}])


@st.composite
def patients(draw: st.DrawFn, birth_date: st.SearchStrategy = fhir_date) -> dict:
    patient = {
        "resourceType": "Patient",
        "identifier": [
            {"system": "https://example.org/mrn", "value": draw(st.from_regex(r"[A-Z0-9]{6}", fullmatch=True))}
        ],
        "extension": [{"url": "http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName", "valueString": "X"}],
        **draw(deceased),
    }
    patient.update(
        _drop_none(
            name=draw(st.lists(human_name, max_size=3)),
            telecom=draw(st.lists(telecom, max_size=4)),
            address=draw(st.lists(address, max_size=2)),
            birthDate=draw(_maybe(birth_date)),
            gender=draw(_maybe(st.sampled_from(GENDERS))),
        )
    )
    return patient


canonical_values = {
    "given_name": words,
    "family_name": words,
    "birth_date": fhir_date,
    "gender": st.sampled_from(GENDERS),
    "phone": us_e164,
    "email": email,
    "address_line": street,
    "city": words,
    "state": words,
    "postal_code": st.from_regex(r"[0-9]{5}", fullmatch=True),
    "country": country_code,
}
changes = st.fixed_dictionaries({}, optional={field: _maybe(canonical_values[field]) for field in CANONICAL_FIELDS})

# The hub's marketing consent (libs.fhir_patient CONSENT_FIELDS): changes to it, and patients holding one.
consent_changes = st.fixed_dictionaries(
    {}, optional={field: _maybe(st.sampled_from(CONSENT_DECISIONS)) for field in CONSENT_FIELDS}
)


@st.composite
def consenting_patients(draw: st.DrawFn, birth_date: st.SearchStrategy = fhir_date) -> dict:
    """A patient of ``patients`` with a consent recorded for some channels (maybe none)."""
    return apply(draw(patients(birth_date)), draw(consent_changes))
