"""Settings of the Zapier sandbox."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

# Autoreplay back-off after an errored step: 5 min, 30 min, 1 h, 3 h, 6 h (zapier.com/help/autoreplay).
AUTOREPLAY_DELAYS = (300.0, 1800.0, 3600.0, 10800.0, 21600.0)


@dataclass
class ZapierSandboxSettings:
    # Public URL of this sandbox, used in target URLs and the OAuth redirect URI; None = the URL the
    # admin request arrived on (right for serve_asgi on port 0).
    base_url: str | None = None
    # Seconds since the epoch; tests inject a fake clock (expiry, re-subscription, rate windows).
    clock: Callable[[], float] = time.time
    # How Zapier waits before a throttled retry or an autoreplay; tests inject a fake one.
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep
    seed: int = 20140601
    # Transport for calls to the app (httpx.ASGITransport in tests); None = the network.
    transport: httpx.AsyncBaseTransport | None = None
    # Zapier gives every request of a step 30 s (operating constraints).
    request_timeout: float = 30.0
    # 429 from the app: wait Retry-After (default 60 s, at most 300 s), then retry the request.
    throttle_default_delay: float = 60.0
    throttle_max_delay: float = 300.0
    throttle_max_retries: int = 5
    # 5xx / network errors on an action: replayed on this schedule when the Zap has autoreplay on.
    autoreplay: bool = True
    autoreplay_delays: tuple[float, ...] = AUTOREPLAY_DELAYS
    # Polling: at most this many new items trigger per poll (the rest are held); seen ids kept per Zap.
    poll_new_item_limit: int = 100
    dedupe_table_limit: int = 105_000
    poll_interval: float = 900.0
    # Catch-hook intake limits (operating constraints): per user per 5 minutes, per hook per second.
    rate_limit_enabled: bool = True
    hook_user_limit: int = 10_000
    hook_user_window: float = 300.0
    hook_per_second_limit: int = 30
    hook_payload_limit: int = 10 * 1024 * 1024
    # App definitions (POST /_sandbox/apps bodies) registered at startup and after every reset.
    apps: list[dict[str, Any]] = field(default_factory=list)
