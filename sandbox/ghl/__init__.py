"""Local simulator of the GoHighLevel (LeadConnector API v2) OAuth, Contacts, Calendars, Conversations
(messages), custom fields, workflows and webhook surface."""

from .app import create_app
from .settings import AppRegistration, GhlSandboxSettings

__all__ = ["AppRegistration", "GhlSandboxSettings", "create_app"]
