"""Settings of the Zenoti sandbox."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx


@dataclass
class OrgConfig:
    """A Zenoti organization (account) with its org-level API key, one backend app and its employees."""

    account_name: str = "concordspa"
    api_key: str = "5f1c0e4b8a2d4c6e9b7a3f10d2e4c6a8b0d2f4a6c8e0b2d4f6a8c0e2b4d6f8a0"
    app_id: str = "B7A1C9D2-4E6F-4A8B-9C0D-1E2F3A4B5C6D"
    app_secret: str = "9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b2a1f0e9d8c"  # noqa: S105 (fake)
    # Employees who may log in through POST /v1/tokens (user_name -> password).
    users: dict[str, str] = field(default_factory=lambda: {"frontdesk": "Front-desk-2024"})
    # Seed two centers' guests, appointments, therapists and memberships from the Synthea set.
    seed: bool = True
    # Org setting "Search Guest Across Centers": guest search spans the org instead of center_id only.
    search_across_centers: bool = True
    # Org setting refusing a second guest with the same email or mobile number.
    reject_duplicate_guests: bool = True


@dataclass
class WebhookConfig:
    """A webhook as configured in Zenoti (Admin > Setup > Webhooks), registered at start and on reset."""

    url: str
    events: tuple[str, ...] | None = None  # None: every supported event
    secret: str = "zenoti-sandbox-webhook-secret"  # noqa: S105 (fake)
    account_name: str = "concordspa"


@dataclass
class ZenotiSandboxSettings:
    base_url: str = "http://127.0.0.1:8702"
    # Seconds since the epoch; tests inject a fake clock to drive expiry and rate-limit windows.
    clock: Callable[[], float] = time.time
    seed: int = 20220311
    rate_limit_enabled: bool = True
    rate_limit: int = 60  # calls per window per organization (the standard plan)
    rate_window: float = 60.0
    access_token_ttl: float = 86_400.0
    refresh_token_ttl: float = 90 * 86_400.0
    reservation_ttl: float = 600.0
    max_appointment_days: int = 7
    # Zenoti retries a failed delivery up to 5 times, backing off from 30 s to at most 10 min.
    webhook_retry_delays: tuple[float, ...] = (30.0, 60.0, 120.0, 240.0, 480.0)
    webhook_timeout: float = 10.0
    webhook_deactivate_after: int = 20
    # Out-of-order fault: held events are released as one shuffled batch once this many are pending.
    webhook_hold_max: int = 10
    # Transport for webhook deliveries (httpx.MockTransport / ASGITransport in tests); None = network.
    webhook_transport: httpx.AsyncBaseTransport | None = None
    orgs: list[OrgConfig] = field(default_factory=lambda: [OrgConfig()])
    webhooks: list[WebhookConfig] = field(default_factory=list)
