"""httpx client for one FHIR R4 server: bearer tokens from the connection service (one forced
refresh per 401), Retry-After on 429 and 503, backoff on other 5xx and network errors, and
OperationOutcome errors reduced to codes and element paths."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from services.adapters.common import SharedToken, heartbeat

FHIR_JSON = "application/fhir+json"
RETRYABLE_STATUSES = {500, 502, 503, 504}
# A longer Retry-After fails the activity instead: Temporal's backoff is the better place to wait.
MAX_WAIT_SECONDS = 60.0


class FhirError(Exception):
    """An answer the client could not retry away: status, a stable reason and the OperationOutcome's
    codes and paths (diagnostics may quote values: callers cut them before they leave the adapter)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{reason} ({status})")
        self.status = status
        self.reason = reason
        self.message = message


@dataclass
class Credentials:
    access_token: str = field(repr=False)
    token_type: str
    base_url: str  # the tenant's [base], without a trailing slash


TokenSource = Callable[[bool], Awaitable[Credentials]]


class FhirClient:
    """One activity's view of the server: credentials fetched once, refreshed once per rejected token."""

    def __init__(
        self, http: httpx.AsyncClient, tokens: TokenSource, max_retries: int = 8, backoff_seconds: float = 0.5
    ) -> None:
        self._http = http
        self._token = SharedToken(tokens)
        self._max_retries = max_retries
        self._backoff_seconds = backoff_seconds
        # After a 429 every request of this client waits until then, not only the one refused.
        self._resume_at = 0.0
        self.requests = 0

    async def credentials(self) -> Credentials:
        return await self._token.current()

    async def _refreshed(self, rejected: Credentials) -> Credentials:
        # Concurrent requests that met a 401 with the same token share one forced refresh.
        return await self._token.refreshed(rejected)

    async def send(
        self,
        method: str,
        target: str,
        *,
        params: dict[str, str] | None = None,
        json: Any = None,
        headers: dict[str, str] | None = None,
        accept: Collection[int] = (),
    ) -> httpx.Response:
        """``target`` is a path under [base] or an absolute URL the server gave (a next link).
        Returns 2xx answers and those in ``accept``; raises FhirError for the rest."""
        creds = await self.credentials()
        url = _resolve(creds.base_url, target)
        refreshed = False
        response: httpx.Response | None = None
        for attempt in range(self._max_retries + 1):
            await self._wait_for_window()
            self.requests += 1
            try:
                response = await self._http.request(
                    method,
                    url,
                    params=params,
                    json=json,
                    headers={
                        "Authorization": f"{creds.token_type} {creds.access_token}",
                        "Accept": FHIR_JSON,
                        **({"Content-Type": FHIR_JSON} if json is not None else {}),
                        **(headers or {}),
                    },
                )
            except httpx.TransportError:
                # Every request here is safe to repeat: reads, conditional creates, If-Match updates, deletes.
                if attempt == self._max_retries:
                    raise FhirError(0, "VENDOR_UNAVAILABLE", "network errors on every attempt") from None
                await self._sleep(self._backoff(attempt))
                continue
            status = response.status_code
            if status == 401 and not refreshed:
                creds = await self._refreshed(creds)
                refreshed = True
                continue
            if status == 429 or status in RETRYABLE_STATUSES:
                wait = _retry_after(response.headers)
                if wait is None:
                    wait = 1.0 if status == 429 else self._backoff(attempt)
                if attempt == self._max_retries or wait > MAX_WAIT_SECONDS:
                    break
                if status == 429:
                    self._resume_at = max(self._resume_at, time.monotonic() + wait)
                await self._sleep(wait)
                continue
            if status < 400 or status in accept:
                return response
            raise FhirError(status, reason_for(status), outcome_text(response))
        status = response.status_code if response is not None else 0
        reason = "VENDOR_RATE_LIMITED" if status == 429 else "VENDOR_UNAVAILABLE"
        raise FhirError(status, reason, "retries exhausted")

    def _backoff(self, attempt: int) -> float:
        return min(self._backoff_seconds * 2**attempt, 30.0)

    async def _wait_for_window(self) -> None:
        wait = self._resume_at - time.monotonic()
        if wait > 0:
            await self._sleep(wait)

    async def _sleep(self, seconds: float) -> None:
        heartbeat()
        await asyncio.sleep(seconds)


def _resolve(base_url: str, target: str) -> str:
    url = urljoin(base_url + "/", target)
    # The bearer token goes only to the server it was issued for, whatever a next link says.
    if urlsplit(url)[:2] != urlsplit(base_url)[:2]:
        raise FhirError(0, "VENDOR_FOREIGN_LINK", "a link points outside the FHIR server")
    return url


def _retry_after(headers: httpx.Headers) -> float | None:
    value = headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        return max(parsedate_to_datetime(value).timestamp() - time.time(), 0.0)
    except (TypeError, ValueError):
        return None


def reason_for(status: int) -> str:
    return {
        400: "VENDOR_BAD_REQUEST",
        401: "VENDOR_UNAUTHORIZED",
        403: "VENDOR_FORBIDDEN",
        404: "VENDOR_NOT_FOUND",
        405: "VENDOR_NOT_SUPPORTED",
        409: "VENDOR_CONFLICT",
        410: "VENDOR_GONE",
        412: "VENDOR_PRECONDITION_FAILED",
        422: "VENDOR_REJECTED",
    }.get(status, "VENDOR_ERROR")


def outcome_text(response: httpx.Response, scrub: Callable[[str], str] = str) -> str:
    """The OperationOutcome's issues as "code at Element.path: diagnostics" (diagnostics through
    ``scrub``), or the HTTP status."""
    try:
        body = response.json()
    except ValueError:
        body = None
    issues = body.get("issue") if isinstance(body, dict) else None
    parts = []
    for issue in issues if isinstance(issues, list) else []:
        if not isinstance(issue, dict):
            continue
        where = issue.get("expression") or issue.get("location") or []
        text = str(issue.get("code") or "error")
        if isinstance(where, list) and where:
            text += " at " + ", ".join(str(w) for w in where)
        if issue.get("diagnostics"):
            text += f": {scrub(str(issue['diagnostics']))}"
        parts.append(text)
    return ("; ".join(parts) or f"HTTP {response.status_code}")[:500]
