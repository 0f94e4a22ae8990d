"""Generic FHIR R4 EMR adapter (SMART backend services)."""

from services.adapters.fhir.adapter import FhirAdapter

ADAPTER = FhirAdapter
