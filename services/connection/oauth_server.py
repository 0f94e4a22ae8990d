"""OAuth 2.0 authorization code + PKCE with Concord as the authorization server (for Zapier).

The flow, headless but with a real consent:
1. An admin registers a client for a config (``create_client``): client id + secret, the secret
   shown once, only its SHA-256 stored, with the one redirect URI the client may use.
2. An admin consents by creating a one-time consent ticket (``create_ticket``, 10 minutes); the
   authorize URL the Zapier app definition uses carries it (``...&ticket=ct_...``). There is no
   browser page: the ticket *is* the admin's consent, made through the authenticated API.
3. The authorize endpoint (``authorize``) spends the ticket, checks client id, redirect URI and an
   S256 code challenge, and issues a code (single use, 10 minutes).
4. The token endpoint (``exchange_code``) checks the client secret, the redirect URI and the
   ``code_verifier`` against the challenge (authlib's RFC 7636 helper), and issues an opaque access
   token (1 hour) and a refresh token. ``refresh`` rotates the refresh token; presenting a spent
   refresh token or code again revokes the whole grant (RFC 6819 5.2.2.3, OAuth 2.1 4.3.1).
5. ``authenticate`` resolves a bearer access token to its config and practice; ``revoke_client``
   ends every grant of a client.

Every random value comes from authlib's ``generate_token``; every stored secret is a SHA-256 (the
values are 256-bit random strings, so no slow hash is needed), compared by a lookup on the hash."""

from __future__ import annotations

import hmac
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from authlib.common.security import generate_token
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from libs.errors import InvalidArgument, NotFound, Unauthenticated
from services.connection import models
from services.connection.inbound import _hash, _utc
from services.connection.registry_client import RegistryClient

CLIENT_PREFIX = "zc_"
SECRET_PREFIX = "zs_"  # noqa: S105 (a prefix, not a secret)
TICKET_PREFIX = "ct_"
CODE_PREFIX = "zac_"
ACCESS_PREFIX = "zat_"
REFRESH_PREFIX = "zrt_"
TICKET_TTL = timedelta(minutes=10)
CODE_TTL = timedelta(minutes=10)
ACCESS_TTL = timedelta(hours=1)
REFRESH_TTL = timedelta(days=90)
_KINDS = {TICKET_PREFIX: "ticket", CODE_PREFIX: "code", ACCESS_PREFIX: "access", REFRESH_PREFIX: "refresh"}


@dataclass(frozen=True)
class OAuthClient:
    client_id: str
    config_id: str
    practice_id: str
    redirect_uri: str
    created_at: datetime


@dataclass(frozen=True)
class Tokens:
    access_token: str
    refresh_token: str
    expires_in: int
    config_id: str

    def __repr__(self) -> str:  # bearer credentials
        return f"Tokens(expires_in={self.expires_in})"


@dataclass(frozen=True)
class Bearer:
    client_id: str
    config_id: str
    practice_id: str


def _to_client(row) -> OAuthClient:  # noqa: ANN001
    return OAuthClient(row.client_id, row.config_id, row.practice_id, row.redirect_uri, _utc(row.created_at))


def invalid_grant(message: str) -> InvalidArgument:
    return InvalidArgument(message, reason="INVALID_GRANT")


def _invalid_client() -> Unauthenticated:
    return Unauthenticated("the client credentials are not valid", reason="INVALID_CLIENT")


def check_redirect_uri(uri: str) -> str:
    parts = urlsplit(uri)
    if parts.scheme not in ("https", "http") or not parts.netloc or parts.fragment or len(uri) > 2048:
        raise InvalidArgument(
            "redirect_uri must be an absolute http(s) URL", field="redirect_uri", reason="INVALID_URL"
        )
    return uri


