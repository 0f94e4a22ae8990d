"""Local simulator of Salesforce (Health Cloud org) for the POPA Health integration: OAuth 2.0 and SOAP
login, REST sObjects, SOQL, Composite / sObject Collections, API limits and Change Data Capture."""

from .app import create_app
from .settings import ConnectedAppRegistration, SalesforceSandboxSettings, UserRegistration

__all__ = ["ConnectedAppRegistration", "SalesforceSandboxSettings", "UserRegistration", "create_app"]
