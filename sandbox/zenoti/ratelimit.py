"""The organization-level limit: a bucket of ``limit`` calls refilled to the brim every ``window``
seconds (guides/api-rate-limits-1.md: ``Organization-RateLimit-Limit: 60;w=60;b=60``).

Simulator-chosen: the first call of an organization starts its refill clock; calls answered 429 do
not take a token; requests that fail authentication are not counted (they name no organization).
"""

from __future__ import annotations

import math
from collections.abc import Callable


class RateLimiter:
    def __init__(self, limit: int, window: float, clock: Callable[[], float]) -> None:
        self.limit, self.window, self._clock = limit, window, clock
        self._buckets: dict[str, list[float]] = {}  # org id -> [refill clock start, tokens used]

    def reset(self) -> None:
        self._buckets.clear()

    def hit(self, key: str) -> tuple[bool, dict[str, str]]:
        """Takes a token for ``key``; returns (allowed, the rate-limit headers)."""
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = [now, 0]
        elif now >= bucket[0] + self.window:
            bucket[0] += self.window * math.floor((now - bucket[0]) / self.window)
            bucket[1] = 0
        allowed = bucket[1] < self.limit
        if allowed:
            bucket[1] += 1
        reset = max(1, math.ceil(bucket[0] + self.window - now))
        headers = self._headers(self.limit - int(bucket[1]), reset)
        if not allowed:
            headers["Retry-After"] = str(reset)
        return allowed, headers

    def storm_headers(self, key: str | None = None) -> dict[str, str]:
        """Headers of a 429 forced by the rate_limit_storm fault."""
        bucket = self._buckets.get(key or "")
        reset = max(1, math.ceil(bucket[0] + self.window - self._clock())) if bucket else int(self.window)
        return {**self._headers(0, reset), "Retry-After": str(reset)}

    def _headers(self, remaining: int, reset: int) -> dict[str, str]:
        return {
            "Organization-RateLimit-Limit": f"{self.limit};w={self.window:g};b={self.limit}",
            "RateLimit-Remaining": str(remaining),
            "RateLimit-Reset": str(reset),
        }