class OAuthServer:
    def __init__(
        self,
        sessions: async_sessionmaker,
        registry: RegistryClient | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._sessions = sessions
        self._registry = registry
        self._now = now

    async def register_client(self, config_id: str, redirect_uri: str) -> tuple[OAuthClient, str]:
        """A client for a config known to the registry (NotFound CONFIG_NOT_FOUND otherwise)."""
        if self._registry is None:
            raise RuntimeError("register_client needs the registry")
        config = await self._registry.get_config(config_id)
        return await self.create_client(config_id, config.practice_id, redirect_uri)

    # --- admin side -----------------------------------------------------------------------------

    async def create_client(self, config_id: str, practice_id: str, redirect_uri: str) -> tuple[OAuthClient, str]:
        check_redirect_uri(redirect_uri)
        client = OAuthClient(CLIENT_PREFIX + generate_token(24), config_id, practice_id, redirect_uri, self._now())
        secret = SECRET_PREFIX + generate_token(43)
        async with self._sessions() as session, session.begin():
            await session.execute(
                insert(models.issued_oauth_clients).values(
                    client_id=client.client_id,
                    secret_hash=_hash(secret),
                    config_id=config_id,
                    practice_id=practice_id,
                    redirect_uri=redirect_uri,
                    created_at=client.created_at,
                )
            )
        return client, secret

    async def revoke_client(self, config_id: str, client_id: str) -> None:
        now = self._now()
        async with self._sessions() as session, session.begin():
            result = await session.execute(
                update(models.issued_oauth_clients)
                .where(
                    models.issued_oauth_clients.c.client_id == client_id,
                    models.issued_oauth_clients.c.config_id == config_id,
                    models.issued_oauth_clients.c.revoked_at.is_(None),
                )
                .values(revoked_at=now)
            )
            if result.rowcount != 1:
                raise NotFound("no such OAuth client for this config", reason="OAUTH_CLIENT_NOT_FOUND")
            await session.execute(
                update(models.issued_oauth_grants)
                .where(
                    models.issued_oauth_grants.c.client_id == client_id, models.issued_oauth_grants.c.used_at.is_(None)
                )
                .values(used_at=now)
            )

    async def create_ticket(self, config_id: str, client_id: str) -> str:
        """The admin's consent to one authorization of ``client_id``; one use, 10 minutes."""
        async with self._sessions() as session, session.begin():
            client = await self._client(session, client_id)
            if client is None or client.config_id != config_id:
                raise NotFound("no such OAuth client for this config", reason="OAUTH_CLIENT_NOT_FOUND")
            ticket = TICKET_PREFIX + generate_token(43)
            await self._issue(session, ticket, str(uuid.uuid4()), client, TICKET_TTL)
        return ticket

    # --- authorize and token endpoints ----------------------------------------------------------

    async def authorize(
        self, ticket: str, client_id: str, redirect_uri: str, code_challenge: str, code_challenge_method: str
    ) -> str:
        """Spends the consent ticket and returns an authorization code bound to the S256 challenge.
        Client and redirect URI are checked first: only then may an error be redirected."""
        async with self._sessions() as session:
            client = await self._client(session, client_id)
        if client is None:
            raise _invalid_client()
        if not hmac.compare_digest(client.redirect_uri, redirect_uri):
            raise InvalidArgument(
                "redirect_uri is not the client's", field="redirect_uri", reason="INVALID_REDIRECT_URI"
            )
        if code_challenge_method != "S256" or not 43 <= len(code_challenge) <= 128:
            raise InvalidArgument(
                "an S256 code_challenge is required", field="code_challenge", reason="INVALID_REQUEST"
            )
        row = await self._spend(ticket, "ticket", client_id)
        if row is None:
            raise Unauthenticated("the consent ticket is not valid", reason="INVALID_CONSENT_TICKET")
        code = CODE_PREFIX + generate_token(43)
        async with self._sessions() as session, session.begin():
            await self._issue(
                session, code, row.grant_id, client, CODE_TTL, code_challenge=code_challenge, redirect_uri=redirect_uri
            )
        return code

    async def exchange_code(
        self, client_id: str, client_secret: str, code: str, redirect_uri: str, code_verifier: str
    ) -> Tokens:
        client = await self._authenticate_client(client_id, client_secret)
        row = await self._spend(code, "code", client_id)  # committed: a refused exchange still spends it
        if row is None:
            raise invalid_grant("the authorization code is not valid")
        if row.redirect_uri != redirect_uri:
            raise invalid_grant("redirect_uri does not match the authorization request")
        if not 43 <= len(code_verifier) <= 128 or not hmac.compare_digest(
            create_s256_code_challenge(code_verifier), row.code_challenge or ""
        ):
            raise invalid_grant("code_verifier does not match the code_challenge")
        return await self._tokens(row.grant_id, client)

    async def refresh(self, client_id: str, client_secret: str, refresh_token: str) -> Tokens:
        client = await self._authenticate_client(client_id, client_secret)
        row = await self._spend(refresh_token, "refresh", client_id)
        if row is None:
            raise invalid_grant("the refresh token is not valid")
        return await self._tokens(row.grant_id, client)

    async def authenticate(self, access_token: str) -> Bearer:
        refused = Unauthenticated("the access token is not valid", reason="INVALID_ACCESS_TOKEN")
        if not access_token.startswith(ACCESS_PREFIX) or len(access_token) > 200:
            raise refused
        grants = models.issued_oauth_grants
        async with self._sessions() as session:
            row = (
                await session.execute(
                    select(grants).where(grants.c.secret_hash == _hash(access_token), grants.c.kind == "access")
                )
            ).first()
            if row is None or row.used_at is not None or _utc(row.expires_at) <= self._now():
                raise refused
            client = await self._client(session, row.client_id)
        if client is None:
            raise refused
        return Bearer(row.client_id, row.config_id, row.practice_id)

    # --- internals ------------------------------------------------------------------------------

    async def _client(self, session: AsyncSession, client_id: str) -> OAuthClient | None:
        clients = models.issued_oauth_clients
        row = (await session.execute(select(clients).where(clients.c.client_id == client_id))).first()
        return None if row is None or row.revoked_at is not None else _to_client(row)

    async def _authenticate_client(self, client_id: str, secret: str) -> OAuthClient:
        clients = models.issued_oauth_clients
        async with self._sessions() as session:
            row = (await session.execute(select(clients).where(clients.c.client_id == client_id))).first()
        if row is None or row.revoked_at is not None or not hmac.compare_digest(row.secret_hash, _hash(secret)):
            raise _invalid_client()
        return _to_client(row)

    async def _issue(
        self,
        session: AsyncSession,
        value: str,
        grant_id: str,
        client: OAuthClient,
        ttl: timedelta,
        *,
        code_challenge: str | None = None,
        redirect_uri: str | None = None,
    ) -> None:
        now = self._now()
        await session.execute(
            insert(models.issued_oauth_grants).values(
                secret_hash=_hash(value),
                kind=_KINDS[value[: value.index("_") + 1]],
                grant_id=grant_id,
                client_id=client.client_id,
                config_id=client.config_id,
                practice_id=client.practice_id,
                code_challenge=code_challenge,
                redirect_uri=redirect_uri,
                expires_at=now + ttl,
                created_at=now,
            )
        )

    async def _spend(self, value: str, kind: str, client_id: str):  # noqa: ANN202
        """Marks a one-use value used (committed) and returns its row; None if unknown, expired, spent
        or another client's. A spent value shown again is a replay: the whole grant is revoked."""
        grants = models.issued_oauth_grants
        now = self._now()
        async with self._sessions() as session, session.begin():
            row = (
                await session.execute(select(grants).where(grants.c.secret_hash == _hash(value), grants.c.kind == kind))
            ).first()
            if row is None or row.client_id != client_id:
                return None
            # Conditional update: of two concurrent uses of one code exactly one wins.
            result = await session.execute(
                update(grants)
                .where(grants.c.secret_hash == row.secret_hash, grants.c.used_at.is_(None))
                .values(used_at=now)
            )
            if result.rowcount != 1:
                await session.execute(
                    update(grants)
                    .where(grants.c.grant_id == row.grant_id, grants.c.used_at.is_(None))
                    .values(used_at=now)
                )
                return None
        if _utc(row.expires_at) <= now:
            return None
        return row

    async def _tokens(self, grant_id: str, client: OAuthClient) -> Tokens:
        grants = models.issued_oauth_grants
        access = ACCESS_PREFIX + generate_token(43)
        refresh = REFRESH_PREFIX + generate_token(43)
        async with self._sessions() as session, session.begin():
            # One live access token per grant: the previous one ends with the refresh that replaces it.
            await session.execute(
                update(grants)
                .where(grants.c.grant_id == grant_id, grants.c.kind == "access", grants.c.used_at.is_(None))
                .values(used_at=self._now())
            )
            await self._issue(session, access, grant_id, client, ACCESS_TTL)
            await self._issue(session, refresh, grant_id, client, REFRESH_TTL)
        return Tokens(access, refresh, int(ACCESS_TTL.total_seconds()), client.config_id)
