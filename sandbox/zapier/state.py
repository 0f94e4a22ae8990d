"""In-memory state: registered apps and their connections (one per app: the tenant), Zaps, catch-hook
deliveries, trigger runs, outgoing calls, faults and stats."""

from __future__ import annotations

import asyncio
import random
import string
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

from sandbox.common.faults import FaultGate, Faults
from sandbox.common.stats import Stats

from .definitions import AppDefinition, Trigger, parse
from .settings import ZapierSandboxSettings

_TOKEN_ALPHABET = string.ascii_lowercase + string.digits


@dataclass
class Connection:
    """Zapier's authData for the app's one connected account, plus an OAuth flow in progress."""

    auth_data: dict[str, Any] = field(default_factory=dict)
    connected: bool = False
    error: str | None = None
    pending: dict[str, str] | None = None  # state, code_verifier, redirect_uri while the user authorizes
    refreshes: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def as_json(self) -> dict[str, Any]:
        return {
            "connected": self.connected,
            "error": self.error,
            "auth_data": dict(self.auth_data),
            "refreshes": self.refreshes,
            "pending": self.pending is not None,
        }


@dataclass
class RegisteredApp:
    definition: AppDefinition
    connection: Connection

    def as_json(self) -> dict[str, Any]:
        return {**self.definition.raw, "connection": self.connection.as_json()}


@dataclass
class Zap:
    id: int
    token: str
    app_id: str
    trigger: Trigger
    input: dict[str, Any]
    target_url: str
    autoreplay: bool
    state: str = "off"  # on | off | deleted
    error: str | None = None
    subscribe_data: dict[str, Any] | None = None
    expires_at: float | None = None
    seeded: bool = False
    seen: dict[str, None] = field(default_factory=dict)  # insertion-ordered dedupe table
    next_poll_at: float | None = None
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "app_id": self.app_id,
            "trigger": self.trigger.key,
            "mode": "hook" if self.trigger.is_hook else "polling",
            "input": self.input,
            "state": self.state,
            "error": self.error,
            "target_url": self.target_url,
            "autoreplay": self.autoreplay,
            "subscribe_data": self.subscribe_data,
            "expires_at": self.expires_at,
            "dedupe": {"seeded": self.seeded, "seen": len(self.seen)},
            "deliveries": len(self.deliveries),
            "runs": len(self.runs),
            "history": self.history,
        }


class Sandbox:
    """Everything one simulator instance knows; ``app.state.sandbox``."""

    def __init__(self, settings: ZapierSandboxSettings) -> None:
        self.settings = settings
        self.clock = settings.clock
        self.stats = Stats()
        self._http: httpx.AsyncClient | None = None
        self.reset()

    def reset(self) -> None:
        self.rng = random.Random(self.settings.seed)
        self.reset_faults()
        self.stats.reset()
        self.apps: dict[str, RegisteredApp] = {}
        self.zaps: dict[int, Zap] = {}
        self.calls: list[dict[str, Any]] = []
        self.hook_windows: dict[tuple[str, int], int] = {}
        self._next_zap_id = 100_001
        for body in self.settings.apps:
            self.register(body)

    def reset_faults(self) -> None:
        self.faults = Faults(rate_limit_enabled=self.settings.rate_limit_enabled)
        self.gate = FaultGate(self.faults, self.clock, self.settings.seed + 1)

    def register(self, body: dict[str, Any]) -> RegisteredApp:
        definition = parse(body)
        # An API key is the whole connection; OAuth needs the authorization-code flow first.
        connection = Connection(auth_data={"api_key": definition.auth.key}, connected=True)
        if definition.auth.type == "oauth2":
            connection = Connection()
        app = RegisteredApp(definition, connection)
        self.apps[definition.app_id] = app
        return app

    def new_zap_id(self) -> int:
        self._next_zap_id += 1
        return self._next_zap_id - 1

    def new_token(self) -> str:
        return "".join(self.rng.choices(_TOKEN_ALPHABET, k=7))

    def new_uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def zap_for_hook(self, zap_id: str, token: str) -> Zap | None:
        zap = self.zaps.get(int(zap_id)) if zap_id.isdigit() else None
        return zap if zap is not None and zap.token == token else None

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(transport=self.settings.transport, timeout=self.settings.request_timeout)
        return self._http

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None
