"""Settings of the GoHighLevel sandbox."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class AppRegistration:
    """A Marketplace app, as registered in the GHL developer portal."""

    client_id: str
    client_secret: str
    redirect_uris: list[str]
    company_id: str | None = None
    location_id: str | None = None
    webhook_url: str | None = None
    plan_id: str | None = None


@dataclass
class GhlSandboxSettings:
    base_url: str = "http://127.0.0.1:8701"
    # Seconds since the epoch; tests inject a fake clock to drive expiry and rate-limit windows.
    clock: Callable[[], float] = time.time
    access_token_ttl: float = 86_400.0
    refresh_token_ttl: float = 365 * 86_400.0
    auth_code_ttl: float = 600.0
    rate_limit_enabled: bool = True
    burst_limit: int = 100
    burst_window_ms: int = 10_000
    daily_limit: int = 200_000
    seed: int = 20210728
    webhook_key_bits: int = 2048
    # GHL retries a delivery only after a 429, up to 6 times about 10 minutes apart, with jitter.
    webhook_retry_delays: tuple[float, ...] = (600.0,) * 6
    webhook_retry_jitter: float = 60.0
    webhook_timeout: float = 10.0
    # Transport for webhook deliveries (httpx.MockTransport / ASGITransport in tests); None = network.
    webhook_transport: httpx.AsyncBaseTransport | None = None
    # With the webhook_out_of_order fault on, events are held this long (or until drain()) and released shuffled.
    webhook_reorder_window: float = 1.0
    # IANA zone of every location (calendar open hours, appointment times); simulator-chosen.
    timezone: str = "America/New_York"
    synthea_dir: Path = REPO_ROOT / "data" / "fhir" / "synthea"
    # Apps registered at startup and again after every POST /_sandbox/reset.
    apps: list[AppRegistration] = field(default_factory=list)
