"""httpx client for the GoHighLevel (LeadConnector v2) API: auth, pacing, vendor errors.

GHL allows 100 requests per 10 s per (app, location) and answers 429 beyond it. Every request
waits for room in a sliding window shared by all activities of this worker for that location,
and the window follows the X-RateLimit-* headers GHL sends back.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
from temporalio import activity

API_VERSION = "2021-07-28"
RETRYABLE_STATUSES = {500, 502, 503, 504}


class GhlError(Exception):
    """A vendor answer the adapter cannot retry away. Carries status and GHL's message, no data."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{reason} ({status}): {message}")
        self.status = status
        self.reason = reason
        self.message = message


@dataclass
class Credentials:
    access_token: str
    location_id: str
    base_url: str


TokenSource = Callable[[bool], Awaitable[Credentials]]


def _heartbeat() -> None:
    if activity.in_activity():
        activity.heartbeat()


class Pacer:
    """A sliding-window limiter: at most ``limit`` requests in any ``interval`` seconds."""

    def __init__(self, limit: int, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.interval = interval
        self._clock = clock
        self._sent: collections.deque[float] = collections.deque()
        self._lock = asyncio.Lock()
        self.waited_seconds = 0.0

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = self._clock()
                while self._sent and now - self._sent[0] >= self.interval:
                    self._sent.popleft()
                if len(self._sent) < self.limit:
                    self._sent.append(now)
                    return
                wait = self.interval - (now - self._sent[0])
                self.waited_seconds += wait
                _heartbeat()
                await asyncio.sleep(wait)

    def follow(self, headers: httpx.Headers) -> None:
        """Adopts the vendor's advertised window (less a safety margin) when it sends one."""
        try:
            limit = int(headers["X-RateLimit-Max"])
            interval = int(headers["X-RateLimit-Interval-Milliseconds"]) / 1000
        except (KeyError, ValueError):
            return
        self.limit = max(1, limit - max(1, limit // 20))
        self.interval = interval


_pacers: dict[str, Pacer] = {}


def pacer_for(location_id: str, limit: int = 95, interval: float = 10.0) -> Pacer:
    if location_id not in _pacers:
        _pacers[location_id] = Pacer(limit, interval)
    return _pacers[location_id]


class GhlClient:
    def __init__(self, http: httpx.AsyncClient, tokens: TokenSource, max_retries: int = 8) -> None:
        self._http = http
        self._tokens = tokens
        self._max_retries = max_retries
        self.requests = 0

    async def credentials(self) -> Credentials:
        return await self._tokens(False)

    async def request(self, method: str, path: str, *, json: Any = None, params: dict | None = None) -> dict:
        creds = await self._tokens(False)
        refreshed = False
        pacer = pacer_for(creds.location_id)
        for attempt in range(self._max_retries + 1):
            await pacer.acquire()
            self.requests += 1
            response = await self._http.request(
                method,
                f"{creds.base_url.rstrip('/')}{path}",
                json=json,
                params=params,
                headers={
                    "Authorization": f"Bearer {creds.access_token}",
                    "Version": API_VERSION,
                    "Accept": "application/json",
                },
            )
            pacer.follow(response.headers)
            if response.status_code == 401 and not refreshed:
                creds = await self._tokens(True)
                refreshed = True
                continue
            if response.status_code == 429 or response.status_code in RETRYABLE_STATUSES:
                if attempt == self._max_retries:
                    break
                await self._back_off(response, attempt)
                continue
            if response.status_code >= 400:
                raise GhlError(response.status_code, _reason(response.status_code), _message(response))
            return response.json() if response.content else {}
        raise GhlError(response.status_code, "VENDOR_UNAVAILABLE", "retries exhausted")

    async def _back_off(self, response: httpx.Response, attempt: int) -> None:
        if response.status_code == 429:
            retry_after = response.headers.get("Retry-After")
            interval = response.headers.get("X-RateLimit-Interval-Milliseconds")
            wait = float(retry_after) if retry_after else (int(interval) / 1000 if interval else 10.0)
        else:
            wait = min(0.5 * 2**attempt, 30.0)
        _heartbeat()
        await asyncio.sleep(wait)


def _reason(status: int) -> str:
    return {400: "VENDOR_BAD_REQUEST", 403: "VENDOR_FORBIDDEN", 404: "VENDOR_NOT_FOUND", 422: "VENDOR_REJECTED"}.get(
        status, "VENDOR_ERROR"
    )


def _message(response: httpx.Response) -> str:
    """GHL's validation messages name fields ("email must be an email"); keep them, cut long text."""
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    message = body.get("message") if isinstance(body, dict) else None
    if isinstance(message, list):
        message = "; ".join(str(m) for m in message)
    return str(message or f"HTTP {response.status_code}")[:300]
