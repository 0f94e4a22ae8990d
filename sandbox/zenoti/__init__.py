"""Local simulator of the Zenoti API (v1): API-key and employee-token auth, centers and catalog, guests,
appointments and the service booking flow, the organization rate limit, and webhooks."""

from .app import create_app
from .settings import OrgConfig, WebhookConfig, ZenotiSandboxSettings

__all__ = ["OrgConfig", "WebhookConfig", "ZenotiSandboxSettings", "create_app"]
