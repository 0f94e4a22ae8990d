"""Signed, asynchronous webhook delivery (docs/oauth/WebhookAuthentication.md)."""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import logging
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

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
    def __init__(self, settings: GhlSandboxSettings, rng: random.Random, clock: Callable[[], float]) -> None:
        self._settings, self._rng, self._clock = settings, rng, clock
        self.signer = WebhookSigner(settings.webhook_key_bits)
        self.deliveries: list[Delivery] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None

    def emit(self, event_type: str, data: dict[str, Any], urls: list[str]) -> None:
        """Schedules one delivery per URL; never blocks the caller."""
        for url in urls:
            webhook_id = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
            stamp = datetime.fromtimestamp(self._clock(), UTC).isoformat(timespec="milliseconds")
            payload = {"timestamp": stamp.replace("+00:00", "Z"), "webhookId": webhook_id, "type": event_type}
            payload.update(data)
            # Compact and unescaped, as JSON.stringify writes it, so Node-style re-serialising verifiers agree.
            body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
            delivery = Delivery(webhook_id, event_type, url, data.get("locationId", ""))
            self.deliveries.append(delivery)
            task = asyncio.get_running_loop().create_task(self._deliver(delivery, body))
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
        self.deliveries.clear()

    async def aclose(self) -> None:
        """Abandons pending deliveries (a 429 retry may be minutes away) and closes the HTTP client."""
        pending = list(self._tasks)
        self.reset()
        await asyncio.gather(*pending, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _deliver(self, delivery: Delivery, body: bytes) -> None:
        if self._client is None:
            self._client = httpx.AsyncClient(
                transport=self._settings.webhook_transport, timeout=self._settings.webhook_timeout
            )
        headers = {"Content-Type": "application/json", "x-wh-signature": self.signer.sign(body)}
        for delay in (None, *self._settings.webhook_retry_delays):
            if delay is not None:
                await asyncio.sleep(delay + self._rng.uniform(0, self._settings.webhook_retry_jitter))
            try:
                response = await self._client.post(delivery.url, content=body, headers=headers)
            except httpx.HTTPError as exc:
                delivery.attempts.append(type(exc).__name__)
                break
            delivery.attempts.append(response.status_code)
            if response.status_code != 429:
                delivery.delivered = response.is_success
                break
        log.info("webhook %s %s attempts=%s", delivery.type, delivery.webhook_id, delivery.attempts)
