"""httpx client for the Salesforce REST API: the session from the connection service, the org's
daily API allowance (Sforce-Limit-Info on every answer), retries, and vendor errors.

Salesforce has no per-window rate limit: it has a rolling 24-hour allowance per org, reported on
every response, and answers 403 REQUEST_LIMIT_EXCEEDED (not 429) once it is spent. Everything that
calls the org shares that allowance, so the adapter slows down well before it runs out.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from temporalio.exceptions import ApplicationError

from libs.protos.concord.adapter.v1 import adapter_pb2
from services.adapters.common import SharedToken, current_lane, heartbeat

API_VERSION = "60.0"
DATA_PATH = f"/services/data/v{API_VERSION}"
# Names Concord on every call (Sforce-Call-Options), so Change Data Capture's changeOrigin of
# Concord's own writes ends `;client=concord-hub`: how a CDC receiver tells them from users' edits.
CONCORD_CLIENT = "concord-hub"
RETRYABLE_STATUSES = {500, 502, 503, 504}
_LIMIT_INFO = re.compile(r"api-usage=(\d+)/(\d+)")
_ERROR_CODE = re.compile(r"^[A-Z][A-Z0-9_]{0,79}$")


def error_code(value: Any) -> str:
    """Salesforce's errorCode / statusCode when it looks like one (never free text)."""
    return value if isinstance(value, str) and _ERROR_CODE.match(value) else "VENDOR_ERROR"


def json_body(response: httpx.Response, what: str) -> Any:
    """A success answer's JSON; one that is not JSON is a vendor glitch worth a retry."""
    try:
        return response.json()
    except ValueError:
        raise ApplicationError(
            f"Salesforce answered {what} with something that is not JSON", type="VendorMalformedResponse"
        ) from None


class SalesforceError(Exception):
    """A refusal of a whole request: the HTTP status, Salesforce's errorCode and the fields it names.
    Salesforce's message is kept out: it can quote record values."""

    def __init__(self, status: int, code: str, fields: list[str]) -> None:
        super().__init__(f"{code} ({status})")
        self.status = status
        self.code = code
        self.fields = fields

    @classmethod
    def of(cls, response: httpx.Response) -> SalesforceError:
        try:
            body = response.json()
        except ValueError:
            body = None
        first = body[0] if isinstance(body, list) and body and isinstance(body[0], dict) else {}
        fields = first.get("fields")
        names = [f for f in fields if isinstance(f, str)] if isinstance(fields, list) else []
        return cls(response.status_code, error_code(first.get("errorCode")), names)


@dataclass
class Credentials:
    access_token: str
    token_type: str
    instance_url: str


TokenSource = Callable[[bool], Awaitable[Credentials]]


@dataclass(frozen=True)
class AllowancePolicy:
    # Above this share of the daily allowance used, requests are spaced to spread what is left.
    slow_down_at: float = 0.80
    # At this share no request is sent: the org's own users and other integrations need the rest.
    stop_at: float = 0.95
    # The allowance is a rolling 24 hours: what is left is spread over one window.
    window_seconds: float = 86_400.0
    # A longer wait is not spent holding an activity slot: the activity fails and retries later.
    max_pause_seconds: float = 30.0
    # How long the adapter leaves the org alone once it is at stop_at or refused with REQUEST_LIMIT_EXCEEDED.
    backoff: timedelta = timedelta(minutes=15)
    # Lower lanes stop sooner, keeping the last of the allowance for real-time and users' syncs.
    scheduled_stop_at: float = 0.90
    backfill_stop_at: float = 0.85

    def stop_for(self, lane: int) -> float:
        """The share of the allowance at which requests of this governor lane are no longer sent."""
        if lane == adapter_pb2.LANE_BACKFILL:
            return self.backfill_stop_at
        if lane == adapter_pb2.LANE_SCHEDULED:
            return self.scheduled_stop_at
        return self.stop_at


