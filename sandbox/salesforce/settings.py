"""Settings of the Salesforce sandbox."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]

# Sandbox-only demo credentials (never real ones).
DEFAULT_USERNAME = "integration@popahealth.sandbox"
DEFAULT_PASSWORD = "Sandbox-Passw0rd"  # noqa: S105
DEFAULT_SECURITY_TOKEN = "SandboxSecurityToken01"  # noqa: S105
DEFAULT_CONSUMER_KEY = "3MVG9sandbox.ConcordHub.ConnectedApp"
DEFAULT_CONSUMER_SECRET = "SANDBOX-CONSUMER-SECRET-0001"  # noqa: S105


@dataclass
class UserRegistration:
    username: str
    password: str
    security_token: str
    first_name: str = "Integration"
    last_name: str = "User"
    email: str | None = None
    org_id: str | None = None  # None: the default org


@dataclass
class ConnectedAppRegistration:
    consumer_key: str
    consumer_secret: str
    name: str = "Concord Hub"
    redirect_uris: list[str] = field(default_factory=list)
    # PEM public key or X.509 certificate ("Use digital signatures") for the JWT bearer flow.
    jwt_public_key_pem: str | None = None
    scopes: str = "api refresh_token"
    require_secret_for_web_server: bool = True
    require_secret_for_refresh: bool = True
    # Username the client-credentials flow runs as (None: the flow is not enabled).
    client_credentials_user: str | None = None
    org_id: str | None = None  # None: the default org


@dataclass
class SalesforceSandboxSettings:
    # The org's instance (My Domain) URL, returned as instance_url / serverUrl.
    base_url: str = "http://127.0.0.1:8703"
    # The login host that also hosts the identity URLs; None = base_url. JWT audiences accepted:
    # https://login.salesforce.com, https://test.salesforce.com, login_url and base_url.
    login_url: str | None = None
    # Seconds since the epoch; tests inject a fake clock to drive session timeout, limits and replay.
    clock: Callable[[], float] = time.time
    seed: int = 20240520
    session_timeout: float = 7200.0  # org Session Settings "Timeout value" (2 hours)
    auth_code_ttl: float = 900.0
    daily_api_limit: int = 100_000  # rolling 24 hours, per org
    rate_limit_enabled: bool = True
    min_api_version: int = 50
    max_api_version: int = 62
    query_locator_ttl: float = 900.0  # a query cursor is dropped after 15 minutes unused
    recycle_bin_days: int = 15
    cdc_retention: float = 72 * 3600.0
    # Change-event push: pauses before each retry; 5xx and transport errors are retried.
    webhook_retry_delays: tuple[float, ...] = (1.0, 5.0, 30.0)
    webhook_timeout: float = 10.0
    # Transport for change-event deliveries (httpx.MockTransport / ASGITransport in tests); None = network.
    webhook_transport: httpx.AsyncBaseTransport | None = None
    synthea_dir: Path = REPO_ROOT / "data" / "fhir" / "synthea"
    org_name: str = "POPA Health"
    # The default org's id (18 characters, prefix 00D); None = generated from the seed.
    org_id: str | None = None
    users: list[UserRegistration] = field(
        default_factory=lambda: [UserRegistration(DEFAULT_USERNAME, DEFAULT_PASSWORD, DEFAULT_SECURITY_TOKEN)]
    )
    apps: list[ConnectedAppRegistration] = field(
        default_factory=lambda: [
            ConnectedAppRegistration(
                DEFAULT_CONSUMER_KEY,
                DEFAULT_CONSUMER_SECRET,
                redirect_uris=["http://localhost:8000/oauth/salesforce/callback"],
            )
        ]
    )
    # Seed the default org from the Synthea data at start-up and after every reset.
    seed_on_start: bool = False
    future_visits_per_patient: int = 1
