"""Overrides checked against the vendor's schema by type and length, pure: when they are stored
(the field and a reason), and record by record for lengths only a value can tell."""

from __future__ import annotations

import pytest

from libs.errors import InvalidArgument
from services.mapping import rules
from services.mapping.domain import Mapper, RecordInvalid
from services.mapping.mappers import default_mappers
from services.mapping.mappers.fhir import FhirPatientMapper
from services.mapping.mappers.fhir_appointments import FhirAppointmentMapper
from services.mapping.mappers.ghl import GhlPatientMapper
from services.mapping.mappers.salesforce import SalesforcePatientMapper
from services.mapping.mappers.salesforce_appointments import SalesforceAppointmentMapper
from services.mapping.mappers.zenoti import ZenotiPatientMapper
from services.mapping.rules import FieldRule

PATIENT, APPOINTMENT = "ENTITY_TYPE_PATIENT", "ENTITY_TYPE_APPOINTMENT"
LONG_DATE = "%A %d %B %Y"  # "Wednesday 27 September 2000": 27 characters at most
RESOURCE = {
    "resourceType": "Patient",
    "name": [{"use": "official", "given": ["Maximiliana Wilhelmina"], "family": "Ortiz"}],
    "gender": "female",
    "birthDate": "1990-02-03",
}


def _patient(hub: str, vendor: str, transform: str = "identity", direction: str = "both", **params) -> FieldRule:  # noqa: ANN003
    return FieldRule(PATIENT, hub, vendor, transform, params, direction, "override")


def _appointment(hub: str, vendor: str, transform: str = "identity", **params) -> FieldRule:  # noqa: ANN003
    return FieldRule(APPOINTMENT, hub, vendor, transform, params, "both", "override")


@pytest.mark.parametrize(
    "mapper",
    [m for m in default_mappers().values() if getattr(m, "vendor_schema", None) is not None],
    ids=lambda m: f"{m.integration_type}-{m.entity_type}",
)
def test_every_default_fits_its_vendors_schema(mapper: Mapper) -> None:
    defaults = rules.defaults(mapper)
    assert defaults
    rules.validate(mapper, mapper.entity_type, defaults, where="defaults")


def _name(value: object) -> str | None:
    return getattr(value, "vendor_field", None) or getattr(value, "integration_type", None)


REFUSED = [
    (GhlPatientMapper(), _patient("given_name", "dnd"), "VENDOR_FIELD_TYPE_MISMATCH"),  # a boolean
    (GhlPatientMapper(), _patient("phone", "email"), "VENDOR_FIELD_TYPE_MISMATCH"),
    (GhlPatientMapper(), _patient("country", "country"), "VENDOR_FIELD_TYPE_MISMATCH"),  # 2 letters needs `country`
    (
        GhlPatientMapper(),
        _patient("birth_date", "dateOfBirth", "date", format="%d.%m.%Y"),
        "VENDOR_FIELD_TYPE_MISMATCH",
    ),
    (SalesforcePatientMapper(), _patient("given_name", "PersonBirthdate"), "VENDOR_FIELD_TYPE_MISMATCH"),
    (
        SalesforcePatientMapper(),
        _patient("birth_date", "PersonBirthdate"),
        "VENDOR_FIELD_TYPE_MISMATCH",
    ),  # partial dates
    (
        SalesforcePatientMapper(),
        _patient("birth_date", "PersonMailingPostalCode", "date", format=LONG_DATE),
        "VENDOR_FIELD_TOO_SHORT",
    ),
    (
        SalesforcePatientMapper(),
        _patient("state", "PersonMailingPostalCode", "us_state", style="name"),
        "VENDOR_FIELD_TOO_SHORT",
    ),
    (
        SalesforceAppointmentMapper(),
        _appointment("status", "Status", "enum", values={"booked": "Booked"}),  # a restricted picklist
        "VENDOR_FIELD_TYPE_MISMATCH",
    ),
    (SalesforceAppointmentMapper(), _appointment("description", "SchedStartTime"), "VENDOR_FIELD_TYPE_MISMATCH"),
    (
        ZenotiPatientMapper(),
        _patient("gender", "personal_info.gender", "enum", values={"female": "F"}),
        "VENDOR_FIELD_TYPE_MISMATCH",
    ),
    (FhirPatientMapper(), _patient("birth_date", "birthDate", "date", format="%m/%d/%Y"), "VENDOR_FIELD_TYPE_MISMATCH"),
    (
        FhirPatientMapper(),
        _patient("gender", "gender", "enum", values={"male": "M", "female": "F"}),
        "VENDOR_FIELD_TYPE_MISMATCH",
    ),
    (FhirPatientMapper(), _patient("city", "telecom.where(system='email').value"), "VENDOR_FIELD_TYPE_MISMATCH"),
    (
        FhirAppointmentMapper(),
        _appointment("status", "status", "enum", values={"booked": "confirmed"}),
        "VENDOR_FIELD_TYPE_MISMATCH",
    ),
]


