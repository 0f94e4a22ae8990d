"""A config's frequency is its Temporal Schedules, on the real Temporal dev server through the
gateway: hourly and daily configs get one schedule per enabled entity, a real-time config a
15-minute safety-net poll, a manual one none; a schedule's run is an ordinary sync run (its own
run row, the same workflow), and a second one while it runs is skipped, never doubled."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from temporalio.service import RPCError

from libs.temporal import connect
from services.demo import connect_ghl, synthetic_patients_bundle
from tests.e2e.conftest import ok

PRACTICE = "p-schedules"


async def _settings(http: httpx.AsyncClient, headers: dict[str, str], **body: object) -> dict:
    return ok(await http.post("/integrations/hl/patients/sync-settings", json=body, headers=headers))


async def test_frequencies_become_schedules_whose_runs_are_sync_runs(stack) -> None:  # noqa: ANN001
    admin = {"Authorization": f"Bearer {stack.gateway.issuer.mint('u-admin', PRACTICE, 'admin')}"}
    temporal = await connect(stack.settings)
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=120) as http:
        ok(await http.post("/practice", json={"name": "Schedule Clinic"}, headers=admin), 201)
        config_id = await connect_ghl(http, admin)
        ok(await http.post("/patients/import", json=synthetic_patients_bundle(2), headers=admin), 201)

        hourly = await _settings(http, admin, sync_frequency="hourly", sync_direction="push")
        entities = {s["entity"]: s for s in hourly["schedules"]}
        assert set(entities) == {"patient", "appointment"}  # GHL's enabled entities
        assert {s["every_seconds"] for s in entities.values()} == {3600}
        soon = datetime.fromisoformat(entities["patient"]["next_run_at"])
        assert datetime.now(UTC) < soon <= datetime.now(UTC) + timedelta(hours=1, seconds=5)
        again = await _settings(http, admin, sync_frequency="hourly")  # idempotent: still one each
        assert [s["entity"] for s in again["schedules"]] == [s["entity"] for s in hourly["schedules"]]

        # The schedule's run, now rather than within the hour: the run row and the push as a user's.
        handle = temporal.get_schedule_handle(f"sync-schedule:{config_id}:ENTITY_TYPE_PATIENT")
        await handle.trigger()
        description = await handle.describe()
        for _ in range(150):  # the trigger is asynchronous: wait for its workflow to exist
            if description.info.recent_actions:
                break
            await asyncio.sleep(0.2)
            description = await handle.describe()
        action = description.info.recent_actions[-1].action
        run_id = await temporal.get_workflow_handle(action.workflow_id).result()
        assert run_id
        run = ok(await http.get(f"/sync-runs/{run_id}", params={"wait": "true"}, headers=admin))
        assert (run["status"], run["direction"], run["records_created"]) == ("succeeded", "push", 2)

        daily = await _settings(http, admin, sync_frequency="daily")
        assert {s["every_seconds"] for s in daily["schedules"]} == {86400}
        realtime = await _settings(http, admin, sync_frequency="real_time")
        assert {s["every_seconds"] for s in realtime["schedules"]} == {900}  # the safety-net poll

        manual = await _settings(http, admin, sync_frequency="manual")
        assert manual["schedules"] == []
        with pytest.raises(RPCError):
            await handle.describe()
        # Inactive configs have none either, whatever their frequency.
        assert (await _settings(http, admin, sync_frequency="hourly", active=False))["schedules"] == []
