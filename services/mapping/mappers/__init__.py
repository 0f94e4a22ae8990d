"""Mapper registry keyed by (integration_type, entity_type), and the variants a config chooses
instead through its vendor options (a Salesforce config whose appointments are calendar Events).
Per-config field rules are applied by the service around whichever mapper is chosen."""

from __future__ import annotations

from services.mapping.domain import Mapper
from services.mapping.mappers.fhir import FhirPatientMapper
from services.mapping.mappers.fhir_appointments import FhirAppointmentMapper
from services.mapping.mappers.fhir_services import FhirServiceMapper
from services.mapping.mappers.ghl import GhlPatientMapper
from services.mapping.mappers.ghl_appointments import GhlAppointmentMapper
from services.mapping.mappers.salesforce import SalesforcePatientMapper
from services.mapping.mappers.salesforce_appointments import SalesforceAppointmentMapper
from services.mapping.mappers.salesforce_events import SalesforceEventMapper
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


def default_variants() -> dict[tuple[str, str, str], Mapper]:
    """(integration_type, entity_type, variant) -> the mapper a config's options choose."""
    return {
        ("salesforce", "ENTITY_TYPE_APPOINTMENT", "SALESFORCE_APPOINTMENT_OBJECT_EVENT"): SalesforceEventMapper(),
    }


def variant_of(integration_type: str, entity_type: str, options: dict) -> str:
    """Which variant a config's VendorOptions (as JSON, proto field names) choose; "" = the default."""
    if (integration_type, entity_type) == ("salesforce", "ENTITY_TYPE_APPOINTMENT"):
        return str((options.get("salesforce") or {}).get("appointment_object") or "")
    return ""
