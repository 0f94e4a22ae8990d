"""The background loop: keeps tokens fresh even when no adapter asks for one, and purges what can
no longer be used (stale pending authorizations, with the refresh; the expired and spent secrets of
Concord's own OAuth server, after it)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence

from libs.identity import SYSTEM, set_caller
from services.connection.service import ConnectionService

log = logging.getLogger("concord.connection.refresher")

# A purge returns how many rows it deleted.
Purge = Callable[[], Awaitable[int]]


class TokenRefresher:
    def __init__(self, service: ConnectionService, interval_seconds: float, purges: Sequence[Purge] = ()) -> None:
        self._service = service
        self._interval = interval_seconds
        self._purges = tuple(purges)
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
            for purge in self._purges:  # each on its own: one failing leaves the others to run
                try:
                    purged = await purge()
                    if purged:
                        log.info("purged %d rows that can no longer be used", purged)
                except Exception as error:
                    log.error("purge failed: %s", type(error).__name__)
            self.cycles += 1
            done, self._cycle_done = self._cycle_done, asyncio.Event()
            done.set()
            await asyncio.sleep(self._interval)
