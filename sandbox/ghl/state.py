"""In-memory state of the sandbox: locations (contacts, calendars, appointments, custom fields, workflows,
conversations), apps, tokens, faults, stats."""

from __future__ import annotations

import random
import string
from dataclasses import dataclass, field, fields
from typing import Any

from sandbox.common.faults import FaultGate, Faults
from sandbox.common.stats import Stats

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
    timezone: str
    contacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    by_email: dict[str, str] = field(default_factory=dict)
    by_phone: dict[str, str] = field(default_factory=dict)
    # Custom field definitions by id (GET /locations/{id}/customFields).
    custom_fields: dict[str, dict[str, Any]] = field(default_factory=dict)
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    user_by_practitioner: dict[str, str] = field(default_factory=dict)
    group_id: str = ""
    calendars: dict[str, dict[str, Any]] = field(default_factory=dict)
    calendar_by_service: dict[str, str] = field(default_factory=dict)
    appointments: dict[str, dict[str, Any]] = field(default_factory=dict)
    workflows: dict[str, dict[str, Any]] = field(default_factory=dict)
    # contactId -> {workflowId: {"eventStartTime": ..., "enrolledAt": ms}}
    enrollments: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    # contactId -> conversation
    conversations: dict[str, dict[str, Any]] = field(default_factory=dict)
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "companyId": self.company_id,
            "name": self.name,
            "userId": self.user_id,
            "timezone": self.timezone,
        }


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


class Sandbox:
    """Everything one simulator instance knows; `app.state.sandbox`."""

    def __init__(self, settings: GhlSandboxSettings) -> None:
        self.settings = settings
        # How far GHL's servers' clock is from true time (POST /_sandbox/clock): it stamps
        # dateUpdated and the like; rate-limit windows and webhook timing keep true time.
        self.clock_skew = 0.0
        self.clock = lambda: settings.clock() + self.clock_skew
        self.limiter = RateLimiter(settings.burst_limit, settings.burst_window_ms, settings.daily_limit, settings.clock)
        self.stats = Stats()
        self.webhooks = WebhookDispatcher(settings, random.Random(settings.seed + 1), settings.clock)
        self.reset()

    def reset(self) -> None:
        self.rng = random.Random(self.settings.seed)
        self.locations: dict[str, Location] = {}
        self.apps: dict[str, App] = {}
        self.contact_location: dict[str, str] = {}
        self.appointment_location: dict[str, str] = {}
        self.message_location: dict[str, str] = {}
        self.codes: dict[str, Grant] = {}
        self.access_tokens: dict[str, Grant] = {}
        self.refresh_tokens: dict[str, Grant] = {}
        # Every message sent through POST /conversations/messages, and every attempt refused (DND...).
        self.outbox: list[dict[str, Any]] = []
        self.refused: list[dict[str, Any]] = []
        self.stats.reset()
        self.faults = Faults(rate_limit_enabled=self.settings.rate_limit_enabled)
        self.gate = FaultGate(self.faults, self.clock, seed=self.settings.seed + 2)
        self._last_stamp_ms = 0
        self.limiter.reset()
        self.webhooks.reset(self.gate)
        for registration in self.settings.apps:
            self.register_app(registration)

    def clear_faults(self) -> None:
        """DELETE /_sandbox/faults: defaults again, in place (the gate keeps its reference)."""
        fresh = Faults(rate_limit_enabled=self.settings.rate_limit_enabled)
        for f in fields(Faults):
            setattr(self.faults, f.name, getattr(fresh, f.name))

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
        from . import seed  # seed builds on the model, which builds on this module

        location = Location(
            id=location_id or self.new_id(),
            company_id=company_id or self.new_id(),
            name=name or "Sandbox Clinic",
            user_id=self.new_id(),
            timezone=self.settings.timezone,
        )
        self.locations[location.id] = location
        seed.furnish(self, location)
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

    def find_appointment(self, event_id: str) -> tuple[Location, dict[str, Any]] | None:
        location_id = self.appointment_location.get(event_id)
        if location_id is None:
            return None
        location = self.locations[location_id]
        return location, location.appointments[event_id]

    def find_message(self, message_id: str) -> tuple[Location, dict[str, Any]] | None:
        location_id = self.message_location.get(message_id)
        if location_id is None:
            return None
        location = self.locations[location_id]
        return location, location.messages[message_id]
