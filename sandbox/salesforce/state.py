"""In-memory state: orgs with their users, records, API usage, query cursors and change events;
connected apps, sessions, refresh tokens and authorization codes; faults, stats, the event sender."""

from __future__ import annotations

import base64
import random
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sandbox.common.faults import FaultGate, Faults
from sandbox.common.stats import Stats
from sandbox.common.webhooks import WebhookSender

from . import ids, schema
from .settings import ConnectedAppRegistration, SalesforceSandboxSettings, UserRegistration


@dataclass
class User:
    id: str
    org_id: str
    username: str
    password: str
    security_token: str
    first_name: str
    last_name: str
    email: str

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "org_id": self.org_id, "username": self.username, "name": self.name, "email": self.email}


@dataclass
class ConnectedApp:
    consumer_key: str
    consumer_secret: str
    name: str
    org_id: str
    redirect_uris: list[str]
    scopes: str
    public_key: rsa.RSAPublicKey | None
    require_secret_for_web_server: bool
    require_secret_for_refresh: bool
    client_credentials_user: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            "consumer_key": self.consumer_key,
            "name": self.name,
            "org_id": self.org_id,
            "redirect_uris": self.redirect_uris,
            "scopes": self.scopes,
            "jwt_public_key": self.public_key is not None,
        }


def load_public_key(pem: str) -> rsa.RSAPublicKey:
    """A PEM public key or X.509 certificate (the connected app's "Use digital signatures")."""
    data = pem.encode()
    key = (
        x509.load_pem_x509_certificate(data).public_key()
        if b"BEGIN CERTIFICATE" in data
        else serialization.load_pem_public_key(data)
    )
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("the JWT bearer flow needs an RSA key (RS256)")
    return key


@dataclass
class Session:
    token: str
    org_id: str
    user_id: str
    app_key: str | None
    client: str | None  # default client id for changeOrigin (connected app name / SOAP CallOptions)
    issued_ms: int
    last_active: float
    scope: str
    refresh_token: str | None = None
    revoked: bool = False


@dataclass
class RefreshGrant:
    token: str
    org_id: str
    user_id: str
    app_key: str
    scope: str
    revoked: bool = False


@dataclass
class AuthCode:
    code: str
    app_key: str
    org_id: str
    user_id: str
    redirect_uri: str
    scope: str
    challenge: str | None
    expires_at: float
    used: bool = False


@dataclass
class Cursor:
    locator: str
    user_id: str
    resource: str  # "query" or "queryAll"
    rows: list[dict[str, Any]]
    last_used: float
    batch_size: int = 2000


@dataclass
class Subscription:
    id: str
    url: str
    channel: str
    headers: dict[str, str]
    # Where it started (Pub/Sub's ReplayPreset) and, for CUSTOM, after which replay id.
    replay_preset: str = "LATEST"
    replay_id: int | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "url": self.url,
            "channel": self.channel,
            "replay_preset": self.replay_preset,
            "replay_id": self.replay_id,
        }


@dataclass
class Org:
    id: str
    name: str
    instance_url: str
    session_timeout: float
    daily_api_limit: int
    person_record_type: str = ""
    business_record_type: str = ""
    users: dict[str, User] = field(default_factory=dict)
    records: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    # (sObject, external id field) -> lower-cased value -> ids of live records
    ext_index: dict[tuple[str, str], dict[str, set[str]]] = field(default_factory=dict)
    api_calls: deque[float] = field(default_factory=deque)
    cursors: OrderedDict[str, Cursor] = field(default_factory=OrderedDict)
    cdc_events: list[dict[str, Any]] = field(default_factory=list)
    replay_id: int = 0
    commit_number: int = 0
    subscriptions: dict[str, Subscription] = field(default_factory=dict)
    appointment_number: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "instance_url": self.instance_url,
            "session_timeout": self.session_timeout,
            "daily_api_limit": self.daily_api_limit,
            "person_account_record_type_id": self.person_record_type,
            "business_account_record_type_id": self.business_record_type,
            "users": [u.as_json() for u in self.users.values()],
            "records": {
                name: sum(1 for r in table.values() if not r.get("IsDeleted")) for name, table in self.records.items()
            },
        }

    def table(self, sobject: str) -> dict[str, dict[str, Any]]:
        return self.records.setdefault(sobject, {})

    def find(self, record_id: str) -> tuple[schema.SObject, dict[str, Any]] | None:
        obj = schema.BY_PREFIX.get(ids.prefix_of(record_id))
        if obj is None:
            return None
        record = self.records.get(obj.name, {}).get(record_id)
        return (obj, record) if record is not None else None

    def index(self, obj: schema.SObject, record: dict[str, Any], add: bool) -> None:
        if record.get("IsDeleted"):
            return
        for f in obj.external_ids:
            value = record.get(f.name)
            if value is None:
                continue
            bucket = self.ext_index.setdefault((obj.name, f.name), {})
            key = str(value).lower()
            if add:
                bucket.setdefault(key, set()).add(record["Id"])
            elif key in bucket:
                bucket[key].discard(record["Id"])
                if not bucket[key]:
                    del bucket[key]

    def by_external_id(self, obj: schema.SObject, field_name: str, value: Any) -> list[str]:
        found = self.ext_index.get((obj.name, field_name), {}).get(str(value).lower(), set())
        return sorted(found)

    def count_call(self, now: float, limit_enforced: bool) -> bool:
        """Counts one API request in the rolling 24 hours; False (not counted) when the allowance is spent."""
        self.prune_calls(now)
        if limit_enforced and len(self.api_calls) >= self.daily_api_limit:
            return False
        self.api_calls.append(now)
        return True

    def prune_calls(self, now: float) -> int:
        while self.api_calls and self.api_calls[0] <= now - 86_400:
            self.api_calls.popleft()
        return len(self.api_calls)


