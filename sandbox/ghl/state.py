"""In-memory state of the sandbox: locations and their contacts, apps, tokens, faults, stats."""

from __future__ import annotations

import random
import string
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .ratelimit import RateLimiter
from .settings import AppRegistration, GhlSandboxSettings
from .webhooks import WebhookDispatcher

_ID_ALPHABET = string.ascii_letters + string.digits


@dataclass
class Location:
    id: str
    company_id: str
    name: str
    user_id: str
    contacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    by_email: dict[str, str] = field(default_factory=dict)
    by_phone: dict[str, str] = field(default_factory=dict)
    custom_field_ids: dict[str, str] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "companyId": self.company_id, "name": self.name, "userId": self.user_id}


@dataclass
class App:
    client_id: str
    client_secret: str
    redirect_uris: list[str]
    company_id: str
    location_id: str
    webhook_url: str | None = None
    plan_id: str | None = None
    installed: set[str] = field(default_factory=set)

    def as_json(self) -> dict[str, Any]:
        return {
            "client_id": self.client_id,
            "redirect_uris": self.redirect_uris,
            "companyId": self.company_id,
            "locationId": self.location_id,
            "webhookUrl": self.webhook_url,
            "installedLocations": sorted(self.installed),
        }


@dataclass
class Grant:
    """What an authorization code, access token or refresh token stands for."""

    client_id: str
    location_id: str
    scope: str
    expires_at: float
    redirect_uri: str | None = None


@dataclass
class Faults:
    rate_limit_enabled: bool
    status_5xx_rate: float = 0.0
    latency_ms: int = 0
    malformed_next_page: bool = False
    outage_until: float | None = None

    def as_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Sandbox:
    """Everything one simulator instance knows; `app.state.sandbox`."""

    def __init__(self, settings: GhlSandboxSettings) -> None:
        self.settings = settings
        self.clock = settings.clock
        self.limiter = RateLimiter(settings.burst_limit, settings.burst_window_ms, settings.daily_limit, settings.clock)
        self.webhooks = WebhookDispatcher(settings, random.Random(settings.seed + 1), settings.clock)
        self.reset()

    def reset(self) -> None:
        self.rng = random.Random(self.settings.seed)
        self.fault_rng = random.Random(self.settings.seed + 2)
        self.locations: dict[str, Location] = {}
        self.apps: dict[str, App] = {}
        self.contact_location: dict[str, str] = {}
        self.codes: dict[str, Grant] = {}
        self.access_tokens: dict[str, Grant] = {}
        self.refresh_tokens: dict[str, Grant] = {}
        self.stats: Counter[str] = Counter()
        self.faults = Faults(rate_limit_enabled=self.settings.rate_limit_enabled)
        self._last_stamp_ms = 0
        self.limiter.reset()
        self.webhooks.reset()
        for registration in self.settings.apps:
            self.register_app(registration)

    def new_id(self) -> str:
        return "".join(self.rng.choices(_ID_ALPHABET, k=20))

    def stamp_ms(self) -> int:
        """Now in epoch ms, strictly greater than any stamp handed out before."""
        self._last_stamp_ms = max(int(self.clock() * 1000), self._last_stamp_ms + 1)
        return self._last_stamp_ms

    def create_location(
        self, location_id: str | None = None, company_id: str | None = None, name: str | None = None
    ) -> Location:
        if location_id in self.locations:
            return self.locations[location_id]
        location = Location(
            id=location_id or self.new_id(),
            company_id=company_id or self.new_id(),
            name=name or "Sandbox Clinic",
            user_id=self.new_id(),
        )
        self.locations[location.id] = location
        return location

    def register_app(self, reg: AppRegistration) -> App:
        location = self.create_location(reg.location_id, reg.company_id)
        app = App(
            client_id=reg.client_id,
            client_secret=reg.client_secret,
            redirect_uris=list(reg.redirect_uris),
            company_id=location.company_id,
            location_id=location.id,
            webhook_url=reg.webhook_url,
            plan_id=reg.plan_id,
            installed={location.id},
        )
        self.apps[app.client_id] = app
        return app

    def webhook_urls(self, location_id: str) -> list[str]:
        return [a.webhook_url for a in self.apps.values() if a.webhook_url and location_id in a.installed]

    def find_contact(self, contact_id: str) -> tuple[Location, dict[str, Any]] | None:
        location_id = self.contact_location.get(contact_id)
        if location_id is None:
            return None
        location = self.locations[location_id]
        return location, location.contacts[contact_id]
