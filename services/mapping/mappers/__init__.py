"""Mapper registry keyed by (integration_type, entity_type). Per-config rules, when they come,
are applied by the service around these defaults."""

from __future__ import annotations

from services.mapping.domain import Mapper
from services.mapping.mappers.fhir import FhirPatientMapper
from services.mapping.mappers.fhir_appointments import FhirAppointmentMapper
from services.mapping.mappers.fhir_services import FhirServiceMapper
from services.mapping.mappers.ghl import GhlPatientMapper
from services.mapping.mappers.ghl_appointments import GhlAppointmentMapper
from services.mapping.mappers.salesforce import SalesforcePatientMapper
from services.mapping.mappers.salesforce_appointments import SalesforceAppointmentMapper
from services.mapping.mappers.zapier import ZapierAppointmentMapper, ZapierPatientMapper
from services.mapping.mappers.zenoti import ZenotiPatientMapper
from services.mapping.mappers.zenoti_appointments import ZenotiAppointmentMapper
from services.mapping.mappers.zenoti_memberships import ZenotiMembershipMapper
from services.mapping.mappers.zenoti_services import ZenotiServiceMapper


def default_mappers() -> dict[tuple[str, str], Mapper]:
    mappers: list[Mapper] = [
        GhlPatientMapper(),
        GhlAppointmentMapper(),
        FhirPatientMapper(),
        FhirAppointmentMapper(),
        SalesforcePatientMapper(),
        SalesforceAppointmentMapper(),
        ZenotiPatientMapper(),
        ZapierPatientMapper(),
        ZapierAppointmentMapper(),
        FhirServiceMapper(),
        ZenotiServiceMapper(),
        ZenotiAppointmentMapper(),
        ZenotiMembershipMapper(),
    ]
    return {(m.integration_type, m.entity_type): m for m in mappers}
