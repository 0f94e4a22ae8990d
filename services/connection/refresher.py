"""The background refresher: keeps tokens fresh even when no adapter asks for one."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from libs.identity import SYSTEM, set_caller
from services.connection.service import ConnectionService

log = logging.getLogger("concord.connection.refresher")


class TokenRefresher:
    def __init__(self, service: ConnectionService, interval_seconds: float) -> None:
        self._service = service
        self._interval = interval_seconds
        self._task: asyncio.Task[None] | None = None
        self._cycle_done = asyncio.Event()
        self.cycles = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="connection-token-refresher")

    async def stop(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def next_cycle(self) -> None:
        """Waits until the cycle after this call has finished (for supervisors and tests)."""
        await self._cycle_done.wait()

    async def _run(self) -> None:
        set_caller(SYSTEM)  # registry calls from here are the system's own
        while True:
            try:
                await self._service.refresh_due()
            except Exception as error:  # the loop must outlive a failed cycle (registry down, ...)
                log.error("refresh cycle failed: %s", type(error).__name__)
            self.cycles += 1
            done, self._cycle_done = self._cycle_done, asyncio.Event()
            done.set()
            await asyncio.sleep(self._interval)
