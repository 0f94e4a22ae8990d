"""Local simulator of Zapier towards an app: REST-hook subscriptions and catch hooks, polling with
dedupe, actions, API-key and OAuth2 (PKCE, autoRefresh) connections."""

from .app import create_app
from .settings import ZapierSandboxSettings

__all__ = ["ZapierSandboxSettings", "create_app"]
