"""httpx client for the GoHighLevel (LeadConnector v2) API: auth, pacing, vendor errors.

GHL allows 100 requests per 10 s per (app, location) and answers 429 beyond it. Every request
waits for room in a sliding window shared by all activities of this worker for that location,
and the window follows the X-RateLimit-* headers GHL sends back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from services.adapters.common import Pacer, SharedToken, Unpaced, heartbeat

# GHL versions each API family on its own: contacts are 2021-07-28, calendars 2021-04-15.
CONTACTS_VERSION = "2021-07-28"
CALENDARS_VERSION = "2021-04-15"
RETRYABLE_STATUSES = {500, 502, 503, 504}


class GhlError(Exception):
    """A vendor answer the adapter cannot retry away. Carries status and GHL's message, no data."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{reason} ({status}): {message}")
        self.status = status
        self.reason = reason
        self.message = message

    @property
    def about_the_record(self) -> bool:
        """A refusal of this one request's content, not of the connection or the vendor's state."""
        return 400 <= self.status < 500 and self.status not in (401, 429)


class WriteOutcomeUnknown(Exception):
    """GHL may or may not have applied a request that must not be sent twice."""


# Transport errors raised before the request left: sending it again cannot apply it twice.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


@dataclass
class Credentials:
    access_token: str
    location_id: str
    base_url: str


TokenSource = Callable[[bool], Awaitable[Credentials]]


class GhlPacer(Pacer):
    """The shared window, following GHL's X-RateLimit-* headers."""

    def follow(self, headers: httpx.Headers) -> None:
        """Adopts the vendor's advertised window (less a safety margin) when it sends one, and
        holds every request for a window when GHL says none is left in it (another replica or
        another app of the location spent it): they wait instead of meeting a 429."""
        try:
            limit = int(headers["X-RateLimit-Max"])
            interval = int(headers["X-RateLimit-Interval-Milliseconds"]) / 1000
        except (KeyError, ValueError):
            return
        self.limit = max(1, limit - max(1, limit // 20))
        self.interval = interval
        remaining = headers.get("X-RateLimit-Remaining", "")
        if remaining.isdigit() and int(remaining) == 0:
            self.hold(interval)


class Pacers:
    """One pacer per location, shared by every activity of the worker that owns this."""

    def __init__(self, limit: int = 95, interval: float = 10.0, enabled: bool = True, share: float = 1.0) -> None:
        self._limit = limit
        self._interval = interval
        self._enabled = enabled
        self._share = share
        self._pacers: dict[str, Pacer] = {}

    def __call__(self, location_id: str) -> Pacer:
        if not self._enabled:
            return _UNPACED
        if location_id not in self._pacers:
            self._pacers[location_id] = GhlPacer(self._limit, self._interval, share=self._share)
        return self._pacers[location_id]


_UNPACED = Unpaced()


class GhlClient:
    """One activity's view of GHL: its credentials, fetched once and refreshed once per 401."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        tokens: TokenSource,
        pacers: Callable[[str], Pacer],
        max_retries: int = 8,
        backoff_seconds: float = 0.5,
    ) -> None:
        self._http = http
        self._token = SharedToken(tokens)
        self._pacers = pacers
        self._max_retries = max_retries
        self._backoff_seconds = backoff_seconds
        self.requests = 0

    async def credentials(self) -> Credentials:
        return await self._token.current()

    async def _refreshed(self, rejected: Credentials) -> Credentials:
        # Concurrent requests that met a 401 with the same token share one forced refresh.
        return await self._token.refreshed(rejected)

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict | None = None,
        version: str = CONTACTS_VERSION,
        replay: bool = True,
    ) -> dict:
        """With ``replay=False`` (a create GHL cannot deduplicate) an answer that leaves unknown
        whether GHL applied the request (5xx, a network error after sending) raises
        WriteOutcomeUnknown instead of sending it again: the caller looks before it retries."""
        creds = await self.credentials()
        refreshed = False
        pacer = self._pacers(creds.location_id)
        response: httpx.Response | None = None
        for attempt in range(self._max_retries + 1):
            await pacer.acquire()
            self.requests += 1
            try:
                response = await self._http.request(
                    method,
                    f"{creds.base_url.rstrip('/')}{path}",
                    json=json,
                    params=params,
                    headers={
                        "Authorization": f"Bearer {creds.access_token}",
                        "Version": version,
                        "Accept": "application/json",
                    },
                )
            except httpx.TransportError as error:
                if not replay and not isinstance(error, NOT_SENT):
                    raise WriteOutcomeUnknown() from None
                # Safe to repeat: reads, updates by id and upserts, or a request that never left.
                if attempt == self._max_retries:
                    raise
                await self._back_off(None, attempt)
                continue
            pacer.follow(response.headers)
            if response.status_code == 401 and not refreshed:
                creds = await self._refreshed(creds)
                refreshed = True
                continue
            if response.status_code in RETRYABLE_STATUSES and not replay:
                raise WriteOutcomeUnknown()
            if response.status_code == 429 or response.status_code in RETRYABLE_STATUSES:
                if attempt == self._max_retries:
                    break
                await self._back_off(response, attempt)
                continue
            if response.status_code >= 400:
                raise GhlError(response.status_code, _reason(response.status_code), _message(response))
            return response.json() if response.content else {}
        status = response.status_code if response is not None else 0
        raise GhlError(status, "VENDOR_UNAVAILABLE", "retries exhausted")

    async def back_off(self, attempt: int) -> None:
        await self._back_off(None, attempt)

    async def _back_off(self, response: httpx.Response | None, attempt: int) -> None:
        wait = min(self._backoff_seconds * 2**attempt, 30.0)
        if response is not None and response.status_code == 429:
            wait = _rate_limit_wait(response.headers)
        heartbeat()
        await asyncio.sleep(wait)


def _rate_limit_wait(headers: httpx.Headers) -> float:
    """Retry-After when sent (GHL sends none), else one window of the advertised limit."""
    for name, scale in (("Retry-After", 1.0), ("X-RateLimit-Interval-Milliseconds", 0.001)):
        try:
            return max(float(headers[name]) * scale, 0.0)
        except (KeyError, ValueError):
            continue
    return 10.0


def _reason(status: int) -> str:
    return {
        400: "VENDOR_BAD_REQUEST",
        401: "VENDOR_UNAUTHORIZED",
        403: "VENDOR_FORBIDDEN",
        404: "VENDOR_NOT_FOUND",
        422: "VENDOR_REJECTED",
    }.get(status, "VENDOR_ERROR")


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
