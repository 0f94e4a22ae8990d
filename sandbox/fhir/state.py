"""Everything one simulator instance knows (``app.state.sandbox``): tenants and their versioned resources,
clients and tokens, faults, stats and the subscription sender."""

from __future__ import annotations

import copy
import logging
import random
import uuid
from dataclasses import fields
from typing import Any

from sandbox.common.faults import FaultGate, Faults
from sandbox.common.stats import Stats
from sandbox.common.webhooks import Delivery, WebhookSender

from . import seed, subscriptions
from .auth import Client, Grant, RateLimiter, make_client
from .search import Query
from .settings import ClientRegistration, FhirSandboxSettings
from .store import Record, Tenant, Version, instant

log = logging.getLogger("sandbox.fhir")


class Sandbox:
    def __init__(self, settings: FhirSandboxSettings) -> None:
        self.settings = settings
        self.clock = settings.clock
        self.stats = Stats()
        self.faults = Faults(rate_limit_enabled=settings.rate_limit_enabled)
        self.gate = FaultGate(self.faults, self.clock, settings.seed)
        self.limiter = RateLimiter(self)
        self.sender = WebhookSender(
            self.gate,
            transport=settings.transport,
            timeout=settings.webhook_timeout,
            retry_delays=settings.webhook_retry_delays,
            should_retry=lambda status: status >= 500 or status == 429,
            seed=settings.seed + 1,
            on_done=self._delivery_done,
        )
        self.reset()

    def reset(self) -> None:
        self.rng = random.Random(self.settings.seed)
        self.fault_rng = random.Random(self.settings.seed + 2)
        self.tenants: dict[str, Tenant] = {}
        self.clients: dict[str, Client] = {}
        self.tokens: dict[str, Grant] = {}
        self.used_jti: dict[tuple[str, str], float] = {}
        self.failures: dict[tuple[str, str], int] = {}
        self.malformed_served = 0
        self._last_ms = 0
        self._criteria: dict[str, Query] = {}
        self.limiter.reset()
        self.sender.reset()
        for name in self.settings.tenants:
            self.add_tenant(name, seeded=self.settings.seed_data)
        for registration in self.settings.clients:
            self.register_client(registration)

    def reset_faults(self) -> None:
        fresh = Faults(rate_limit_enabled=self.settings.rate_limit_enabled)
        for f in fields(Faults):
            setattr(self.faults, f.name, getattr(fresh, f.name))

    async def on_actions(self, actions: set[str]) -> None:
        now = self.clock()
        if "expire_all_tokens" in actions:
            for grant in self.tokens.values():
                grant.expires_at = min(grant.expires_at, now)
        if "revoke_tokens" in actions:
            self.tokens.clear()

    async def reset_all(self) -> None:
        self.reset()

    # --- ids and time -------------------------------------------------------------------------------

    def new_id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def stamp_ms(self) -> int:
        """Now in epoch ms, strictly after every stamp handed out before (so _lastUpdated cursors are exact)."""
        self._last_ms = max(int(self.clock() * 1000), self._last_ms + 1)
        return self._last_ms

    # --- tenants and clients ------------------------------------------------------------------------

    def add_tenant(self, name: str, *, seeded: bool) -> Tenant:
        tenant = self.tenants.get(name) or Tenant(name)
        self.tenants[name] = tenant
        if seeded:
            items = seed.resources(self.clock(), seed=self.settings.seed, slot_days=self.settings.slot_days)
            # Backdated, distinct stamps: the seed predates every write that follows it.
            first = int(self.clock() * 1000) - len(items)
            for offset, resource in enumerate(items):
                self._store(tenant, resource["resourceType"], resource["id"], resource, "PUT", first + offset)
            self._last_ms = max(self._last_ms, first + len(items) - 1)
        log.info("tenant %s ready counts=%s", name, tenant.counts() if seeded else {})
        return tenant

    def register_client(self, registration: ClientRegistration) -> Client:
        client = make_client(registration)
        self.clients[client.client_id] = client
        return client

    # --- writes -------------------------------------------------------------------------------------

    def _store(
        self, tenant: Tenant, kind: str, rid: str, resource: dict[str, Any] | None, method: str, stamp: int
    ) -> Record:
        record = tenant.records[kind].setdefault(rid, Record(kind, rid))
        vid = record.current.vid + 1 if record.versions else 1
        stored = None
        if resource is not None:
            meta = {k: v for k, v in (resource.get("meta") or {}).items() if k not in ("versionId", "lastUpdated")}
            rest = {k: v for k, v in resource.items() if k not in ("resourceType", "id", "meta")}
            stored = {
                "resourceType": kind,
                "id": rid,
                "meta": {"versionId": str(vid), "lastUpdated": instant(stamp), **meta},
                **copy.deepcopy(rest),
            }
        record.versions.append(Version(vid, stamp, stored, method))
        return record

    def write(
        self, tenant: Tenant, kind: str, rid: str, resource: dict[str, Any] | None, method: str
    ) -> tuple[Record, Version]:
        """Stores a new version (None = delete), activates a requested Subscription, notifies subscribers.
        Returns the record and the version this write made (a Subscription's activation comes after it)."""
        record = self._store(tenant, kind, rid, resource, method, self.stamp_ms())
        written = record.current
        current = written.resource
        if current is None:
            return record, written
        if kind == "Subscription":
            self.failures.pop((tenant.name, rid), None)
            if current.get("status") == "requested":
                # R4 has no handshake: the server activates the subscription as a new version.
                self._store(tenant, kind, rid, {**current, "status": "active"}, "PUT", self.stamp_ms())
            return record, written
        self._notify(tenant, current)
        return record, written

    # --- subscriptions ------------------------------------------------------------------------------

    def criteria(self, text: str) -> Query:
        query = self._criteria.get(text)
        if query is None:
            settings = self.settings
            query = subscriptions.criteria_query(
                text, default_count=settings.default_count, max_count=settings.max_count
            )
            self._criteria[text] = query
        return query

    def _notify(self, tenant: Tenant, resource: dict[str, Any]) -> None:
        batch = []
        for sub in tenant.live("Subscription"):
            if sub.get("status") != "active":
                continue
            query = self.criteria(sub.get("criteria", ""))
            if query.resource_type == resource["resourceType"] and query.matches(resource):
                batch.append(subscriptions.notification(tenant.name, sub, resource))
        if batch:
            self.sender.send(batch)

    def _delivery_done(self, item: subscriptions.Notification, delivery: Delivery) -> None:
        if delivery.delivered:
            return
        tenant = self.tenants.get(item.tenant)
        sub = tenant.resource("Subscription", item.subscription_id) if tenant else None
        if tenant is None or sub is None or sub.get("status") != "active":
            return
        key = (item.tenant, item.subscription_id)
        self.failures[key] = self.failures.get(key, 0) + 1
        if self.failures[key] < self.settings.subscription_failures_before_error:
            return
        last = delivery.attempts[-1] if delivery.attempts else "no answer"
        detail = f"HTTP {last}" if isinstance(last, int) else str(last)
        text = f"Failed to deliver a notification after {len(delivery.attempts)} attempts (last: {detail})"
        self._store(tenant, "Subscription", item.subscription_id, {**sub, "status": "error", "error": text}, "PUT",
                    self.stamp_ms())  # fmt: skip
