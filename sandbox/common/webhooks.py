"""Asynchronous webhook delivery shared by the sandboxes: each vendor signs its own way and says
which answers it retries; the duplicate and out-of-order faults apply to all."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from sandbox.common.faults import FaultGate

log = logging.getLogger("sandbox.webhooks")


@dataclass
class Outgoing:
    url: str
    body: bytes
    headers: dict[str, str]
    event_id: str
    event_type: str
    # FHIR R4 rest-hooks with a payload PUT the resource; everything else POSTs.
    method: str = "POST"


@dataclass
class Delivery:
    event_id: str
    event_type: str
    url: str
    attempts: list[int | str] = field(default_factory=list)
    delivered: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "eventId": self.event_id,
            "type": self.event_type,
            "url": self.url,
            "attempts": self.attempts,
            "delivered": self.delivered,
        }


class WebhookSender:
    """Sends batches in the background. ``retry_delays`` are the pauses before each retry,
    ``should_retry(status)`` says which answers the vendor retries, and ``on_done(item, delivery)``
    hears about each finished delivery (retries included)."""

    def __init__(
        self,
        gate: FaultGate,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 10.0,
        retry_delays: Sequence[float] = (),
        should_retry: Callable[[int], bool] = lambda status: status >= 500 or status == 429,
        on_done: Callable[[Outgoing, Delivery], None] | None = None,
        seed: int = 0,
    ) -> None:
        self._gate = gate
        self._transport = transport
        self._timeout = timeout
        self._retry_delays = tuple(retry_delays)
        self._should_retry = should_retry
        self._on_done = on_done
        self._rng = random.Random(seed)
        self.deliveries: list[Delivery] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._streams: dict[str, asyncio.Task[None]] = {}
        self._client: httpx.AsyncClient | None = None

    def send(self, batch: list[Outgoing], stream: str | None = None) -> None:
        """Schedules the batch (in order unless the out-of-order fault is on); never blocks. Batches
        of one ``stream`` (a subscription's event stream) go one after another, in the order sent."""
        items = [copy for item in self._gate.order(batch) for copy in [item] * self._gate.webhook_copies()]
        before = self._streams.get(stream) if stream is not None else None
        task = asyncio.get_running_loop().create_task(self._send_all(items, before))
        if stream is not None:
            self._streams[stream] = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Waits until every scheduled delivery, retries included, has finished."""
        while pending := [t for t in self._tasks if not t.done()]:
            await asyncio.gather(*pending, return_exceptions=True)

    def reset(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._tasks.clear()
        self._streams.clear()
        self.deliveries.clear()

    async def aclose(self) -> None:
        pending = list(self._tasks)
        self.reset()
        await asyncio.gather(*pending, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _send_all(self, items: list[Outgoing], before: asyncio.Task[None] | None = None) -> None:
        if before is not None:
            await asyncio.gather(before, return_exceptions=True)
        for item in items:
            await self._deliver(item)

    async def _deliver(self, item: Outgoing) -> None:
        if self._client is None:
            self._client = httpx.AsyncClient(transport=self._transport, timeout=self._timeout)
        delivery = Delivery(item.event_id, item.event_type, item.url)
        self.deliveries.append(delivery)
        for delay in (None, *self._retry_delays):
            if delay is not None:
                await asyncio.sleep(delay)
            try:
                response = await self._client.request(
                    item.method, item.url, content=item.body or None, headers=item.headers
                )
            except httpx.HTTPError as exc:
                delivery.attempts.append(type(exc).__name__)
                continue
            delivery.attempts.append(response.status_code)
            if not self._should_retry(response.status_code):
                delivery.delivered = response.is_success
                break
        log.info("webhook %s %s attempts=%s", item.event_type, item.event_id, delivery.attempts)
        if self._on_done is not None:
            self._on_done(item, delivery)
