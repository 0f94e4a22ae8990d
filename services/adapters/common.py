"""What every adapter shares: its access token from the connection service, heartbeats while it
waits, and vendor messages with record values cut out."""

from __future__ import annotations

import asyncio
import collections
import re
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Generic, TypeVar

from google.protobuf import struct_pb2
from temporalio import activity
from temporalio.exceptions import ApplicationError

from libs.errors import ConcordError, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from libs.grpc_client import call
from libs.protos.concord.connection.v1 import connection_pb2, connection_pb2_grpc

C = TypeVar("C")


async def access_token(
    connections: connection_pb2_grpc.ConnectionServiceStub, config_id: str, force: bool
) -> connection_pb2.GetAccessTokenResponse:
    """The config's token; ``force`` after a vendor 401. No usable connection (never made,
    expired, a revoked key, disconnected) fails the activity for good: retrying cannot help."""
    try:
        return await call(
            connections.GetAccessToken,
            connection_pb2.GetAccessTokenRequest(config_id=config_id, force_refresh=force),
        )
    except (FailedPrecondition, NotFound, InvalidArgument, PermissionDenied) as error:
        raise ApplicationError(error.reason, type="NotConnected", non_retryable=True) from None
    except ConcordError as error:
        raise ApplicationError(error.reason, type="ConnectionUnavailable") from None


def heartbeat() -> None:
    """Tells Temporal a long wait (pacing, backoff) is still alive."""
    if activity.in_activity():
        activity.heartbeat()


def struct(record: dict) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(record)
    return message


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def without_values(message: str, record: dict) -> str:
    """Vendor messages name fields, not values; should one ever quote a value, it is cut out (PHI)."""
    for value in sorted({v.strip() for v in _strings(record) if len(v.strip()) >= 2}, key=len, reverse=True):
        message = re.sub(rf"(?<!\w){re.escape(value)}(?!\w)", "[value]", message, flags=re.IGNORECASE)
    return message


class Pacer:
    """A sliding-window limiter: at most ``limit`` requests in any ``interval`` seconds."""

    def __init__(
        self,
        limit: int,
        interval: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.limit = limit
        self.interval = interval
        self._clock = clock
        self._sleep = sleep
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
                heartbeat()
                await self._sleep(wait)

    def follow(self, headers: Any) -> None:
        """Adopts the limit a vendor announces in its response headers; vendors that announce one
        override this."""
        return None


class Unpaced(Pacer):
    """For benchmarks against a sandbox whose limit is off (settings.vendor_pacing = False)."""

    def __init__(self) -> None:
        super().__init__(limit=0, interval=0.0)

    async def acquire(self) -> None:
        return None

    def follow(self, headers: Any) -> None:
        return None


class SharedToken(Generic[C]):
    """One activity's credentials: fetched once, and after a vendor 401 refreshed once for all
    the requests that met it with the same token."""

    def __init__(self, tokens: Callable[[bool], Awaitable[C]]) -> None:
        self._tokens = tokens
        self._creds: C | None = None
        self._lock = asyncio.Lock()

    async def current(self) -> C:
        async with self._lock:
            if self._creds is None:
                self._creds = await self._tokens(False)
            return self._creds

    async def refreshed(self, rejected: C) -> C:
        async with self._lock:
            if self._creds is rejected:
                self._creds = await self._tokens(True)
            return self._creds
