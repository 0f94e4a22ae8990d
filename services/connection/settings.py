"""Connection-service settings beyond the shared ones (CONCORD_CONNECTION_* variables)."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class ConnectionSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CONCORD_CONNECTION_", frozen=True, extra="ignore")

    # How often the background refresher looks for tokens expiring within the refresh margin.
    refresh_interval_seconds: float = 60.0
    # How long a started authorization waits for the user to come back from the vendor.
    pending_authorization_ttl_seconds: int = 600
    # Timeout of every request to a vendor's OAuth endpoints.
    vendor_timeout_seconds: float = 15.0
    # How long a vendor definition fetched from the registry is reused.
    definition_cache_seconds: float = 60.0
