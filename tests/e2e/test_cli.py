"""The `concord` operator commands against a running stack, as an operator runs them."""

from __future__ import annotations

import asyncio
import os
import sys

import httpx
import pytest

from services.demo import connect_ghl, synthetic_patients_bundle
from services.supervisor import start_stack


@pytest.fixture
async def stack(settings, temporal_binary):  # noqa: ANN001
    running = await start_stack(settings, ephemeral_ports=True)
    yield running
    await running.stop()


async def _concord(stack, token: str, *args: str) -> tuple[int, str]:  # noqa: ANN001
    env = {**os.environ, "CONCORD_GATEWAY_URL": stack.gateway_url, "CONCORD_TOKEN": token, "COLUMNS": "200"}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.cli",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    return process.returncode, output.decode()


async def test_sync_refresh_and_status_commands(stack) -> None:  # noqa: ANN001
    token = stack.gateway.issuer.mint("operator", "p-cli", "admin")
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=120) as http:
        await http.post("/practice", json={"name": "CLI Clinic"}, headers=headers)
        await connect_ghl(http, headers)
        bundle = synthetic_patients_bundle(limit=5)
        assert (await http.post("/patients/import", json=bundle, headers=headers)).status_code == 201

    code, output = await _concord(stack, token, "sync", "patients", "--vendor", "hl", "--direction", "push")
    assert code == 0, output
    assert "succeeded: 5 synced (5 created, 0 updated), 0 failed" in output

    code, output = await _concord(stack, token, "auth", "refresh", "--vendor", "hl")
    assert code == 0, output
    assert "token refreshed" in output

    code, output = await _concord(stack, token, "status", "--vendor", "hl")
    assert code == 0 and '"connected": true' in output

    code, output = await _concord(stack, token, "sync", "appointments", "--vendor", "hl", "--direction", "push")
    assert code == 0, output
    assert "succeeded: 0 synced" in output  # the practice has no appointments yet

    code, output = await _concord(stack, token, "sync", "patients", "--vendor", "nosuchvendor")
    assert code == 2 and "HTTP 404" in output
