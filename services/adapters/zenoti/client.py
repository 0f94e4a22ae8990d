"""httpx client for the Zenoti API v1: API-key auth, the organisation's rate limit, vendor errors.

Zenoti allows 60 calls a minute per organisation (a bucket refilled every 60 s, shared by every app
and key of the org) and answers 429 with Retry-After beyond it. Every request, read or write, waits
for room in a window shared by all activities of this worker for that organisation; the window
follows the limit Zenoti announces and closes while Zenoti says the bucket is empty.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from services.adapters.common import LaneLock, SharedToken, heartbeat

RETRYABLE_STATUSES = {500, 502, 503, 504}
DEFAULT_LIMIT, DEFAULT_WINDOW = 60, 60.0


class ZenotiError(Exception):
    """A vendor answer the adapter cannot retry away. Carries status and Zenoti's message, no data."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{reason} ({status}): {message}")
        self.status = status
        self.reason = reason
        self.message = message

    @property
    def about_the_record(self) -> bool:
        """A refusal of this one request's content, not of the connection or the vendor's state."""
        return 400 <= self.status < 500 and self.status not in (401, 429)

    @property
    def duplicate(self) -> bool:
        """Zenoti's refusal of a second guest with the same email or mobile number (org setting)."""
        return self.status == 400 and "already exists" in self.message.lower()


class ZenotiMalformed(Exception):
    """A 200 whose body is not the JSON Zenoti documents (a list cut off mid-way, say)."""


@dataclass(frozen=True)
class Credentials:
    token: str
    token_type: str  # "apikey" for org API keys, "bearer" for employee tokens
    center_id: str
    base_url: str

    def __repr__(self) -> str:
        return f"Credentials(token_type={self.token_type!r}, center_id={self.center_id!r})"

    @property
    def authorization(self) -> str:
        return f"{self.token_type or 'apikey'} {self.token}"

    @property
    def organisation(self) -> str:
        """The pacing key: an API key is the organisation's, so every center of the org shares it."""
        return hashlib.sha256(f"{self.base_url}|{self.token}".encode()).hexdigest()[:24]


TokenSource = Callable[[bool], Awaitable[Credentials]]


class Pacer:
    """At most ``limit`` calls in any ``window`` seconds, and none while the vendor's bucket is empty."""

    def __init__(
        self,
        limit: int = DEFAULT_LIMIT,
        window: float = DEFAULT_WINDOW,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        share: float = 1.0,
    ) -> None:
        self.limit = _with_margin(limit)
        self.window = window
        # This process's part of the limit among replicas (settings.vendor_rate_share).
        self.share = share
        self._clock = clock
        self._sleep = sleep
        self._sent: collections.deque[float] = collections.deque()
        self._closed_until = 0.0
        self._lock = LaneLock()
        self.waited_seconds = 0.0

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = self._clock()
                while self._sent and now - self._sent[0] >= self.window:
                    self._sent.popleft()
                if now < self._closed_until:
                    wait = self._closed_until - now
                elif len(self._sent) < max(1, int(self.limit * self.share)):
                    self._sent.append(now)
                    return
                else:
                    wait = self.window - (now - self._sent[0])
                self.waited_seconds += wait
                heartbeat()
                await self._sleep(wait)

    def hold(self, seconds: float) -> None:
        """Nothing goes out for ``seconds`` (Retry-After, or an empty bucket until its refill)."""
        self._closed_until = max(self._closed_until, self._clock() + max(seconds, 0.0))

    def follow(self, headers: httpx.Headers) -> None:
        """Adopts ``Organization-RateLimit-Limit: 60;w=60;b=60`` (less a margin) and closes until
        ``RateLimit-Reset`` when ``RateLimit-Remaining`` reaches 0 (other clients share the bucket)."""
        announced = _limit_header(headers.get("Organization-RateLimit-Limit", ""))
        if announced is not None:
            self.limit, self.window = _with_margin(announced[0]), announced[1]
        try:
            remaining, reset = int(headers["RateLimit-Remaining"]), float(headers["RateLimit-Reset"])
        except (KeyError, ValueError):
            return
        if remaining <= 0:
            self.hold(reset)


