"""Local simulator of PlainREST, a small plain REST EMR (simulator-chosen vendor): API-key auth,
patients listed by update time with a cursor, idempotent creates, full-replace updates."""

from .app import create_app
from .settings import AccountConfig, PlainRestSandboxSettings

__all__ = ["AccountConfig", "PlainRestSandboxSettings", "create_app"]
