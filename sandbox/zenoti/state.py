"""Everything one simulator instance knows; ``app.state.sandbox``."""

from __future__ import annotations

import random
from dataclasses import dataclass

from sandbox.common.faults import FaultGate, Faults
from sandbox.common.stats import Stats

from . import seed
from .model import Org, new_guid
from .ratelimit import RateLimiter
from .settings import ZenotiSandboxSettings
from .webhooks import ZenotiWebhooks


@dataclass
class Session:
    """A login through POST /v1/tokens; a refresh keeps the session (token_id) and rotates its tokens."""

    token_id: str
    account_name: str
    user_name: str
    app_id: str
    refresh_token: str
    refresh_expiry: float


@dataclass
class AccessToken:
    session: Session
    expiry: float


class Sandbox:
    def __init__(self, settings: ZenotiSandboxSettings) -> None:
        self.settings = settings
        self.clock = settings.clock
        self.stats = Stats()
        self.faults = Faults(rate_limit_enabled=settings.rate_limit_enabled)
        self.gate = FaultGate(self.faults, settings.clock, seed=settings.seed + 2)
        self.limiter = RateLimiter(settings.rate_limit, settings.rate_window, settings.clock)
        self.webhooks = ZenotiWebhooks(settings, self.gate, settings.clock)
        self.reset()

    def reset(self) -> None:
        self.rng = random.Random(self.settings.seed)
        self.reset_faults()
        self.stats.reset()
        self.limiter.reset()
        self.webhooks.reset()
        self.access_tokens: dict[str, AccessToken] = {}
        self.refresh_tokens: dict[str, Session] = {}
        self.orgs: dict[str, Org] = {}
        for config in self.settings.orgs:
            org = Org(config=config, id=new_guid(self.rng), api_key=config.api_key)
            if config.seed:
                seed.seed_org(org, random.Random(f"{self.settings.seed}:{config.account_name}"), self.clock())
            else:
                seed.seed_catalog(org, random.Random(f"{self.settings.seed}:{config.account_name}"))
                seed.seed_staff(org)
            self.orgs[config.account_name.lower()] = org

    def reset_faults(self) -> None:
        self.faults = Faults(rate_limit_enabled=self.settings.rate_limit_enabled)
        self.gate.faults = self.faults

    def org(self, account_name: str) -> Org | None:
        return self.orgs.get(account_name.lower())

    def org_by_key(self, api_key: str) -> Org | None:
        return next((o for o in self.orgs.values() if o.api_key == api_key), None)

    def expire_all_tokens(self) -> None:
        """Every access token expires now; refresh tokens keep working."""
        now = self.clock()
        for token in self.access_tokens.values():
            token.expiry = min(token.expiry, now)

    def revoke_all_tokens(self) -> None:
        self.access_tokens.clear()
        self.refresh_tokens.clear()
