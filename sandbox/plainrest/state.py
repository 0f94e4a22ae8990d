"""Everything one simulator instance knows; ``app.state.sandbox``."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sandbox.common.faults import FaultGate, Faults
from sandbox.common.stats import Stats

from .settings import AccountConfig, PlainRestSandboxSettings


@dataclass
class Replay:
    """What a create under an Idempotency-Key answered, kept for ``idempotency_ttl``."""

    expires: float
    fingerprint: str
    body: dict[str, Any]


@dataclass
class Account:
    id: str
    name: str
    api_key: str | None  # None once revoked
    patients: dict[str, dict[str, Any]] = field(default_factory=dict)
    replays: dict[str, Replay] = field(default_factory=dict)


class RateLimiter:
    """A fixed window of ``limit`` requests per ``window`` seconds per account, opened by the
    window's first request (simulator-chosen); refused requests do not count."""

    def __init__(self, limit: int, window: float, clock: Any) -> None:
        self.limit, self.window, self._clock = limit, window, clock
        self._windows: dict[str, list[float]] = {}

    def reset(self) -> None:
        self._windows.clear()

    def hit(self, key: str) -> tuple[bool, dict[str, str]]:
        now = self._clock()
        window = self._windows.get(key)
        if window is None or now - window[0] >= self.window:
            window = self._windows[key] = [now, 0]
        allowed = window[1] < self.limit
        if allowed:
            window[1] += 1
        reset = max(window[0] + self.window - now, 0.0)
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.limit - int(window[1])),
            "X-RateLimit-Reset": f"{reset:.3f}",
        }
        if not allowed:
            headers["Retry-After"] = str(max(1, math.ceil(reset)))
        return allowed, headers


def stamp(micros: int) -> str:
    """PlainREST's update times: UTC, microseconds, Z."""
    moment = datetime.fromtimestamp(micros // 1_000_000, UTC).replace(microsecond=micros % 1_000_000)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Sandbox:
    def __init__(self, settings: PlainRestSandboxSettings) -> None:
        self.settings = settings
        self.clock = settings.clock
        self.stats = Stats()
        self.faults = Faults(rate_limit_enabled=settings.rate_limit_enabled)
        self.gate = FaultGate(self.faults, settings.clock, seed=settings.seed + 1)
        self.limiter = RateLimiter(settings.rate_limit, settings.rate_window, settings.clock)
        self.reset()

    def reset(self) -> None:
        from . import seed

        self.rng = random.Random(self.settings.seed)
        self.reset_faults()
        self.stats.reset()
        self.limiter.reset()
        self.accounts: dict[str, Account] = {}
        for config in self.settings.accounts:
            account = self.add_account(config)
            seed.add_patients(self, account, config.patients)

    def reset_faults(self) -> None:
        self.faults = Faults(rate_limit_enabled=self.settings.rate_limit_enabled)
        self.gate.faults = self.faults

    def add_account(self, config: AccountConfig) -> Account:
        account = Account(config.account_id, config.name, config.api_key)
        self.accounts[account.id] = account
        return account

    def new_key(self) -> str:
        return f"prk_test_{self.rng.randbytes(16).hex()}"

    def account_by_key(self, api_key: str) -> Account | None:
        if not api_key:
            return None
        return next((a for a in self.accounts.values() if a.api_key == api_key), None)

    def new_id(self) -> str:
        return f"pat_{self.rng.randbytes(8).hex()}"

    def touch(self, record: dict[str, Any]) -> None:
        micros = round(self.clock() * 1_000_000)
        record["_updated_us"] = micros
        record["updated_at"] = stamp(micros)
        record.setdefault("created_at", record["updated_at"])

    def revoke_all_keys(self) -> None:
        for account in self.accounts.values():
            account.api_key = None
