"""Zenoti webhooks: the documented envelope, delivered with the shared WebhookSender.

Envelope (guides/webhooks-event-response-structure.md): ``{id, event_id, event_schema: "v1",
event_resource, event_type, event_timestamp, data}``. Delivery (guides/webhook-failure-handling.md):
10 s timeout, up to 5 retries backing off 30 s -> 10 min, deactivation after 20 failures in a row.
Simulator-chosen: the signature header ``X-Zenoti-Signature`` = hex HMAC-SHA256 of the raw body with the
webhook's secret (the docs say only that a header carries a signature); every non-2xx answer and every
network error is retried.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sandbox.common.faults import FaultGate
from sandbox.common.webhooks import Delivery, Outgoing, WebhookSender

from .model import net_stamp
from .settings import WebhookConfig, ZenotiSandboxSettings

EVENTS = {
    "Guest.Created": "Guest",
    "Guest.Updated": "Guest",
    "Guest.Deleted": "Guest",
    "AppointmentGroup.Created": None,  # the documented sample carries event_resource null
    "AppointmentGroup.Status": "AppointmentGroup",
    "Appointment.Started": "Appointment",
    "Appointment.Completed": "Appointment",
}
SIGNATURE_HEADER = "X-Zenoti-Signature"


def sign(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass
class Registration:
    id: str
    account_name: str
    url: str
    events: frozenset[str] | None
    secret: str
    active: bool = True
    consecutive_failures: int = 0

    def wants(self, event_type: str) -> bool:
        return self.active and (self.events is None or event_type in self.events)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "account_name": self.account_name,
            "url": self.url,
            "events": sorted(self.events) if self.events is not None else sorted(EVENTS),
            "active": self.active,
            "consecutive_failures": self.consecutive_failures,
        }


class ZenotiWebhooks:
    def __init__(self, settings: ZenotiSandboxSettings, gate: FaultGate, clock: Callable[[], float]) -> None:
        self._settings, self._gate, self._clock = settings, gate, clock
        self.sender = WebhookSender(
            gate,
            on_done=self._on_done,
            transport=settings.webhook_transport,
            timeout=settings.webhook_timeout,
            retry_delays=settings.webhook_retry_delays,
            should_retry=lambda status: not 200 <= status < 300,
            seed=settings.seed + 3,
        )
        self.reset()

    def reset(self) -> None:
        self._rng = random.Random(self._settings.seed + 4)
        self.sender.reset()
        self.registrations: dict[str, Registration] = {}
        self._by_call: dict[str, str] = {}
        self._pending: list[Outgoing] = []
        self._held: list[Outgoing] = []
        for config in self._settings.webhooks:
            self.register(config)

    def register(self, config: WebhookConfig) -> Registration:
        reg = Registration(
            id=self._object_id(),
            account_name=config.account_name,
            url=config.url,
            events=frozenset(config.events) if config.events is not None else None,
            secret=config.secret,
        )
        self.registrations[reg.id] = reg
        return reg

    def emit(self, account_name: str, event_type: str, data: dict[str, Any]) -> None:
        """Queues one event for every webhook of the organization subscribed to it."""
        event_id = self._object_id()
        stamp = net_stamp(self._clock())
        for reg in self.registrations.values():
            if reg.account_name != account_name or not reg.wants(event_type):
                continue
            call_id = self._object_id()
            envelope = {
                "id": call_id,
                "event_id": event_id,
                "event_schema": "v1",
                "event_resource": EVENTS[event_type],
                "event_type": event_type,
                "event_timestamp": stamp,
                "data": data,
            }
            body = json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode()
            headers = {"Content-Type": "application/json; charset=utf-8", SIGNATURE_HEADER: sign(reg.secret, body)}
            self._by_call[call_id] = reg.id
            self._pending.append(Outgoing(reg.url, body, headers, call_id, event_type))

    def after_request(self) -> None:
        """Sends what one request produced; under the out-of-order fault, holds it for a shuffled batch."""
        pending, self._pending = self._pending, []
        if not self._gate.faults.webhook_out_of_order:
            held, self._held = self._held, []
            if held + pending:
                self.sender.send(held + pending)
            return
        self._held += pending
        if len(self._held) >= self._settings.webhook_hold_max:
            self.flush()

    def flush(self) -> None:
        held, self._held = self._held + self._pending, []
        self._pending = []
        if held:
            self.sender.send(held)

    async def drain(self) -> None:
        """Releases held events, then waits until every delivery (retries included) has finished."""
        self.flush()
        await self.sender.drain()

    async def aclose(self) -> None:
        await self.sender.aclose()

    def _on_done(self, item: Outgoing, delivery: Delivery) -> None:
        delivered = delivery.delivered
        reg = self.registrations.get(self._by_call.get(item.event_id, ""))
        if reg is None:
            return
        reg.consecutive_failures = 0 if delivered else reg.consecutive_failures + 1
        if reg.consecutive_failures >= self._settings.webhook_deactivate_after:
            reg.active = False

    def _object_id(self) -> str:
        """A MongoDB-style ObjectId (4-byte time, 8 random bytes), like the ids in Zenoti's samples."""
        return f"{int(self._clock()) & 0xFFFFFFFF:08x}{self._rng.getrandbits(64):016x}"
