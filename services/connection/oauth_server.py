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
   ends every grant of a client, ``revoke_grant`` one grant.

A grant is one spent consent: its code, then its chain of access and refresh tokens, all rows of
``connection_issued_oauth_grants`` under one ``grant_id``. ``connection_issued_oauth_grant_details``
has one row per grant (made with the code) for what an admin lists: client, times, scope. Both are
changed together, the details row first, so a revocation and a refresh of the same grant serialize
on it: the refresh of a grant revoked meanwhile issues nothing.

``purge`` (run by the connection service's background loop) deletes what can no longer be used,
except what reuse detection still needs: every secret goes once expired; a spent access token at
once (nothing looks at a spent one again); a spent ticket or code at its expiry (10 minutes), so a
replay within its life still ends the grant; a spent refresh token at its own expiry (90 days) or
as soon as its grant is over (revoked, or nothing of it left to use), so while the grant is on, a
replay of a rotated refresh token still ends it. A grant's row goes when it is revoked or expired.
A purged secret answers the same error as a spent or expired one.

Every random value comes from authlib's ``generate_token``; every stored secret is a SHA-256 (the
values are 256-bit random strings, so no slow hash is needed), compared by a lookup on the hash."""

from __future__ import annotations

import hmac
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from authlib.common.security import generate_token
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from sqlalchemy import and_, delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from libs.errors import InvalidArgument, NotFound, Unauthenticated
from libs.paging import decode_token, next_token, page_size
from services.connection import models
from services.connection.audit import CONSENT, CREATE, REVOKE, CredentialAudit, audited
from services.connection.inbound import USE_RECORD_INTERVAL, _hash, _optional_utc, _utc, confine
from services.connection.registry_client import RegistryClient

log = logging.getLogger("concord.connection.oauth_server")

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
# What a grant's tokens may do: the Zapier API (/zapier/*) as the practice's staff role. The one
# scope Concord defines; narrower scopes are not offered.
GRANT_SCOPES = ("zapier",)
ZAPIER = "zapier"


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


@dataclass(frozen=True)
class Grant:
    """What an admin sees of a grant: never a token."""

    grant_id: str
    client_id: str
    config_id: str
    practice_id: str
    created_at: datetime
    expires_at: datetime
    last_refresh_at: datetime | None
    last_used_at: datetime | None
    scopes: tuple[str, ...] = GRANT_SCOPES


def _to_grant(row) -> Grant:  # noqa: ANN001
    return Grant(
        row.grant_id,
        row.client_id,
        row.config_id,
        row.practice_id,
        _utc(row.created_at),
        _utc(row.expires_at),
        _optional_utc(row.last_refresh_at),
        _optional_utc(row.last_used_at),
    )


def _to_client(row) -> OAuthClient:  # noqa: ANN001
    return OAuthClient(row.client_id, row.config_id, row.practice_id, row.redirect_uri, _utc(row.created_at))


def invalid_grant(message: str) -> InvalidArgument:
    return InvalidArgument(message, reason="INVALID_GRANT")


def _grant_not_found() -> NotFound:
    return NotFound("no such OAuth grant for this config", reason="GRANT_NOT_FOUND")


def _client_not_found() -> NotFound:
    return NotFound("no such OAuth client for this config", reason="OAUTH_CLIENT_NOT_FOUND")


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
        audit: CredentialAudit | None = None,
    ) -> None:
        self._sessions = sessions
        self._registry = registry
        self._now = now
        self._audit = audit

    async def register_client(self, config_id: str, redirect_uri: str) -> tuple[OAuthClient, str]:
        """A client for a config known to the registry (NotFound CONFIG_NOT_FOUND otherwise)."""
        if self._registry is None:
            raise RuntimeError("register_client needs the registry")
        config = await self._registry.get_config(config_id)
        confine(config.practice_id, NotFound("integration config not found", reason="CONFIG_NOT_FOUND"))
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
            await audited(self._audit, CREATE, f"IssuedOAuthClient/{client.client_id}", practice_id, ZAPIER)
        return client, secret

    async def revoke_client(self, config_id: str, client_id: str) -> None:
        now = self._now()
        clients = models.issued_oauth_clients
        async with self._sessions() as session, session.begin():
            client = await self._client(session, client_id)
            if client is None or client.config_id != config_id:
                raise _client_not_found()
            confine(client.practice_id, _client_not_found())
            result = await session.execute(
                update(clients)
                .where(clients.c.client_id == client_id, clients.c.revoked_at.is_(None))
                .values(revoked_at=now)
            )
            if result.rowcount != 1:
                raise _client_not_found()
            await _revoke(session, now, client_id=client_id)
            await audited(self._audit, REVOKE, f"IssuedOAuthClient/{client_id}", client.practice_id, ZAPIER)

    async def create_ticket(self, config_id: str, client_id: str) -> str:
        """The admin's consent to one authorization of ``client_id``; one use, 10 minutes."""
        async with self._sessions() as session, session.begin():
            client = await self._client(session, client_id)
            if client is None or client.config_id != config_id:
                raise _client_not_found()
            confine(client.practice_id, _client_not_found())
            ticket = TICKET_PREFIX + generate_token(43)
            await self._issue(session, ticket, str(uuid.uuid4()), client, TICKET_TTL)
            await audited(self._audit, CONSENT, f"IssuedOAuthClient/{client_id}", client.practice_id, ZAPIER)
        return ticket

    async def grants(self, config_id: str, requested_size: int, token: str) -> tuple[list[Grant], str]:
        """The config's live grants (tokens issued, neither revoked nor expired), in id order."""
        await self._check_config(config_id)
        details = models.issued_oauth_grant_details
        limit = page_size(requested_size)
        query = select(details).where(
            details.c.config_id == config_id,
            details.c.issued_at.is_not(None),
            details.c.revoked_at.is_(None),
            details.c.expires_at > self._now(),
            details.c.grant_id > decode_token(token),
        )
        async with self._sessions() as session:
            rows = (await session.execute(query.order_by(details.c.grant_id).limit(limit))).all()
        found = [_to_grant(row) for row in rows]
        return found, next_token([g.grant_id for g in found], limit)

    async def revoke_grant(self, config_id: str, grant_id: str) -> None:
        """Ends one grant: its access and refresh tokens are refused from this commit on. An
        unknown, ended, other config's or other practice's grant is NotFound GRANT_NOT_FOUND."""
        details = models.issued_oauth_grant_details
        now = self._now()
        async with self._sessions() as session, session.begin():
            row = (await session.execute(select(details).where(details.c.grant_id == grant_id))).first()
            if row is None or row.config_id != config_id or row.issued_at is None or _utc(row.expires_at) <= now:
                raise _grant_not_found()
            confine(row.practice_id, _grant_not_found())
            if not await _revoke(session, now, grant_id=grant_id):
                raise _grant_not_found()  # already revoked
            await audited(self._audit, REVOKE, f"IssuedOAuthGrant/{grant_id}", row.practice_id, ZAPIER)

    async def end_grants(self, config_id: str) -> None:
        """Ends every grant of the config (Disconnect), each audited; its clients stay."""
        details = models.issued_oauth_grant_details
        now = self._now()
        async with self._sessions() as session, session.begin():
            rows = (
                await session.execute(
                    select(details.c.grant_id, details.c.practice_id).where(
                        details.c.config_id == config_id, details.c.revoked_at.is_(None)
                    )
                )
            ).all()
            for grant_id, practice_id in rows:
                await _revoke(session, now, grant_id=grant_id)
                await audited(self._audit, REVOKE, f"IssuedOAuthGrant/{grant_id}", practice_id, ZAPIER)

    async def purge(self) -> int:
        """Deletes the secrets and grants that can no longer be used (module docstring); returns
        how many rows went."""
        grants, details = models.issued_oauth_grants, models.issued_oauth_grant_details
        now = self._now()
        expired = grants.c.expires_at <= now
        # A grant is on while a secret of it is unspent or its details row is live; the latter
        # covers the moment between spending a refresh token and issuing its successor.
        live_secrets = select(grants.c.grant_id).where(grants.c.used_at.is_(None), ~expired)
        live_grants = select(details.c.grant_id).where(details.c.revoked_at.is_(None), details.c.expires_at > now)
        grant_over = and_(grants.c.grant_id.not_in(live_secrets), grants.c.grant_id.not_in(live_grants))
        async with self._sessions() as session, session.begin():
            secrets = await session.execute(
                delete(grants).where(
                    or_(
                        expired,
                        and_(grants.c.kind == "access", grants.c.used_at.is_not(None)),
                        and_(grants.c.kind == "refresh", grants.c.used_at.is_not(None), grant_over),
                    )
                )
            )
            ended = await session.execute(
                delete(details).where(or_(details.c.revoked_at.is_not(None), details.c.expires_at <= now))
            )
        return secrets.rowcount + ended.rowcount

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
        now = self._now()
        async with self._sessions() as session, session.begin():
            await session.execute(
                insert(models.issued_oauth_grant_details).values(
                    grant_id=row.grant_id,
                    client_id=client.client_id,
                    config_id=client.config_id,
                    practice_id=client.practice_id,
                    created_at=now,
                    expires_at=now + CODE_TTL,
                )
            )
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
        return await self._tokens(row.grant_id, client, first=True)

    async def refresh(self, client_id: str, client_secret: str, refresh_token: str) -> Tokens:
        client = await self._authenticate_client(client_id, client_secret)
        row = await self._spend(refresh_token, "refresh", client_id)
        if row is None:
            raise invalid_grant("the refresh token is not valid")
        return await self._tokens(row.grant_id, client, first=False)

    async def authenticate(self, access_token: str) -> Bearer:
        refused = Unauthenticated("the access token is not valid", reason="INVALID_ACCESS_TOKEN")
        if not access_token.startswith(ACCESS_PREFIX) or len(access_token) > 200:
            raise refused
        grants, details = models.issued_oauth_grants, models.issued_oauth_grant_details
        now = self._now()
        async with self._sessions() as session:
            row = (
                await session.execute(
                    select(grants, details.c.revoked_at.label("grant_revoked_at"), details.c.last_used_at)
                    .join(details, details.c.grant_id == grants.c.grant_id)
                    .where(grants.c.secret_hash == _hash(access_token), grants.c.kind == "access")
                )
            ).first()
            if row is None or row.used_at is not None or row.grant_revoked_at is not None:
                raise refused
            if _utc(row.expires_at) <= now:
                raise refused
            client = await self._client(session, row.client_id)
        if client is None:
            raise refused
        if row.last_used_at is None or _utc(row.last_used_at) <= now - USE_RECORD_INTERVAL:
            async with self._sessions() as session, session.begin():
                await session.execute(
                    update(details).where(details.c.grant_id == row.grant_id).values(last_used_at=now)
                )
        return Bearer(row.client_id, row.config_id, row.practice_id)

    # --- internals ------------------------------------------------------------------------------

    async def _check_config(self, config_id: str) -> None:
        """The config exists and is the caller's practice's (NotFound CONFIG_NOT_FOUND, another
        practice's config told apart from no config at all)."""
        if self._registry is None:
            return  # the store alone (unit tests): its rows are filtered by config only
        config = await self._registry.get_config(config_id)
        confine(config.practice_id, NotFound("integration config not found", reason="CONFIG_NOT_FOUND"))

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
            spent_now = result.rowcount == 1
            ended = 0 if spent_now else await _revoke(session, now, grant_id=row.grant_id)
        if not spent_now:
            if ended:
                await self._audit_replay(row.grant_id, row.practice_id)
            return None
        if _utc(row.expires_at) <= now:
            return None
        return row

    async def _audit_replay(self, grant_id: str, practice_id: str) -> None:
        """A grant ended by a replay is recorded after the revocation committed: ending it must not
        wait for the audit service, and its failure to record is logged, not the client's answer."""
        if self._audit is None:
            return
        try:
            await self._audit.record(REVOKE, f"IssuedOAuthGrant/{grant_id}", practice_id, ZAPIER, by_system=True)
        except Exception as error:
            log.error("could not audit a grant ended by a replay: %s", type(error).__name__)

    async def _tokens(self, grant_id: str, client: OAuthClient, *, first: bool) -> Tokens:
        grants, details = models.issued_oauth_grants, models.issued_oauth_grant_details
        access = ACCESS_PREFIX + generate_token(43)
        refresh = REFRESH_PREFIX + generate_token(43)
        now = self._now()
        async with self._sessions() as session, session.begin():
            # The details row first (see the module docstring): a grant revoked since the code or
            # refresh token was spent gets no new tokens.
            times = {"issued_at": now} if first else {"last_refresh_at": now}
            result = await session.execute(
                update(details)
                .where(details.c.grant_id == grant_id, details.c.revoked_at.is_(None))
                .values(expires_at=now + REFRESH_TTL, **times)
            )
            if result.rowcount != 1:
                raise invalid_grant("the grant was revoked")
            # One live access token per grant: the previous one ends with the refresh that replaces it.
            await session.execute(
                update(grants)
                .where(grants.c.grant_id == grant_id, grants.c.kind == "access", grants.c.used_at.is_(None))
                .values(used_at=now)
            )
            await self._issue(session, access, grant_id, client, ACCESS_TTL)
            await self._issue(session, refresh, grant_id, client, REFRESH_TTL)
        return Tokens(access, refresh, int(ACCESS_TTL.total_seconds()), client.config_id)


async def _revoke(session: AsyncSession, now: datetime, *, grant_id: str = "", client_id: str = "") -> int:
    """Ends one grant, or every grant of a client: the details rows first (a refresh of the same
    grant waits on them, then issues nothing), then every secret still unspent. Returns how many
    grants were live."""
    grants, details = models.issued_oauth_grants, models.issued_oauth_grant_details
    if grant_id:
        of_details, of_grants = details.c.grant_id == grant_id, grants.c.grant_id == grant_id
    else:
        of_details, of_grants = details.c.client_id == client_id, grants.c.client_id == client_id
    ended = await session.execute(
        update(details).where(of_details, details.c.revoked_at.is_(None)).values(revoked_at=now)
    )
    await session.execute(update(grants).where(of_grants, grants.c.used_at.is_(None)).values(used_at=now))
    return ended.rowcount