class Sandbox:
    """Everything one simulator instance knows; ``app.state.sandbox``."""

    def __init__(self, settings: SalesforceSandboxSettings) -> None:
        self.settings = settings
        self.clock = settings.clock
        self.stats = Stats()
        self.faults = Faults(rate_limit_enabled=settings.rate_limit_enabled)
        self.gate = FaultGate(self.faults, settings.clock, settings.seed + 1)
        self.sender = WebhookSender(
            self.gate,
            transport=settings.webhook_transport,
            timeout=settings.webhook_timeout,
            retry_delays=settings.webhook_retry_delays,
            should_retry=lambda status: status >= 500,
            seed=settings.seed + 2,
        )
        self.login_url = (settings.login_url or settings.base_url).rstrip("/")
        self.api_routes: list[Any] = []  # set by create_app; Composite subrequests are matched against them
        self.reset()

    # -- lifecycle -----------------------------------------------------------------------------

    def reset(self) -> None:
        self.sender.reset()
        self.stats.reset()
        defaults = Faults(rate_limit_enabled=self.settings.rate_limit_enabled)
        for name, value in defaults.as_json().items():
            setattr(self.faults, name, value)
        self.rng = random.Random(self.settings.seed)
        self.fault_rng = random.Random(self.settings.seed + 3)
        self.ids = ids.IdFactory(self.settings.seed)
        self.orgs: dict[str, Org] = {}
        self.apps: dict[str, ConnectedApp] = {}
        self.sessions: dict[str, Session] = {}
        self.refresh_tokens: dict[str, RefreshGrant] = {}
        self.codes: dict[str, AuthCode] = {}
        self.users_by_name: dict[str, User] = {}
        self._last_commit_ms = 0
        org = self.create_org(self.settings.org_id, self.settings.org_name)
        self.default_org_id = org.id
        for user in self.settings.users:
            self.add_user(user)
        for app in self.settings.apps:
            self.add_app(app)
        if self.settings.seed_on_start:
            from .seed import seed_org

            seed_org(self, org, future_per_patient=self.settings.future_visits_per_patient)

    def now_ms(self) -> int:
        """Record timestamps: whole seconds, as Salesforce stores them."""
        return int(self.clock()) * 1000

    def token(self, nbytes: int = 32) -> str:
        return (
            base64.urlsafe_b64encode(self.rng.randbytes(nbytes))
            .decode()
            .rstrip("=")
            .replace("-", "x")
            .replace("_", "y")
        )

    # -- registration --------------------------------------------------------------------------

    def create_org(
        self,
        org_id: str | None = None,
        name: str | None = None,
        *,
        session_timeout: float | None = None,
        daily_api_limit: int | None = None,
        instance_url: str | None = None,
    ) -> Org:
        if org_id is not None:
            canonical = ids.to18(org_id)
            if canonical is None or not canonical.startswith(ids.ORGANIZATION):
                raise ValueError(f"not an organization id: {org_id}")
            org_id = canonical
            if org_id in self.orgs:
                raise ValueError(f"org {org_id} exists")
        org = Org(
            id=org_id or self.ids.new(ids.ORGANIZATION),
            name=name or "Sandbox Org",
            instance_url=(instance_url or self.settings.base_url).rstrip("/"),
            session_timeout=self.settings.session_timeout if session_timeout is None else float(session_timeout),
            daily_api_limit=self.settings.daily_api_limit if daily_api_limit is None else int(daily_api_limit),
        )
        self.orgs[org.id] = org
        now = self.now_ms()
        for developer_name, label, person in (
            ("PersonAccount", "Person Account", True),
            ("Business_Account", "Business Account", False),
        ):
            rt_id = self.ids.new(ids.RECORD_TYPE)
            org.table("RecordType")[rt_id] = {
                "Id": rt_id,
                "Name": label,
                "DeveloperName": developer_name,
                "SobjectType": "Account",
                "IsPersonType": person,
                "IsActive": True,
                "Description": None,
                "CreatedDate": now,
                "CreatedById": None,
                "LastModifiedDate": now,
                "LastModifiedById": None,
                "SystemModstamp": now,
            }
            if person:
                org.person_record_type = rt_id
            else:
                org.business_record_type = rt_id
        return org

    def org(self, org_id: str | None) -> Org:
        if org_id is None:
            return self.orgs[self.default_org_id]
        canonical = ids.to18(org_id)
        if canonical is None or canonical not in self.orgs:
            raise KeyError(org_id)
        return self.orgs[canonical]

    def add_user(self, reg: UserRegistration) -> User:
        org = self.org(reg.org_id)
        if reg.username.lower() in self.users_by_name:
            raise ValueError(f"username {reg.username} is taken (usernames are unique across orgs)")
        user = User(
            id=self.ids.new(ids.USER),
            org_id=org.id,
            username=reg.username,
            password=reg.password,
            security_token=reg.security_token,
            first_name=reg.first_name,
            last_name=reg.last_name,
            email=reg.email or reg.username,
        )
        org.users[user.id] = user
        self.users_by_name[user.username.lower()] = user
        now = self.now_ms()
        org.table("User")[user.id] = {
            "Id": user.id,
            "Username": user.username,
            "FirstName": user.first_name,
            "LastName": user.last_name,
            "Name": user.name,
            "Email": user.email,
            "IsActive": True,
            "CreatedDate": now,
            "CreatedById": user.id,
            "LastModifiedDate": now,
            "LastModifiedById": user.id,
            "SystemModstamp": now,
        }
        return user

    def add_app(self, reg: ConnectedAppRegistration) -> ConnectedApp:
        org = self.org(reg.org_id)
        if reg.consumer_key in self.apps:
            raise ValueError(f"consumer key {reg.consumer_key} is registered")
        app = ConnectedApp(
            consumer_key=reg.consumer_key,
            consumer_secret=reg.consumer_secret,
            name=reg.name,
            org_id=org.id,
            redirect_uris=list(reg.redirect_uris),
            scopes=reg.scopes,
            public_key=load_public_key(reg.jwt_public_key_pem) if reg.jwt_public_key_pem else None,
            require_secret_for_web_server=reg.require_secret_for_web_server,
            require_secret_for_refresh=reg.require_secret_for_refresh,
            client_credentials_user=reg.client_credentials_user,
        )
        self.apps[app.consumer_key] = app
        return app

    def user_by_name(self, username: str) -> User | None:
        return self.users_by_name.get(username.lower())

    def first_user(self, org: Org) -> User:
        if not org.users:
            raise ValueError(f"org {org.id} has no users")
        return next(iter(org.users.values()))

    # -- sessions ------------------------------------------------------------------------------

    def open_session(
        self, user: User, app: ConnectedApp | None, scope: str, *, client: str | None = None, refresh: str | None = None
    ) -> Session:
        token = f"{user.org_id[:15]}!AQ" + self.token(72)
        session = Session(
            token=token,
            org_id=user.org_id,
            user_id=user.id,
            app_key=app.consumer_key if app else None,
            client=client or (app.name if app else None),
            issued_ms=int(self.clock() * 1000),
            last_active=self.clock(),
            scope=scope,
            refresh_token=refresh,
        )
        self.sessions[token] = session
        return session

    def live_session(self, token: str) -> Session | None:
        """The session behind an access token, unless revoked or idle past the org's timeout."""
        session = self.sessions.get(token)
        if session is None or session.revoked:
            return None
        org = self.orgs.get(session.org_id)
        if org is None or self.clock() - session.last_active > org.session_timeout:
            return None
        return session

    def grant_refresh(self, user: User, app: ConnectedApp, scope: str) -> RefreshGrant:
        grant = RefreshGrant("5Aep861" + self.token(60), user.org_id, user.id, app.consumer_key, scope)
        self.refresh_tokens[grant.token] = grant
        return grant

    def expire_all_sessions(self) -> None:
        for session in self.sessions.values():
            session.last_active = float("-inf")

    def revoke_all(self) -> None:
        for session in self.sessions.values():
            session.revoked = True
        for grant in self.refresh_tokens.values():
            grant.revoked = True
