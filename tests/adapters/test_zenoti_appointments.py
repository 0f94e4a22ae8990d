"""Zenoti appointments pulled by date window through the real adapter against the sandbox: a sweep
covers lookback to horizon one 7-day window per call, maps through the mapper, and the next sweep
catches a front-desk reschedule that sent no webhook."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from temporalio.exceptions import ApplicationError

from libs.protos.concord.adapter.v1 import adapter_pb2 as pb
from libs.protos.concord.common.v1 import common_pb2
from sandbox.zenoti.settings import OrgConfig
from services.adapters.zenoti.appointments import HORIZON_DAYS, LOOKBACK_DAYS, WINDOW_DAYS
from services.mapping.mappers.zenoti_appointments import ZenotiAppointmentMapper
from tests.adapters.conftest import plain
from tests.adapters.test_zenoti_adapter import ACCOUNT, _zenoti

NOTES = "Treatment note: Qwxyzzy peel, mild erythema"  # PHI canary


async def _sweep(harness) -> tuple[list[dict], int]:
    cursor, records, calls = "", [], 0
    while True:
        response = await harness.adapter.fetch_changes(
            pb.FetchChangesRequest(
                config_id=harness.config_id,
                entity_type=common_pb2.ENTITY_TYPE_APPOINTMENT,
                cursor=cursor,
                page_size=100,
            )
        )
        calls += 1
        records += [plain(r) for r in response.records]
        cursor = response.next_cursor
        if not response.has_more:
            return records, calls


async def test_sweep_pulls_windows_and_catches_reschedule(settings, caplog):
    caplog.set_level(logging.DEBUG)
    async with _zenoti(settings, org=OrgConfig(account_name=ACCOUNT, seed=True)) as (harness, _):
        org = harness.org
        guest_id = next(g for g, record in org.guests.items() if record["center_id"] == harness.center_id)
        service_id = next(iter(org.services))
        tomorrow = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT10:00:00")
        await harness._admin(
            "POST",
            "/appointments",
            json={
                "account_name": ACCOUNT,
                "center_id": harness.center_id,
                "guest_id": guest_id,
                "service_id": service_id,
                "start_time": tomorrow,
                "notes": NOTES,
            },
        )
        records, calls = await _sweep(harness)
        assert calls == -(-(LOOKBACK_DAYS + HORIZON_DAYS + 1) // WINDOW_DAYS)
        ours = [r for r in records if r.get("notes") == NOTES]
        assert len(ours) == 1
        hub = ZenotiAppointmentMapper().to_hub(ours[0]).resource
        assert hub["comment"] == NOTES and hub["status"] == "booked"
        first_start = hub["start"]

        later = (datetime.now(UTC) + timedelta(days=3)).strftime("%Y-%m-%dT15:00:00")
        await harness._admin("PATCH", f"/appointments/{ours[0]['appointment_id']}", json={"start_time": later})
        records, _ = await _sweep(harness)
        moved = [r for r in records if r["appointment_id"] == ours[0]["appointment_id"]]
        assert len(moved) == 1
        assert ZenotiAppointmentMapper().to_hub(moved[0]).resource["start"] != first_start
        assert NOTES not in caplog.text


def _fetch(harness, cursor: str) -> pb.FetchChangesRequest:
    return pb.FetchChangesRequest(
        config_id=harness.config_id, entity_type=common_pb2.ENTITY_TYPE_APPOINTMENT, cursor=cursor, page_size=100
    )


async def test_bad_cursor_refused_and_malformed_window_retried(settings):
    async with _zenoti(settings) as (harness, _):
        with pytest.raises(ApplicationError) as refused:
            await harness.adapter.fetch_changes(_fetch(harness, "not json"))
        assert refused.value.non_retryable and refused.value.type == "InvalidArgument"
        await harness.inject(malformed_pages=True)
        with pytest.raises(ApplicationError) as malformed:
            await harness.adapter.fetch_changes(_fetch(harness, ""))
        assert not malformed.value.non_retryable and malformed.value.type == "VendorMalformedPage"
