"""The gateway's bound on request bodies: a body larger than ``gateway_max_body_bytes`` is answered
413 problem JSON before any route reads it (declared by Content-Length or found while streaming a
chunked one), so no caller can make the gateway hold more than that for one request."""

from __future__ import annotations

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.gateway.problems import PROBLEM


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._refuse(scope, receive, send)
            return
        # Read (up to the bound) before the app runs, then hand it the same bytes.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay([], message), send)
                return
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(chunks, None, receive), send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The rest of the body is read and dropped (up to a bound) so the client, still sending,
        # gets the answer instead of a reset connection.
        drained = 0
        while drained <= _DRAIN_BYTES:
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                break
            drained += len(message.get("body", b""))
        body = {
            "type": "about:blank",
            "title": "Content Too Large",
            "status": 413,
            "detail": f"the request body is larger than {self.max_bytes} bytes",
            "instance": "about:blank",
            "reason": "BODY_TOO_LARGE",
        }
        await JSONResponse(body, status_code=413, media_type=PROBLEM, headers={"Connection": "close"})(
            scope, receive, send
        )


_DRAIN_BYTES = 64 * 1024 * 1024


def _replay(chunks: list[bytes], final: Message | None, then: Receive | None = None) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            if final is not None:
                return final
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        if then is not None:
            return await then()  # after the body: the disconnect, when it comes
        return {"type": "http.disconnect"}

    return receive
