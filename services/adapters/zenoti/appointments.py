"""Zenoti appointments -> the hub, polled by date window (Zenoti sends no webhook for a front-desk
reschedule, so only polling sees it).

The window slides: one FetchChanges reads one WINDOW_DAYS window (GET /v1/appointments is a bare
array of at most 7 days, no paging) starting LOOKBACK_DAYS before today, and the typed cursor saved
after it names the next window's first day. When the next window would start past HORIZON_DAYS
ahead, the sweep ends (has_more false) and the cursor starts the next sweep from the lookback again:
every sweep re-reads every appointment in [today - LOOKBACK_DAYS, today + HORIZON_DAYS], so a
reschedule, a status change or edited notes show up in the next sweep; the sync service's
field-level merge makes the unchanged ones no-ops. Cancelled and no-show appointments are included
(service history).

Writes go through Zenoti's booking flow (booking.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from temporalio.exceptions import ApplicationError

from libs.protos.concord.registry.v1 import registry_pb2
from services.adapters.zenoti import booking
from services.adapters.zenoti.client import ZenotiClient, ZenotiMalformed
from services.adapters.zenoti.paging import Step

WINDOW_DAYS = 7
LOOKBACK_DAYS = 28
HORIZON_DAYS = 56


def _malformed(what: str) -> ApplicationError:
    # Retryable: returning the window (or a cursor past it) would lose appointments.
    return ApplicationError(f"malformed appointment list: {what}", type="VendorMalformedPage")


@dataclass(frozen=True)
class WindowCursor:
    """The first day of the next window to read; None starts a sweep at the lookback."""

    window_start: date | None = None

    def encode(self) -> str:
        return json.dumps({"v": 1, "window_start": self.window_start.isoformat() if self.window_start else None})

    @classmethod
    def decode(cls, raw: str) -> WindowCursor:
        if not raw:
            return cls()
        try:
            body = json.loads(raw)
            day = body.get("window_start")
            return cls(date.fromisoformat(day) if day else None)
        except (ValueError, AttributeError, TypeError):
            raise ApplicationError(
                "the cursor is not a Zenoti appointment cursor", type="InvalidArgument", non_retryable=True
            ) from None


class Appointments:
    def parse_cursor(self, raw: str) -> WindowCursor:
        return WindowCursor.decode(raw)

    async def fetch(self, client: ZenotiClient, center_id: str, cursor: WindowCursor, size: int, now: datetime) -> Step:
        today = now.date()
        start = cursor.window_start or today - timedelta(days=LOOKBACK_DAYS)
        end = start + timedelta(days=WINDOW_DAYS - 1)
        params = {
            "center_id": center_id,
            "start_date": start.isoformat(),
            "end_date": end.isoformat(),
            "include_no_show_cancel": "true",
        }
        try:
            body: Any = await client.request("GET", "/v1/appointments", params=params)
        except ZenotiMalformed:
            raise _malformed("the body is not JSON") from None
        if not isinstance(body, list) or not all(isinstance(r, dict) and r.get("appointment_id") for r in body):
            raise _malformed("not a list of appointments with ids")
        following = end + timedelta(days=1)
        if following > today + timedelta(days=HORIZON_DAYS):
            return Step(records=body, cursor=WindowCursor(), has_more=False)
        return Step(records=body, cursor=WindowCursor(following), has_more=True)

    async def read(self, client: ZenotiClient, appointment_id: str) -> dict:
        """One appointment as it is now, the object the window list holds (get_records)."""
        return await booking.get_appointment(client, appointment_id)

    async def write(
        self,
        client: ZenotiClient,
        center_id: str,
        external_id: str,
        record: dict,
        options: registry_pb2.VendorOptions | None = None,
    ) -> tuple[dict, bool]:
        """Books, reschedules or changes the status of one appointment (booking.py)."""
        zone = booking.center_zone(options or registry_pb2.VendorOptions())
        return await booking.Booker(client, center_id, zone).write(external_id, record)
