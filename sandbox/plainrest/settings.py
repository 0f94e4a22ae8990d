"""Settings of the PlainREST sandbox."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class AccountConfig:
    """A PlainREST account (one practice) and the API key its admin created in the web app."""

    account_id: str = "acct_plainclinic"
    name: str = "Plain Clinic"
    api_key: str = "prk_test_3f9a1c7e5b2d4068a1c3e5f7092b4d6f"  # fake
    # Synthetic patients the account starts with.
    patients: int = 0


@dataclass
class PlainRestSandboxSettings:
    base_url: str = "http://127.0.0.1:8706"
    # Seconds since the epoch; drives updated_at, the rate-limit window and idempotency expiry.
    clock: Callable[[], float] = time.time
    seed: int = 20240611
    rate_limit_enabled: bool = True
    rate_limit: int = 10  # requests per window per account
    rate_window: float = 1.0
    idempotency_ttl: float = 86_400.0
    default_page_size: int = 50
    max_page_size: int = 100
    accounts: list[AccountConfig] = field(default_factory=lambda: [AccountConfig()])
