"""The GoHighLevel harness of the shared adapter suite: the GHL sandbox over real HTTP, the real
registry and connection services over gRPC, and a config connected through GHL's OAuth code flow
(tests/adapters/conftest.py runs it as a user's browser would)."""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass, field
from typing import Any

import httpx

from libs.asgi import RunningAsgi, serve_asgi
from libs.settings import Settings
from sandbox.ghl.app import create_app as create_ghl_sandbox
from sandbox.ghl.settings import AppRegistration, GhlSandboxSettings
from sandbox.ghl.state import Sandbox as GhlSandboxState
from services.adapters.ghl import GhlAdapter
from tests.adapters.conftest import CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, AdapterHarness, _connect, _start_services

VENDOR = "ghl"
RECORDS_PER_WRITE_CALL = 1  # GHL has no batch write for contacts


@dataclass
class GhlHarness(AdapterHarness):
    location_id: str = ""
    sandbox: GhlSandboxState | None = field(default=None, repr=False)  # the simulator's memory

    def record_id(self, record: dict) -> str:
        return record["id"]

    async def _admin(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.http.request(method, f"{self.sandbox_url}/_sandbox{path}", **kwargs)
        assert response.status_code < 300, response.text
        return response.json()

    async def seed(self, count: int) -> list[str]:
        return (await self._admin("POST", "/seed", json={"locationId": self.location_id, "count": count}))["ids"]

    async def edit(self, external_id: str) -> None:
        await self._admin("PATCH", f"/contacts/{external_id}", json={"city": "Edited Springs"})

    async def stored(self) -> dict[str, dict]:
        listed = await self._admin("GET", "/contacts", params={"locationId": self.location_id})
        return {c["id"]: c for c in listed["contacts"]}

    def new_records(self, count: int) -> list[dict]:
        return [
            {
                "firstName": f"Adapter{i}",
                "lastName": "Suite",
                "email": f"adapter.suite.{i}@example.com",
                "phone": f"+1617555{i:04d}",
                "dateOfBirth": "1980-02-29",
                "gender": "female",
                "city": "Boston",
                "country": "US",
            }
            for i in range(count)
        ]

    def changed(self, record: dict) -> dict:
        return {**record, "city": f"Moved {record['firstName']}"}

    def changed_value(self, stored: dict) -> Any:
        return stored.get("city")

    def malformed(self, record: dict) -> list[tuple[dict, str]]:
        return [
            ({**record, "email": "not-an-email"}, "not-an-email"),
            ({**record, "favouriteColour": "teal-and-violet"}, "teal-and-violet"),
        ]

    async def expire_access_tokens(self) -> None:
        await self._admin("POST", "/faults", json={"expire_all_tokens": True})

    async def revoke_tokens(self) -> None:
        await self._admin("POST", "/faults", json={"revoke_tokens": True})

    async def live_refresh_tokens(self) -> set[str]:
        return set(self.sandbox.refresh_tokens)

    async def token_requests(self) -> int:
        return (await self._admin("GET", "/stats")).get("POST /oauth/token", 0)

    async def inject(self, *, server_error_rate: float = 0.0, malformed_pages: bool = False) -> None:
        await self._admin(
            "POST", "/faults", json={"status_5xx_rate": server_error_rate, "malformed_next_page": malformed_pages}
        )

    async def clear_faults(self) -> None:
        await self._admin("DELETE", "/faults")


async def open_harness(
    stack: contextlib.AsyncExitStack, settings: Settings, http: httpx.AsyncClient, rate_limit: tuple[int, float] | None
) -> GhlHarness:
    limits = {} if rate_limit is None else {"burst_limit": rate_limit[0], "burst_window_ms": int(rate_limit[1] * 1000)}
    app = create_ghl_sandbox(
        GhlSandboxSettings(apps=[AppRegistration(CLIENT_ID, CLIENT_SECRET, [REDIRECT_URI])], **limits)
    )
    served: RunningAsgi = await serve_asgi(app)
    stack.push_async_callback(served.stop)
    settings = await _start_services(stack, settings, "ghl", served.url)
    state: GhlSandboxState = app.state.sandbox
    # Retries after a 5xx back off 20 ms, not 0.5 s: the suite waits for retries, not for outages.
    adapter = functools.partial(GhlAdapter, backoff_seconds=0.02)
    return GhlHarness(
        **await _connect(stack, settings, "ghl", served.url, http, adapter),
        location_id=state.apps[CLIENT_ID].location_id,
        sandbox=state,
    )
