"""Local simulator of a FHIR R4 EMR (HAPI / Epic-like) with SMART Backend Services and R4 Subscriptions."""

from .app import create_app
from .settings import ClientRegistration, FhirSandboxSettings

__all__ = ["ClientRegistration", "FhirSandboxSettings", "create_app"]
