"""Fault injection, the same switches on every sandbox (``/_sandbox/faults``).

Vendor-specific one-shot actions (expire or revoke every token) are handled by each sandbox; the
rest is decided here, per request, with a seeded random generator so runs repeat.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import Any


@dataclass
class Faults:
    # Answer this many next API requests with the vendor's rate-limit response (a 429 storm).
    rate_limit_storm: int = 0
    # Enforce the vendor's real rate limits (benchmarks switch this off).
    rate_limit_enabled: bool = True
    status_5xx_rate: float = 0.0
    latency_ms: int = 0
    # The next list/search page is malformed in the vendor's way (bad cursor, broken JSON shape).
    malformed_page: bool = False
    # Webhooks: each delivery is sent twice with this probability; batches are shuffled.
    webhook_duplicate_rate: float = 0.0
    webhook_out_of_order: bool = False
    # Epoch seconds until which every API request fails as the vendor does in an outage.
    outage_until: float | None = None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


ACTIONS = frozenset({"expire_all_tokens", "revoke_tokens"})


class FaultError(ValueError):
    pass


def apply_patch(faults: Faults, body: dict[str, Any]) -> set[str]:
    """Updates faults from a JSON body; returns the one-shot actions asked for."""
    known = {f.name for f in fields(Faults)}
    unknown = set(body) - known - ACTIONS
    if unknown:
        raise FaultError(f"unknown faults: {sorted(unknown)}")
    try:
        for name in known & set(body):
            value = body[name]
            if name in ("status_5xx_rate", "webhook_duplicate_rate"):
                value = min(max(float(value), 0.0), 1.0)
            elif name in ("latency_ms", "rate_limit_storm"):
                value = max(int(value), 0)
            elif name == "outage_until":
                value = _epoch(value)
            else:
                value = bool(value)
            setattr(faults, name, value)
    except (TypeError, ValueError) as exc:
        raise FaultError(f"invalid fault value: {exc}") from None
    return {name for name in ACTIONS if body.get(name)}


def _epoch(value: Any) -> float | None:
    if value is None or isinstance(value, int | float):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


class FaultGate:
    """Decides, per API request, which fault (if any) strikes."""

    def __init__(self, faults: Faults, clock: Callable[[], float], seed: int) -> None:
        self.faults = faults
        self._clock = clock
        self._rng = random.Random(seed)

    async def before_request(self) -> str | None:
        """Returns "outage", "rate_limit" or "5xx" when the request must fail that way."""
        f = self.faults
        if f.latency_ms:
            await asyncio.sleep(f.latency_ms / 1000)
        if f.outage_until is not None and self._clock() < f.outage_until:
            return "outage"
        if f.rate_limit_storm:
            f.rate_limit_storm -= 1
            return "rate_limit"
        if f.status_5xx_rate and self._rng.random() < f.status_5xx_rate:
            return "5xx"
        return None

    def take_malformed_page(self) -> bool:
        if self.faults.malformed_page:
            self.faults.malformed_page = False
            return True
        return False

    def webhook_copies(self) -> int:
        rate = self.faults.webhook_duplicate_rate
        return 2 if rate and self._rng.random() < rate else 1

    def order(self, items: list) -> list:
        if self.faults.webhook_out_of_order and len(items) > 1:
            items = list(items)
            self._rng.shuffle(items)
        return items