def _with_margin(limit: int) -> int:
    # 5 % below the vendor's figure: calls sent inside our window can land in the next one of Zenoti's.
    return max(1, limit - max(1, limit // 20))


def _limit_header(value: str) -> tuple[int, float] | None:
    """``60;w=60;b=60`` -> (60, 60.0); None when absent or not of that shape."""
    head, *params = [part.strip() for part in value.split(";")]
    options = dict(p.split("=", 1) for p in params if "=" in p)
    try:
        limit = int(options.get("b", head))
        window = float(options["w"])
    except (KeyError, ValueError):
        return None
    return (limit, window) if limit > 0 and window > 0 else None


class Unpaced(Pacer):
    """For benchmarks against a sandbox whose limit is off (settings.vendor_pacing = False)."""

    async def acquire(self) -> None:
        return None

    def hold(self, seconds: float) -> None:
        return None

    def follow(self, headers: httpx.Headers) -> None:
        return None


class Pacers:
    """One pacer per organisation, shared by every activity of the worker that owns this."""

    def __init__(self, enabled: bool = True, factory: Callable[[], Pacer] | None = None, share: float = 1.0) -> None:
        self._enabled = enabled
        self._factory = factory or (lambda: Pacer(share=share))
        self._pacers: dict[str, Pacer] = {}

    def __call__(self, organisation: str) -> Pacer:
        if not self._enabled:
            return _UNPACED
        if organisation not in self._pacers:
            self._pacers[organisation] = self._factory()
        return self._pacers[organisation]


_UNPACED = Unpaced()


class ZenotiClient:
    """One activity's view of Zenoti: its credentials, fetched once and refreshed once per 401."""

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

    async def request(self, method: str, path: str, *, params: dict | None = None, json: Any = None) -> Any:
        creds = await self.credentials()
        refreshed = False
        response: httpx.Response | None = None
        for attempt in range(self._max_retries + 1):
            pacer = self._pacers(creds.organisation)
            await pacer.acquire()
            self.requests += 1
            try:
                response = await self._http.request(
                    method,
                    f"{creds.base_url.rstrip('/')}{path}",
                    params=params,
                    json=json,
                    headers={"Authorization": creds.authorization, "Accept": "application/json"},
                )
            except httpx.TransportError:
                # Reads and PUTs repeat safely; a repeated POST meets Zenoti's duplicate check.
                if attempt == self._max_retries:
                    raise ZenotiError(0, "VENDOR_UNAVAILABLE", "network error") from None
                await self._back_off(attempt)
                continue
            pacer.follow(response.headers)
            if response.status_code == 401 and not refreshed:
                creds = await self._refreshed(creds)
                refreshed = True
                continue
            if response.status_code == 429:
                pacer.hold(_retry_after(response.headers))
                continue
            if response.status_code in RETRYABLE_STATUSES:
                if attempt < self._max_retries:
                    await self._back_off(attempt)
                continue
            if response.status_code >= 400:
                raise ZenotiError(response.status_code, _reason(response.status_code), _message(response))
            try:
                return response.json()
            except ValueError:
                raise ZenotiMalformed(f"{method} {path.split('?')[0]} answered 200 without JSON") from None
        status = response.status_code if response is not None else 0
        raise ZenotiError(status, "VENDOR_UNAVAILABLE", "retries exhausted")

    async def _back_off(self, attempt: int) -> None:
        heartbeat()
        await asyncio.sleep(min(self._backoff_seconds * 2**attempt, 30.0))


def _retry_after(headers: httpx.Headers) -> float:
    """Retry-After (Zenoti sends it with every 429), else the bucket's reset, else a whole window."""
    for name in ("Retry-After", "RateLimit-Reset"):
        try:
            return max(float(headers[name]), 0.0)
        except (KeyError, ValueError):
            continue
    return DEFAULT_WINDOW


def _reason(status: int) -> str:
    return {
        400: "VENDOR_REJECTED",
        401: "VENDOR_UNAUTHORIZED",
        403: "VENDOR_FORBIDDEN",
        404: "VENDOR_NOT_FOUND",
        409: "VENDOR_CONFLICT",
        422: "VENDOR_REJECTED",
    }.get(status, "VENDOR_ERROR")


def _message(response: httpx.Response) -> str:
    """Zenoti's ``{"error": {"code", "message"}}`` or ASP.NET's ``{"Message"}``; long text is cut."""
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    message = None
    if isinstance(body, dict):
        error = body.get("error")
        message = error.get("message") or error.get("reason") if isinstance(error, dict) else None
        message = message or body.get("Message") or body.get("message")
    return str(message or f"HTTP {response.status_code}")[:300]