@pytest.mark.parametrize(("mapper", "rule", "reason"), REFUSED, ids=_name)
def test_an_override_that_does_not_fit_the_vendor_field_is_refused_naming_it(
    mapper: Mapper, rule: FieldRule, reason: str
) -> None:
    with pytest.raises(InvalidArgument) as error:
        rules.validate(mapper, rule.entity_type, [rule])
    assert (error.value.field, error.value.reason) == ("overrides[0].vendor_field", reason)
    assert error.value.message.startswith("overrides[0].vendor_field ")


ACCEPTED = [
    (GhlPatientMapper(), _patient("birth_date", "dateOfBirth", "date", format="%m/%d/%Y")),  # GHL reads it
    (GhlPatientMapper(), _patient("birth_date", "companyName", "date", format=LONG_DATE)),  # a string of any length
    (GhlPatientMapper(), _patient("given_name", "customFields[contact.nickname]")),  # custom: not described
    # A date fits a 20-character string field; a long one may be read from it (reads have no length).
    (SalesforcePatientMapper(), _patient("birth_date", "PersonMailingPostalCode", "date")),
    (SalesforcePatientMapper(), _patient("birth_date", "PersonMailingPostalCode", "date", "to_hub", format=LONG_DATE)),
    (SalesforceAppointmentMapper(), _appointment("status", "Status", "enum", values={"booked": "Dispatched"})),
    (SalesforceAppointmentMapper(), _appointment("start", "Subject")),
    (ZenotiPatientMapper(), _patient("gender", "personal_info.gender", "enum", values={"female": "0", "male": "1"})),
    (FhirPatientMapper(), _patient("birth_date", "birthDate", "date")),
    (FhirPatientMapper(), _patient("phone", "telecom.where(system='phone').value", "phone_national")),
    (FhirAppointmentMapper(), _appointment("start", "start", "datetime_zone", zone="Europe/Paris")),
]


@pytest.mark.parametrize(("mapper", "rule"), ACCEPTED, ids=_name)
def test_an_override_that_fits_is_taken(mapper: Mapper, rule: FieldRule) -> None:
    rules.validate(mapper, rule.entity_type, [rule])


def test_a_value_longer_than_the_vendor_field_is_refused_for_that_record_naming_the_hub_element() -> None:
    mapper = SalesforcePatientMapper()
    overrides = [_patient("given_name", "PersonMailingPostalCode")]  # 20 characters
    rules.validate(mapper, PATIENT, overrides)
    with pytest.raises(RecordInvalid) as invalid:
        rules.to_vendor(mapper, RESOURCE, rules.defaults(mapper), overrides)
    [error] = invalid.value.errors
    assert (error.field, error.reason) == ("name[0].given", "STRING_TOO_LONG")
    assert "PersonMailingPostalCode" in error.message and "Maximiliana" not in error.message
    short = {**RESOURCE, "name": [{"use": "official", "given": ["Max"], "family": "Ortiz"}]}
    assert rules.to_vendor(mapper, short, rules.defaults(mapper), overrides)["PersonMailingPostalCode"] == "Max"


def test_an_integer_field_is_written_and_read_as_a_number() -> None:
    mapper = ZenotiPatientMapper()
    overrides = [_patient("gender", "personal_info.gender", "enum", values={"female": "2", "male": "3"})]
    rules.validate(mapper, PATIENT, overrides)
    guest = rules.to_vendor(mapper, RESOURCE, rules.defaults(mapper), overrides)
    assert guest["personal_info"]["gender"] == 2
    # Records cross protobuf Structs, where every number is a double.
    read = {"id": "g1", "personal_info": {"first_name": "Max", "last_name": "Ortiz", "gender": 3.0}}
    assert rules.to_hub(mapper, read, rules.defaults(mapper), overrides).resource["gender"] == "male"
