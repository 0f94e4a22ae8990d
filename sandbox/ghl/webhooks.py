"""Signed, asynchronous webhook delivery (docs/oauth/WebhookAuthentication.md)."""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import logging
import random
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from sandbox.common.faults import FaultGate

from .settings import GhlSandboxSettings

log = logging.getLogger("sandbox.ghl.webhooks")


@functools.cache
def _private_key(bits: int) -> rsa.RSAPrivateKey:
    # One key pair per process and size: key generation is slow and every app instance may share it.
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


class WebhookSigner:
    """x-wh-signature: base64 RSA-SHA256 (PKCS#1 v1.5) over the exact body bytes."""

    def __init__(self, bits: int) -> None:
        self._key = _private_key(bits)
        self.public_pem = (
            self._key.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )

    def sign(self, body: bytes) -> str:
        return base64.b64encode(self._key.sign(body, padding.PKCS1v15(), hashes.SHA256())).decode()


@dataclass
class Delivery:
    webhook_id: str
    type: str
    url: str
    location_id: str
    attempts: list[int | str] = field(default_factory=list)
    delivered: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "webhookId": self.webhook_id,
            "type": self.type,
            "url": self.url,
            "locationId": self.location_id,
            "attempts": self.attempts,
            "delivered": self.delivered,
        }


class WebhookDispatcher:
    """One delivery per event and recipient, in the background. The shared faults apply: a duplicated
    event is sent twice (same webhookId, same bytes); with webhook_out_of_order on, events are held for
    `webhook_reorder_window` seconds (or until drain()) and released shuffled."""

    def __init__(self, settings: GhlSandboxSettings, rng: random.Random, clock: Callable[[], float]) -> None:
        self._settings, self._rng, self._clock = settings, rng, clock
        self.signer = WebhookSigner(settings.webhook_key_bits)
        self.deliveries: list[Delivery] = []
        self.gate: FaultGate | None = None
        self._held: list[tuple[Delivery, bytes]] = []
        self._release: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None

    def emit(self, event_type: str, data: dict[str, Any], urls: list[str]) -> None:
        """Schedules the deliveries; never blocks the caller."""
        assert self.gate is not None
        batch = []
        for url in urls:
            webhook_id = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
            stamp = datetime.fromtimestamp(self._clock(), UTC).isoformat(timespec="milliseconds")
            payload = {"timestamp": stamp.replace("+00:00", "Z"), "webhookId": webhook_id, "type": event_type}
            payload.update(data)
            # Compact and unescaped, as JSON.stringify writes it, so Node-style re-serialising verifiers agree.
            body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
            for _ in range(self.gate.webhook_copies()):
                batch.append((Delivery(webhook_id, event_type, url, data.get("locationId", "")), body))
        if self.gate.faults.webhook_out_of_order:
            self._held.extend(batch)
            if self._release is None:
                self._release = self._spawn(self._release_later())
            return
        for item in batch:
            self._spawn(self._send_in_order([item]))

    async def drain(self) -> None:
        """Releases held events, then waits until every delivery, retries included, has finished."""
        self._flush()
        while pending := [t for t in self._tasks if not t.done()]:
            await asyncio.gather(*pending, return_exceptions=True)
            self._flush()

    def reset(self, gate: FaultGate) -> None:
        for task in self._tasks:
            task.cancel()
        self._tasks.clear()
        self._held.clear()
        self._release = None
        self.deliveries.clear()
        self.gate = gate

    async def aclose(self) -> None:
        """Abandons pending deliveries (a 429 retry may be minutes away) and closes the HTTP client."""
        pending = list(self._tasks)
        for task in pending:
            task.cancel()
        self._tasks.clear()
        self._held.clear()
        await asyncio.gather(*pending, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _release_later(self) -> None:
        await asyncio.sleep(self._settings.webhook_reorder_window)
        self._release = None
        self._flush()

    def _flush(self) -> None:
        if self._release is not None and self._release is not asyncio.current_task():
            self._release.cancel()
        self._release = None
        if self._held:
            assert self.gate is not None
            batch, self._held = self.gate.order(self._held), []
            self._spawn(self._send_in_order(batch))

    async def _send_in_order(self, batch: list[tuple[Delivery, bytes]]) -> None:
        """First attempts one after another (so the receiver sees the batch's order); 429 retries apart."""
        for delivery, body in batch:
            if await self._attempt(delivery, body):
                self._spawn(self._retry(delivery, body))

    async def _retry(self, delivery: Delivery, body: bytes) -> None:
        for delay in self._settings.webhook_retry_delays:
            await asyncio.sleep(delay + self._rng.uniform(0, self._settings.webhook_retry_jitter))
            if not await self._attempt(delivery, body):
                return
        log.info("webhook %s %s attempts=%s", delivery.type, delivery.webhook_id, delivery.attempts)

    async def _attempt(self, delivery: Delivery, body: bytes) -> bool:
        """One POST; True when GHL would retry it (the receiver answered 429)."""
        if self._client is None:
            self._client = httpx.AsyncClient(
                transport=self._settings.webhook_transport, timeout=self._settings.webhook_timeout
            )
        if not delivery.attempts:
            self.deliveries.append(delivery)
        headers = {"Content-Type": "application/json", "x-wh-signature": self.signer.sign(body)}
        try:
            response = await self._client.post(delivery.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            delivery.attempts.append(type(exc).__name__)
        else:
            delivery.attempts.append(response.status_code)
            if response.status_code == 429:
                return True
            delivery.delivered = response.is_success
        log.info("webhook %s %s attempts=%s", delivery.type, delivery.webhook_id, delivery.attempts)
        return False
