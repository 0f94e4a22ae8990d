"""The GoHighLevel adapter worker, a process of its own (python -m services.adapters --vendor ghl),
is killed with SIGKILL in the middle of a push and started again: Temporal gives the batch to the
new worker once the dead one stops heartbeating, and afterwards every patient is at GHL once and
linked once, the run succeeded, nothing was lost or doubled."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator

import httpx
import pytest

from services.demo import connect_ghl, synthetic_patients_bundle
from services.supervisor import VENDORS, Stack, start_stack
from tests.e2e.conftest import ok

PRACTICE = "p-killed-worker"
UPSERT = "POST /contacts/upsert"


@pytest.fixture
async def stack(settings, temporal_binary) -> AsyncIterator[Stack]:  # noqa: ANN001
    running = await start_stack(
        settings.model_copy(update={"vendor_pacing": False}),
        ephemeral_ports=True,
        sandbox_rate_limit=False,
        adapter_workers=tuple(v for v in VENDORS if v != "ghl"),
    )
    yield running
    await running.stop()


def _worker(stack: Stack) -> subprocess.Popen:
    s = stack.settings
    env = {
        **os.environ,
        "CONCORD_DATA_DIR": str(s.data_dir),  # the keyring: Temporal payloads are encrypted with it
        "CONCORD_TEMPORAL_ADDRESS": s.temporal_address,
        "CONCORD_CONNECTION_ADDRESS": s.connection_address,
        "CONCORD_REGISTRY_ADDRESS": s.registry_address,
        "CONCORD_VENDOR_PACING": "false",
        "CONCORD_LOG_LEVEL": "WARNING",
    }
    return subprocess.Popen([sys.executable, "-m", "services.adapters", "--vendor", "ghl"], env=env)  # noqa: S603


async def _until(check, seconds: float = 60) -> None:  # noqa: ANN001
    async with asyncio.timeout(seconds):
        while not await check():  # noqa: ASYNC110 - the state is the sandbox's: no event to wait on
            await asyncio.sleep(0.05)


async def test_a_push_survives_its_worker_killed_mid_batch(stack: Stack) -> None:
    admin = {"Authorization": f"Bearer {stack.gateway.issuer.mint('u-admin', PRACTICE, 'admin')}"}
    sandbox = stack.sandboxes["ghl"].url
    first = _worker(stack)
    second = None
    try:
        async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=180) as http:
            ok(await http.post("/practice", json={"name": "Killed Worker Clinic"}, headers=admin), 201)
            await connect_ghl(http, admin)
            imported = ok(await http.post("/patients/import", json=synthetic_patients_bundle(), headers=admin), 201)
            total = imported["count"]
            ok(await http.post(f"{sandbox}/_sandbox/stats/reset"))
            ok(await http.post(f"{sandbox}/_sandbox/faults", json={"latency_ms": 60}))  # a slow GHL: a long batch
            run = ok(await http.post("/integrations/hl/patients/sync", json={"direction": "push"}, headers=admin), 202)

            async def some_written() -> bool:
                return ok(await http.get(f"{sandbox}/_sandbox/stats")).get(UPSERT, 0) >= total // 4

            await _until(some_written)
            first.send_signal(signal.SIGKILL)  # mid-batch: its results are never recorded
            assert first.wait(timeout=10) == -signal.SIGKILL
            written_before = ok(await http.get(f"{sandbox}/_sandbox/stats")).get(UPSERT, 0)
            assert 0 < written_before < total
            second = _worker(stack)

            done = ok(await http.get(f"/sync-runs/{run['run_id']}", params={"wait": "true"}, headers=admin))
            assert done["status"] == "succeeded", done
            assert done["records_created"] == total and done["records_failed"] == 0
            status = ok(await http.get("/integrations/hl/status", headers=admin))
            listed = ok(await http.get(f"{sandbox}/_sandbox/contacts", params={"locationId": status["account_id"]}))
            assert len(listed["contacts"]) == total  # the retried batch found what the first had written
            # Every patient linked once: a second push has nothing to send.
            ok(await http.delete(f"{sandbox}/_sandbox/faults"))
            again = ok(
                await http.post("/integrations/hl/patients/sync", json={"direction": "push"}, headers=admin), 202
            )
            settled = ok(await http.get(f"/sync-runs/{again['run_id']}", params={"wait": "true"}, headers=admin))
            assert (settled["records_processed"], settled["records_created"]) == (0, 0)
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait(timeout=10)
