"""What every adapter shares: its access token from the connection service, heartbeats while it
waits, and vendor messages with record values cut out."""

from __future__ import annotations

import asyncio
import collections
import contextvars
import heapq
import itertools
import re
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Generic, TypeVar

from google.protobuf import struct_pb2
from temporalio import activity
from temporalio.exceptions import ApplicationError

from libs.errors import ConcordError, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from libs.grpc_client import call
from libs.protos.concord.adapter.v1 import adapter_pb2 as pb
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


# The rate governor's lane of the activity running (adapter Lane), set by the worker from the
# request (services/adapters/worker.py): every pacer serves its waiters by lane.
current_lane: contextvars.ContextVar[int] = contextvars.ContextVar("concord_lane", default=pb.LANE_USER)


class LaneLock:
    """A lock handed to the waiter of the lowest lane (real time, a user's, scheduled, backfill),
    first come first served within a lane: while a vendor's window is full, a real-time write that
    arrives after a backfill page's requests still goes before them."""

    def __init__(self) -> None:
        self._waiting: list[tuple[int, int]] = []
        self._held = False
        self._turns = asyncio.Condition()
        self._order = itertools.count()

    async def __aenter__(self) -> None:
        me = (current_lane.get() or pb.LANE_USER, next(self._order))
        async with self._turns:
            heapq.heappush(self._waiting, me)
            try:
                await self._turns.wait_for(lambda: not self._held and self._waiting[0] == me)
            except BaseException:
                self._waiting.remove(me)
                heapq.heapify(self._waiting)
                self._turns.notify_all()
                raise
            heapq.heappop(self._waiting)
            self._held = True

    async def __aexit__(self, *exc: object) -> None:
        async with self._turns:
            self._held = False
            self._turns.notify_all()

    @property
    def waiting(self) -> int:
        return len(self._waiting)


class Pacer:
    """A sliding-window limiter: at most ``limit`` requests in any ``interval`` seconds, and none
    while held (the vendor said its bucket is empty); waiters are served by lane (LaneLock).

    ``share`` is this process's part of the limit when several replicas of a vendor's worker call
    the same account (settings.vendor_rate_share = 1 / replicas)."""

    def __init__(
        self,
        limit: int,
        interval: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        share: float = 1.0,
    ) -> None:
        self.limit = limit
        self.interval = interval
        self.share = share
        self._clock = clock
        self._sleep = sleep
        self._sent: collections.deque[float] = collections.deque()
        self._closed_until = 0.0
        self._lock = LaneLock()
        self.waited_seconds = 0.0

    @property
    def capacity(self) -> int:
        """Requests this process may send per window."""
        return max(1, int(self.limit * self.share))

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = self._clock()
                while self._sent and now - self._sent[0] >= self.interval:
                    self._sent.popleft()
                if now < self._closed_until:
                    wait = self._closed_until - now
                elif len(self._sent) < self.capacity:
                    self._sent.append(now)
                    return
                else:
                    wait = self.interval - (now - self._sent[0])
                self.waited_seconds += wait
                heartbeat()
                await self._sleep(wait)

    def hold(self, seconds: float) -> None:
        """Nothing goes out for ``seconds``: the vendor's shared bucket is empty (other replicas
        or other clients of the account spent it), or it answered 429."""
        self._closed_until = max(self._closed_until, self._clock() + max(seconds, 0.0))

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

    def hold(self, seconds: float) -> None:
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
