"""Admission control: the gateway serves at most ``max_in_flight`` requests at once; one more is
answered at once with 503 problem JSON and ``Retry-After``, before any route, token check or
backend call runs for it.

One event loop serves every request (and, in the embedded default, every service too). Past its
capacity a backlog builds in which every request waits behind all the others, until all of them
miss their callers' deadlines (the read benchmark, bench/gateway_reads.py, at twice its capacity:
timeouts, hardly a read answered). Refused at the door, the excess costs little, the requests
admitted are still answered, and callers learn when to come back (RFC 9110 15.6.4).

``/healthz`` is always answered: a busy gateway is alive, and a probe that failed under load would
have it restarted at its busiest. So are vendors' webhook deliveries (``/webhooks/...``): taking
one is a signature check and an insert into the config's inbox, which is the durable queue that
absorbs a burst, whereas a refused delivery waits on the vendor's retry policy (some retry only a
few times, some not on a 503), and the change it carries reaches the hub only at the next pull.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from services.gateway.problems import problem

ALWAYS_ADMITTED = frozenset({"/healthz"})
WEBHOOKS = "/webhooks/"


class Admission:
    def __init__(self, app: ASGIApp, max_in_flight: int, retry_after_seconds: int = 1) -> None:
        self.app = app
        self.max_in_flight = max_in_flight  # 0: no bound
        self.retry_after_seconds = retry_after_seconds
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not self.max_in_flight or path in ALWAYS_ADMITTED or path.startswith(WEBHOOKS):
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.max_in_flight:
            await self._refuse(scope, receive, send)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem(
            503,
            f"the gateway is serving as many requests as it can; retry in {self.retry_after_seconds} s",
            "about:blank",  # no route matched yet: the path as sent may carry what the caller typed
            reason="GATEWAY_BUSY",
        )
        response.headers["Retry-After"] = str(self.retry_after_seconds)
        headers = dict(scope.get("headers") or ())
        if headers.get(b"content-length", b"0") != b"0" or b"transfer-encoding" in headers:
            # Its body is not read: the connection cannot carry another request after it.
            response.headers["Connection"] = "close"
        await response(scope, receive, send)
