"""Burst and daily request limits per (Marketplace app, location).

Fixed windows (simulator-chosen): the burst window opens at a key's first request and lasts
`burst_window_ms` (a Redis INCR+PEXPIRE counter); the daily window is the UTC calendar day.
Rejected requests do not count.
"""

from __future__ import annotations

from collections.abc import Callable


class RateLimiter:
    def __init__(self, burst: int, window_ms: int, daily: int, clock: Callable[[], float]) -> None:
        self.burst, self.window_ms, self.daily, self._clock = burst, window_ms, daily, clock
        self._burst: dict[tuple[str, str], list[float]] = {}
        self._daily: dict[tuple[str, str], list[int]] = {}

    def reset(self) -> None:
        self._burst.clear()
        self._daily.clear()

    def idle_headers(self) -> dict[str, str]:
        return self._headers(self.burst, self.daily)

    def hit(self, key: tuple[str, str]) -> tuple[bool, dict[str, str]]:
        """Counts one request for `key`; returns (allowed, rate-limit headers)."""
        now_ms = self._clock() * 1000
        window = self._burst.get(key)
        if window is None or now_ms - window[0] >= self.window_ms:
            window = self._burst[key] = [now_ms, 0]
        day = int(now_ms // 86_400_000)
        daily = self._daily.get(key)
        if daily is None or daily[0] != day:
            daily = self._daily[key] = [day, 0]
        allowed = window[1] < self.burst and daily[1] < self.daily
        if allowed:
            window[1] += 1
            daily[1] += 1
        return allowed, self._headers(self.burst - int(window[1]), self.daily - daily[1])

    def _headers(self, remaining: int, daily_remaining: int) -> dict[str, str]:
        return {
            "X-RateLimit-Limit-Daily": str(self.daily),
            "X-RateLimit-Daily-Remaining": str(daily_remaining),
            "X-RateLimit-Interval-Milliseconds": str(self.window_ms),
            "X-RateLimit-Max": str(self.burst),
            "X-RateLimit-Remaining": str(remaining),
        }