class Allowance:
    """One org's daily API allowance as Salesforce last reported it, and the pacing it implies;
    shared by every activity of the worker that calls that org."""

    def __init__(
        self,
        policy: AllowancePolicy,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.policy = policy
        self._clock = clock
        self._sleep = sleep
        self._lock = asyncio.Lock()
        self.used = 0
        self.max = 0
        self._next_slot = 0.0
        self._blocked_until = 0.0
        self.waited_seconds = 0.0

    @property
    def share_used(self) -> float:
        return self.used / self.max if self.max else 0.0

    def gap(self) -> float:
        """Seconds between requests: none below slow_down_at, else one window over what is left."""
        if self.share_used < self.policy.slow_down_at:
            return 0.0
        left = self.policy.stop_at * self.max - self.used
        return self.policy.window_seconds / left if left > 0 else self.policy.window_seconds

    def observe(self, headers: httpx.Headers) -> None:
        found = _LIMIT_INFO.search(headers.get("Sforce-Limit-Info", ""))
        if not found or int(found.group(2)) <= 0:
            return
        self.used, self.max = int(found.group(1)), int(found.group(2))
        if self.share_used >= self.policy.stop_at:
            self._block()

    def spent(self) -> None:
        """Salesforce answered REQUEST_LIMIT_EXCEEDED."""
        self._block()

    def _block(self) -> None:
        self._blocked_until = self._clock() + self.policy.backoff.total_seconds()

    async def admit(self) -> None:
        async with self._lock:
            now = self._clock()
            if now < self._blocked_until:
                raise ApplicationError(
                    f"the org's daily API allowance is {self.share_used:.0%} used: leaving the rest to its users",
                    type="VendorAllowanceLow",
                    next_retry_delay=timedelta(seconds=self._blocked_until - now),
                )
            if self.max and self.share_used >= self.policy.stop_for(current_lane.get()):
                raise ApplicationError(
                    f"the org's daily API allowance is {self.share_used:.0%} used: kept for real-time and users' syncs",
                    type="VendorAllowanceLow",
                    next_retry_delay=self.policy.backoff,
                )
            gap = self.gap()
            if not gap:
                return
            slot = max(now, self._next_slot)
            wait = slot - now
            if wait > self.policy.max_pause_seconds:
                raise ApplicationError(
                    f"the org's daily API allowance is {self.share_used:.0%} used: pacing requests",
                    type="VendorAllowanceLow",
                    next_retry_delay=timedelta(seconds=wait),
                )
            self._next_slot = slot + gap
        if wait > 0:
            self.waited_seconds += wait
            heartbeat()
            await self._sleep(wait)


class Allowances:
    """One Allowance per org (instance URL) for the adapter's lifetime."""

    def __init__(self, policy: AllowancePolicy) -> None:
        self.policy = policy
        self._by_org: dict[str, Allowance] = {}

    def __call__(self, instance_url: str) -> Allowance:
        if instance_url not in self._by_org:
            self._by_org[instance_url] = Allowance(self.policy)
        return self._by_org[instance_url]


class SalesforceClient:
    """One activity's view of the org: its session, fetched once and refreshed once per 401."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        tokens: TokenSource,
        allowances: Allowances,
        max_retries: int = 8,
        backoff_seconds: float = 0.5,
    ) -> None:
        self._http = http
        self._token = SharedToken(tokens)
        self._allowances = allowances
        self._max_retries = max_retries
        self._backoff_seconds = backoff_seconds
        self.requests = 0

    async def credentials(self) -> Credentials:
        return await self._token.current()

    async def _refreshed(self, rejected: Credentials) -> Credentials:
        # Concurrent requests that met a 401 with the same token share one forced refresh.
        return await self._token.refreshed(rejected)

    async def request(self, method: str, path: str, *, json: Any = None, params: dict | None = None) -> httpx.Response:
        """Sends one request (a path under the instance URL), retrying what is safe to retry.
        Every request the adapter makes is a read, an upsert on an external id, an update by id or a
        delete by id (a record already gone counts as deleted)."""
        creds = await self.credentials()
        allowance = self._allowances(creds.instance_url)
        refreshed = False
        response: httpx.Response | None = None
        for attempt in range(self._max_retries + 1):
            await allowance.admit()
            self.requests += 1
            try:
                response = await self._http.request(
                    method,
                    f"{creds.instance_url.rstrip('/')}{path}",
                    json=json,
                    params=params,
                    headers={
                        "Authorization": f"{creds.token_type or 'Bearer'} {creds.access_token}",
                        # Names Concord in Change Data Capture's changeOrigin: echo suppression.
                        "Sforce-Call-Options": f"client={CONCORD_CLIENT}",
                    },
                )
            except httpx.TransportError:
                if attempt == self._max_retries:
                    raise ApplicationError("Salesforce could not be reached", type="VendorUnavailable") from None
                await self._back_off(attempt)
                continue
            allowance.observe(response.headers)
            if response.status_code == 401:
                if refreshed:
                    raise ApplicationError("Salesforce refused a freshly issued session", type="VendorUnauthorized")
                creds = await self._refreshed(creds)
                refreshed = True
                continue
            if response.status_code == 403 and SalesforceError.of(response).code == "REQUEST_LIMIT_EXCEEDED":
                allowance.spent()
                # Never a record's fault, and seconds of waiting will not help: Temporal retries much later.
                raise ApplicationError(
                    "Salesforce refused the request: REQUEST_LIMIT_EXCEEDED",
                    type="VendorRateLimited",
                    next_retry_delay=allowance.policy.backoff,
                )
            if response.status_code in RETRYABLE_STATUSES:
                if attempt == self._max_retries:
                    break
                await self._back_off(attempt)
                continue
            if response.status_code >= 400:
                raise SalesforceError.of(response)
            return response
        status = response.status_code if response is not None else 0
        raise ApplicationError(f"Salesforce kept failing (HTTP {status})", type="VendorUnavailable")

    async def _back_off(self, attempt: int) -> None:
        heartbeat()
        await asyncio.sleep(min(self._backoff_seconds * 2**attempt, 30.0))
