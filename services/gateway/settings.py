"""The gateway's own settings (``CONCORD_GATEWAY_*``), beside the shared ones of libs/settings.py.

Kept here only because the shared Settings is another area's file; each name reads the variable
``Settings.gateway_<name>`` would, so moving it there later changes no deployment.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CONCORD_GATEWAY_", frozen=True, extra="ignore")

    # Requests served at once; one more is refused 503 at once (services/gateway/admission.py).
    # In flight, not per second: a request waiting on a backend (a sync run's ?wait=true) holds its
    # place. 0: no bound.
    max_in_flight: int = Field(default=128, ge=0)
    # What those 503s tell the caller to wait before trying again.
    retry_after_seconds: int = Field(default=1, ge=1)
