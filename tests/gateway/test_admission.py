"""Admission control (services/gateway/admission.py): past max_in_flight requests at once, the next
is refused at once, 503 problem JSON with Retry-After, and admitted again once a place frees."""

from __future__ import annotations

import asyncio

import httpx
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from services.gateway.admission import Admission
from services.gateway.settings import GatewaySettings
from services.supervisor import Stack
from tests.gateway.conftest import assert_problem


class Held:
    """An app whose requests wait until released (a slow backend), except /healthz."""

    def __init__(self, expected: int = 0) -> None:
        self.entered = 0
        self.all_in = asyncio.Event()  # set once ``expected`` requests are in
        self.expected = expected
        self.release = asyncio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] != "/healthz":
            self.entered += 1
            if self.entered >= self.expected:
                self.all_in.set()
            await self.release.wait()
        await JSONResponse({"path": scope["path"]})(scope, receive, send)


async def _entered(held: Held, count: int) -> None:
    held.expected, held.all_in = count, asyncio.Event()
    if held.entered < count:
        await held.all_in.wait()


async def test_past_its_bound_a_request_is_refused_at_once_and_admitted_once_a_place_frees() -> None:
    held = Held(expected=2)
    admission = Admission(held, max_in_flight=2, retry_after_seconds=3)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=admission), base_url="http://gateway") as http:
        waiting = [asyncio.create_task(http.get(f"/patients/p-{i}")) for i in range(2)]
        await asyncio.wait_for(held.all_in.wait(), 10)

        refused = await http.get("/patients/p-2")
        body = assert_problem(refused, 503, reason="GATEWAY_BUSY")
        assert refused.headers["retry-after"] == "3"
        assert body["instance"] == "about:blank" and "p-2" not in refused.text
        assert "connection" not in refused.headers  # no body left unread: the connection stays usable
        posted = await http.post("/patients", json={"resourceType": "Patient"})
        assert_problem(posted, 503, reason="GATEWAY_BUSY")
        assert posted.headers["connection"] == "close"  # its body was never read
        assert held.entered == 2  # neither reached the app
        # A busy gateway is still alive, and still takes vendors' webhook deliveries (into the inbox).
        assert (await http.get("/healthz")).status_code == 200
        webhook = asyncio.create_task(http.post("/webhooks/ghl", json={"type": "ContactUpdate"}))
        await asyncio.wait_for(_entered(held, 3), 10)

        held.release.set()
        assert [(await task).status_code for task in [*waiting, webhook]] == [200, 200, 200]
        assert admission.in_flight == 0
        assert (await http.get("/patients/p-3")).json() == {"path": "/patients/p-3"}


async def test_a_bound_of_zero_admits_everything() -> None:
    held = Held()
    held.release.set()
    admission = Admission(held, max_in_flight=0)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=admission), base_url="http://gateway") as http:
        answers = await asyncio.gather(*(http.get(f"/patients/p-{i}") for i in range(20)))
    assert {answer.status_code for answer in answers} == {200}


def test_the_bound_is_a_setting(monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("CONCORD_GATEWAY_MAX_IN_FLIGHT", "7")
    monkeypatch.setenv("CONCORD_GATEWAY_RETRY_AFTER_SECONDS", "2")
    assert (GatewaySettings().max_in_flight, GatewaySettings().retry_after_seconds) == (7, 2)


def test_the_served_gateway_is_behind_admission_control(stack: Stack) -> None:
    served = stack.gateway.asgi.server.config.app  # type: ignore[union-attr]
    assert isinstance(served, Admission)
    assert served.max_in_flight == GatewaySettings().max_in_flight > 0
