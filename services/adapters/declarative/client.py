"""httpx client driven by a declarative definition: auth header, pacing, retries, vendor errors.

- Pacing: a sliding window of ``rate_limit.requests`` per ``rate_limit.per_seconds``, shared by
  every activity of the worker for one connection (or one integration, by ``rate_limit.scope``).
- 401: one forced refresh through the connection service, shared by the requests that met it;
  a 401 with the refreshed credentials fails the activity as non-retryable NotConnected.
- 429: waits Retry-After (seconds or HTTP date); one longer than a minute hands the wait to
  Temporal (next_retry_delay) instead of sleeping past the heartbeat timeout.
- 5xx and network errors: exponential backoff; every request sent is safe to repeat (reads,
  updates by id, creates under an idempotency key).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
from temporalio.exceptions import ApplicationError

from services.adapters.common import Pacer, SharedToken, Unpaced, heartbeat
from services.adapters.declarative.definition import Declarative, get_path

RETRYABLE_STATUSES = {500, 502, 503, 504}
# A Retry-After longer than this is waited out by Temporal's retry, not inside the activity.
LONGEST_WAIT_SECONDS = 60.0
REASONS = {
    400: "VENDOR_BAD_REQUEST",
    403: "VENDOR_FORBIDDEN",
    404: "VENDOR_NOT_FOUND",
    409: "VENDOR_CONFLICT",
    422: "VENDOR_REJECTED",
}


class VendorError(Exception):
    """A 4xx the client cannot retry away (not 401/429). Carries the vendor's message, no data."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.reason = REASONS.get(status, "VENDOR_ERROR")
        self.message = message
        super().__init__(f"{self.reason} ({status})")


@dataclass
class Credentials:
    token: str
    base_url: str


TokenSource = Callable[[bool], Awaitable[Credentials]]


class Pacers:
    """One pacer per (integration, connection) or per integration: shared by the worker's activities."""

    def __init__(self, enabled: bool = True, share: float = 1.0) -> None:
        self._enabled = enabled
        self._share = share
        self._pacers: dict[tuple[str, str], Pacer] = {}

    def __call__(self, definition: Declarative, config_id: str) -> Pacer:
        limit = definition.rate_limit
        if not self._enabled or limit is None:
            return _UNPACED
        key = (definition.integration_type, config_id if limit.scope == "connection" else "")
        pacer = self._pacers.get(key)
        if pacer is None or (pacer.limit, pacer.interval) != (limit.requests, limit.per_seconds):
            pacer = self._pacers[key] = Pacer(limit.requests, limit.per_seconds, share=self._share)
        return pacer


_UNPACED = Unpaced()


class DeclarativeClient:
    """One activity's view of the vendor: its credentials, fetched once and refreshed once per 401."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        definition: Declarative,
        tokens: TokenSource,
        pacer: Pacer,
        max_retries: int = 8,
        backoff_seconds: float = 0.5,
    ) -> None:
        self.definition = definition
        self._http = http
        self._token = SharedToken(tokens)
        self._pacer = pacer
        self._max_retries = max_retries
        self._backoff_seconds = backoff_seconds
        self.requests = 0

    async def credentials(self) -> Credentials:
        return await self._token.current()

    async def _refreshed(self, rejected: Credentials) -> Credentials:
        # Concurrent requests that met a 401 with the same token share one forced refresh.
        return await self._token.refreshed(rejected)

    def base_url(self, creds: Credentials) -> str:
        return (creds.base_url or self.definition.api_base_url).rstrip("/")

    def same_origin(self, creds: Credentials, url: str) -> bool:
        """A vendor link is followed only on the API host: the credentials go nowhere else."""
        base, other = urlsplit(self.base_url(creds)), urlsplit(url)
        return (base.scheme, base.netloc) == (other.scheme, other.netloc)

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str | int] | None = None,
        json: Any = None,
        headers: dict[str, str] | None = None,
        absolute: bool = False,
    ) -> httpx.Response:
        """A 2xx response; VendorError for a 4xx about the request; ApplicationError otherwise."""
        creds = await self.credentials()
        refreshed = False
        response: httpx.Response | None = None
        for attempt in range(self._max_retries + 1):
            await self._pacer.acquire()
            self.requests += 1
            url = path if absolute else f"{self.base_url(creds)}{path}"
            try:
                response = await self._http.request(
                    method,
                    url,
                    params=params,
                    json=json,
                    headers={
                        "Accept": "application/json",
                        **self.definition.headers,
                        **(headers or {}),
                        **self.definition.auth.headers(creds.token),
                    },
                )
            except httpx.TransportError:
                if attempt == self._max_retries:
                    raise ApplicationError("the vendor cannot be reached", type="VendorUnavailable") from None
                await self._sleep(self._backoff(attempt))
                continue
            if response.status_code == 401:
                if refreshed:
                    raise ApplicationError(
                        "the vendor refuses the connection's credentials", type="NotConnected", non_retryable=True
                    )
                creds = await self._refreshed(creds)
                refreshed = True
                continue
            if response.status_code == 429 or response.status_code in RETRYABLE_STATUSES:
                if attempt == self._max_retries:
                    break
                wait = _retry_after(response.headers) if response.status_code == 429 else None
                if wait is not None and wait > LONGEST_WAIT_SECONDS:
                    raise ApplicationError(
                        "the vendor's rate limit is spent",
                        type="VendorRateLimited",
                        next_retry_delay=timedelta(seconds=wait),
                    )
                await self._sleep(self._backoff(attempt) if wait is None else wait)
                continue
            if response.status_code >= 400:
                raise VendorError(response.status_code, self._message(response))
            return response
        status = response.status_code if response is not None else 0
        raise ApplicationError(f"retries exhausted (last HTTP {status})", type="VendorUnavailable")

    def _backoff(self, attempt: int) -> float:
        return min(self._backoff_seconds * 2**attempt, 30.0)

    async def _sleep(self, seconds: float) -> None:
        heartbeat()
        await asyncio.sleep(seconds)

    def _message(self, response: httpx.Response) -> str:
        fallback = f"HTTP {response.status_code}"
        try:
            body = response.json()
        except ValueError:
            return fallback
        found, message = (
            get_path(body, self.definition.error_message) if self.definition.error_message else (False, None)
        )
        if isinstance(message, list):
            message = "; ".join(str(m) for m in message)
        return str(message)[:300] if found and message else fallback


def _retry_after(headers: httpx.Headers) -> float | None:
    value = headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        return max((parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds(), 0.0)
    except (TypeError, ValueError):
        return None
