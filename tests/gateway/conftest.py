"""One full stack (Temporal dev server, every service, the GHL sandbox, the gateway) for the
gateway tests, on SQLite. Each test works in a practice of its own."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from libs.settings import Settings
from services.supervisor import Stack, start_stack

PROBLEM_FIELDS = {"type", "title", "status", "detail", "instance"}


@pytest.fixture(scope="package")
async def stack(tmp_path_factory: pytest.TempPathFactory, temporal_binary: str) -> AsyncIterator[Stack]:
    running = await start_stack(Settings(data_dir=tmp_path_factory.mktemp("gateway")), ephemeral_ports=True)
    yield running
    await running.stop()


@dataclass
class Client:
    """A practice of its own and tokens for each role in it."""

    stack: Stack
    http: httpx.AsyncClient
    practice_id: str

    def headers(self, role: str = "admin") -> dict[str, str]:
        token = self.stack.gateway.issuer.mint(f"{role}-user", self.practice_id, role)  # type: ignore[union-attr]
        return {"Authorization": f"Bearer {token}"}

    @property
    def sandbox(self) -> str:
        return self.stack.sandboxes["ghl"].url


@pytest.fixture
async def client(stack: Stack) -> AsyncIterator[Client]:
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=60) as http:
        yield Client(stack, http, f"p-{uuid.uuid4().hex[:10]}")


@pytest.fixture
async def admin(client: Client) -> Client:
    """The practice exists and has a GoHighLevel config (authorize creates it, unconnected)."""
    headers = client.headers()
    assert (await client.http.post("/practice", json={"name": "Gateway Clinic"}, headers=headers)).status_code == 201
    assert (await client.http.get("/integrations/hl/authorize", headers=headers)).status_code == 200
    return client


def assert_problem(
    response: httpx.Response, status: int, *, field: str | None = None, reason: str | None = None
) -> dict:
    """An RFC 9457 problem of that status; returns its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert PROBLEM_FIELDS <= body.keys(), body
    assert body["status"] == status and body["title"] and body["detail"]
    if field is not None:
        assert body.get("field") == field, body
    if reason is not None:
        assert body.get("reason") == reason, body
    return body
