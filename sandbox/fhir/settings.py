"""Settings of the FHIR R4 sandbox."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class ClientRegistration:
    """A SMART Backend Services client: its public keys (inline JWKS or a JWKS URL) and allowed scopes."""

    client_id: str
    scopes: str
    jwks: dict[str, Any] | None = None
    jwks_url: str | None = None
    # Tenants the client may reach; None = every tenant.
    tenants: list[str] | None = None


@dataclass
class FhirSandboxSettings:
    # Public origin used in links (fullUrl, Location, next, token URL); None = taken from each request's Host.
    base_url: str | None = None
    # Seconds since the epoch; tests inject a fake clock to drive expiry, windows and lastUpdated.
    clock: Callable[[], float] = time.time
    seed: int = 40_001
    # Path-based tenants: /fhir/{tenant}/...; each is seeded from the synthetic set unless seed_data is off.
    tenants: tuple[str, ...] = ("default",)
    seed_data: bool = True
    slot_days: int = 30
    clients: list[ClientRegistration] = field(default_factory=list)
    access_token_ttl: int = 3600
    # SMART Backend Services: the assertion's exp may be at most this far in the future.
    assertion_max_lifetime: int = 300
    # Search: HAPI-style defaults.
    default_count: int = 20
    max_count: int = 500
    search_ttl: float = 3600.0
    max_searches: int = 2000
    # Unknown search parameters: ignored (lenient) unless strict here or `Prefer: handling=strict`.
    strict_search: bool = False
    # PUT to an id that does not exist creates it (CapabilityStatement updateCreate).
    allow_update_create: bool = True
    # Simulator-chosen limits, per client: this many API requests per window (seconds).
    rate_limit_enabled: bool = True
    rate_limit_requests: int = 1200
    rate_limit_window: float = 60.0
    storm_retry_after: int = 1
    # Subscription deliveries: pauses before each retry of a 5xx / 429 / network error, then status "error".
    webhook_retry_delays: tuple[float, ...] = (5.0, 30.0, 120.0)
    webhook_timeout: float = 10.0
    subscription_failures_before_error: int = 1
    # Transport for every outgoing request (notifications, jwks_url); None = network. Tests pass a MockTransport.
    transport: httpx.AsyncBaseTransport | None = None
