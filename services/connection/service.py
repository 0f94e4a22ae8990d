"""Connection use cases: authorize (code flow) or connect with credentials (password, JWT bearer, API
key, SMART client assertion), store tokens and credentials encrypted, refresh them (one refresh at a
time per connection, since vendors such as GHL rotate refresh tokens; grants without a refresh token
are re-run with the stored credential), revoke."""

from __future__ import annotations

import asyncio
import logging
import secrets
import weakref
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from libs.crypto import EnvelopeCipher
from libs.errors import FailedPrecondition, InvalidArgument, Unavailable
from libs.identity import current_caller
from services.connection import domain
from services.connection.domain import (
    Credential,
    OAuthClient,
    PendingAuthorization,
    Status,
    StoredConnection,
    VendorDefinition,
    VendorRefused,
    VendorUnavailable,
)
from services.connection.oauth import VendorOAuth
from services.connection.registry_client import RegistryClient
from services.connection.repository import ConnectionRepository

log = logging.getLogger("concord.connection")

# Connections refreshed at once by the background refresher.
_REFRESH_CONCURRENCY = 8


@dataclass(frozen=True)
class AccessToken:
    access_token: str
    expires_at: datetime | None
    external_account_id: str
    api_base_url: str
    token_type: str

    def __repr__(self) -> str:
        return f"AccessToken(expires_at={self.expires_at!r})"


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _vendor_unavailable() -> Unavailable:
    return Unavailable("the vendor's token endpoint is unavailable", reason="VENDOR_UNAVAILABLE")


class ConnectionService:
    def __init__(
        self,
        repository: ConnectionRepository,
        cipher: EnvelopeCipher,
        registry: RegistryClient,
        oauth: VendorOAuth,
        *,
        refresh_margin_seconds: int,
        pending_ttl_seconds: int,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._repo = repository
        self._cipher = cipher
        self._registry = registry
        self._oauth = oauth
        self._margin = refresh_margin_seconds
        self._pending_ttl = timedelta(seconds=pending_ttl_seconds)
        self._now = clock
        # One refresh per connection at a time in this process (PostgreSQL row locks cover the others).
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    def _lock(self, config_id: str) -> asyncio.Lock:
        lock = self._locks.get(config_id)
        if lock is None:
            lock = self._locks[config_id] = asyncio.Lock()
        return lock

    # --- OAuth clients -------------------------------------------------------------------------

    async def shred_practice(self, practice_id: str) -> int:
        """Offboarding: the practice's data keys are destroyed, so no token or secret Concord held
        for it can be read again (the rows stay, unreadable). Returns the keys destroyed."""
        return await self._cipher.shred(practice_id)

    async def set_oauth_client(self, integration_type: str, client_id: str, client_secret: str) -> OAuthClient:
        if len(client_id) > 255:
            raise InvalidArgument("client_id is longer than 255 characters", field="client_id")
        definition = await self._registry.get_definition(integration_type)
        if not client_secret and definition.needs_client_secret:
            raise InvalidArgument("client_secret is required", field="client_secret", reason="REQUIRED_FIELD_MISSING")
        encrypted = await self._cipher.encrypt(
            domain.SYSTEM_PRACTICE, client_secret.encode(), domain.client_secret_purpose(integration_type)
        )
        await self._repo.put_oauth_client(integration_type, client_id, encrypted)
        log.info("oauth client set for %s", integration_type)
        return OAuthClient(integration_type, client_id, client_secret)

    async def _oauth_client(self, integration_type: str) -> OAuthClient:
        found = await self._repo.get_oauth_client(integration_type)
        if found is None:
            raise FailedPrecondition(f"no OAuth client is set for {integration_type}", reason="OAUTH_CLIENT_MISSING")
        client_id, encrypted = found
        secret = await self._cipher.decrypt(
            domain.SYSTEM_PRACTICE, encrypted, domain.client_secret_purpose(integration_type)
        )
        return OAuthClient(integration_type, client_id, secret.decode())

    # --- authorization-code flow ---------------------------------------------------------------

    async def start_authorization(self, config_id: str, redirect_uri: str) -> tuple[str, str]:
        domain.validate_redirect_uri(redirect_uri)
        config = await self._registry.get_config(config_id)
        definition = await self._registry.get_definition(config.integration_type)
        if not definition.supports(domain.AUTHORIZATION_CODE):
            raise FailedPrecondition(
                f"{config.integration_type} does not use the OAuth authorization-code flow",
                reason="AUTH_KIND_UNSUPPORTED",
            )
        client = await self._oauth_client(config.integration_type)
        state = secrets.token_urlsafe(32)
        verifier = secrets.token_urlsafe(64) if definition.pkce_supported else None
        url = await self._oauth.authorization_url(client, definition, redirect_uri, state, verifier)
        encrypted_verifier = (
            await self._cipher.encrypt(config.practice_id, verifier.encode(), domain.verifier_purpose(config_id))
            if verifier
            else None
        )
        now = self._now()
        pending = PendingAuthorization(
            state_hash=domain.hash_state(state),
            config_id=config_id,
            practice_id=config.practice_id,
            redirect_uri=redirect_uri,
            encrypted_code_verifier=encrypted_verifier,
            expires_at=now + self._pending_ttl,
            created_at=now,
        )
        async with self._lock(config_id), self._repo.locked(config_id) as unit:
            await unit.add_pending(pending)
            current = unit.current
            if current is None:
                await unit.save(
                    StoredConnection(config_id, config.practice_id, config.integration_type, Status.PENDING)
                )
            elif current.status != Status.CONNECTED:
                # A working connection keeps working until the new authorization completes.
                await unit.save(replace(current, status=Status.PENDING))
        log.info("authorization started for config %s", config_id)
        return url, state

    async def complete_authorization(self, state: str, code: str) -> StoredConnection:
        pending = await self._repo.take_pending(domain.hash_state(state), self._now())
        known = await self._repo.get_connection(pending.config_id) if pending else None
        if pending is None or known is None:
            raise InvalidArgument("state is unknown, expired or already used", field="state", reason="INVALID_STATE")
        config_id = pending.config_id
        definition = await self._registry.get_definition(known.integration_type)
        client = await self._oauth_client(known.integration_type)
        verifier = (
            (
                await self._cipher.decrypt(
                    pending.practice_id, pending.encrypted_code_verifier, domain.verifier_purpose(config_id)
                )
            ).decode()
            if pending.encrypted_code_verifier
            else None
        )
        async with self._lock(config_id):
            now = self._now()
            try:
                token = await self._oauth.exchange_code(client, definition, code, pending.redirect_uri, verifier)
                grant = domain.grant_from_token(token, definition, now)
            except VendorRefused as error:
                log.warning("token exchange refused for config %s: %s", config_id, error.error)
                raise FailedPrecondition(
                    "the vendor refused the authorization code",
                    reason="VENDOR_TOKEN_EXCHANGE_FAILED",
                    metadata={"vendor_error": error.error},
                ) from None
            except VendorUnavailable:
                raise _vendor_unavailable() from None
            access, refresh = await self._encrypt_tokens(pending.practice_id, config_id, grant)
            async with self._repo.locked(config_id) as unit:
                connection = StoredConnection(
                    config_id=config_id,
                    practice_id=pending.practice_id,
                    integration_type=known.integration_type,
                    status=Status.CONNECTED,
                    encrypted_access_token=access,
                    encrypted_refresh_token=refresh,
                    expires_at=grant.expires_at,
                    scopes=grant.scopes,
                    external_account_id=grant.external_account_id,
                    connected_at=now,
                    instance_url=grant.instance_url or None,
                )
                await unit.save(connection)
        log.info("config %s connected", config_id)
        return connection

    # --- credential flows (no browser) ---------------------------------------------------------

    async def connect_with_credentials(
        self, config_id: str, credential: Credential, external_account_id: str
    ) -> StoredConnection:
        """Runs the credential's grant once and stores its token and the credential, both encrypted."""
        if len(external_account_id) > 255:
            raise InvalidArgument("external_account_id is longer than 255 characters", field="external_account_id")
        config = await self._registry.get_config(config_id)
        definition = await self._registry.get_definition(config.integration_type)
        domain.require_supported(definition, credential)
        async with self._lock(config_id):
            now = self._now()
            try:
                grant = await self._grant(definition, credential, now)
            except VendorRefused as error:
                log.warning("credential grant refused for config %s: %s", config_id, error.error)
                raise FailedPrecondition(
                    "the vendor refused the credentials",
                    reason="VENDOR_TOKEN_EXCHANGE_FAILED",
                    metadata={"vendor_error": error.error},
                ) from None
            except VendorUnavailable:
                raise _vendor_unavailable() from None
            access, refresh = await self._encrypt_tokens(config.practice_id, config_id, grant)
            # An API key is its own access token: nothing else to keep.
            stored_credential = (
                None
                if credential.kind == domain.API_KEY
                else await self._cipher.encrypt_json(
                    config.practice_id, domain.credential_to_json(credential), domain.credential_purpose(config_id)
                )
            )
            async with self._repo.locked(config_id) as unit:
                await unit.drop_pending()
                connection = StoredConnection(
                    config_id=config_id,
                    practice_id=config.practice_id,
                    integration_type=config.integration_type,
                    status=Status.CONNECTED,
                    encrypted_access_token=access,
                    encrypted_refresh_token=refresh,
                    expires_at=grant.expires_at,
                    scopes=grant.scopes,
                    external_account_id=grant.external_account_id or external_account_id,
                    connected_at=now,
                    credential_kind=credential.kind,
                    encrypted_credential=stored_credential,
                    instance_url=grant.instance_url or None,
                )
                await unit.save(connection)
        log.info("config %s connected with %s", config_id, credential.kind)
        return connection

    async def _grant(self, definition: VendorDefinition, credential: Credential, now: datetime) -> domain.TokenGrant:
        """One token request with the credential (none for an API key)."""
        if isinstance(credential, domain.ApiKeyCredential):
            return domain.TokenGrant(credential.api_key, None, None, [], "")
        client = await self._oauth_client(definition.integration_type)
        if isinstance(credential, domain.PasswordCredential):
            token = await self._oauth.password_grant(client, definition, credential)
        elif isinstance(credential, domain.JwtBearerCredential):
            token = await self._oauth.jwt_bearer_grant(client, definition, credential)
        else:
            scopes = " ".join(credential.scopes or definition.scopes)
            if not scopes:
                raise InvalidArgument(
                    "client_assertion.scopes is required: the definition names no default scopes",
                    field="client_assertion.scopes",
                    reason="REQUIRED_FIELD_MISSING",
                )
            token = await self._oauth.client_assertion_grant(client, definition, credential, scopes)
        return domain.grant_from_token(token, definition, now)

    async def _encrypt_tokens(
        self, practice_id: str, config_id: str, grant: domain.TokenGrant
    ) -> tuple[bytes, bytes | None]:
        # Encrypt before the transaction writes: a first data key is written on its own connection.
        access = await self._cipher.encrypt(practice_id, grant.access_token.encode(), domain.access_purpose(config_id))
        refresh = (
            await self._cipher.encrypt(practice_id, grant.refresh_token.encode(), domain.refresh_purpose(config_id))
            if grant.refresh_token
            else None
        )
        return access, refresh

    # --- tokens for adapters -------------------------------------------------------------------

    async def get_access_token(self, config_id: str, force_refresh: bool) -> AccessToken:
        connection = await self.get_connection(config_id)
        _require_connected(connection)
        if force_refresh or domain.needs_refresh(connection, self._now(), self._margin):
            connection = await self._refresh(config_id, force_refresh, connection.encrypted_access_token)
        definition = await self._registry.get_definition(connection.integration_type)
        if connection.encrypted_access_token is None:
            raise _not_connected()
        access = await self._cipher.decrypt(
            connection.practice_id, connection.encrypted_access_token, domain.access_purpose(config_id)
        )
        return AccessToken(
            access_token=access.decode(),
            expires_at=connection.expires_at,
            external_account_id=connection.external_account_id,
            api_base_url=connection.instance_url or definition.endpoints.api_base_url,
            token_type="apikey" if connection.credential_kind == domain.API_KEY else "Bearer",
        )

    async def refresh_due(self) -> int:
        """Refreshes every connection whose access token expires within the margin; returns how many."""
        due = await self._repo.due_for_refresh(self._now() + timedelta(seconds=self._margin))
        gate = asyncio.Semaphore(_REFRESH_CONCURRENCY)
        started = self._now()

        async def one(config_id: str) -> bool:
            async with gate:
                try:
                    connection = await self._refresh(config_id, force=False, seen=None)
                    return connection.last_refresh_at is not None and connection.last_refresh_at >= started
                except Exception as error:  # one bad connection must not stop the others
                    reason = getattr(error, "reason", type(error).__name__)
                    log.warning("background refresh of config %s failed: %s", config_id, reason)
                    return False

        results = await asyncio.gather(*(one(config_id) for config_id in due))
        purged = await self._repo.purge_expired_pending(self._now())
        if due or purged:
            log.info(
                "refreshed %d of %d due connections; purged %d stale authorizations", sum(results), len(due), purged
            )
        return sum(results)

    async def _refresh(self, config_id: str, force: bool, seen: bytes | None) -> StoredConnection:
        """Refreshes under the connection's lock; ``seen`` is the access token the caller found."""
        async with self._lock(config_id):
            async with self._repo.locked(config_id) as unit:
                connection = unit.current
                if connection is None:
                    raise _not_connected()
                _require_connected(connection)
                now = self._now()
                if force and connection.encrypted_access_token != seen:
                    return connection  # another caller refreshed while this one waited
                if not force and not domain.needs_refresh(connection, now, self._margin):
                    return connection
                refreshed = await self._refresh_at_vendor(connection, force, now)
                if refreshed is not connection:
                    await unit.save(refreshed)
            if refreshed.status == Status.EXPIRED:
                raise _expired()
            return refreshed

    async def _refresh_at_vendor(self, connection: StoredConnection, force: bool, now: datetime) -> StoredConnection:
        """The connection after one refresh: new tokens, the same one, or EXPIRED."""
        config_id = connection.config_id
        still_valid = connection.expires_at is not None and connection.expires_at > now
        if connection.encrypted_refresh_token is None and connection.encrypted_credential is None:
            # An API key (or a grant without a refresh token) cannot be renewed: a 401 means it is dead.
            if still_valid and not force:
                return connection
            return _expired_connection(connection)
        definition: VendorDefinition = await self._registry.get_definition(connection.integration_type)
        try:
            if connection.encrypted_credential is not None:
                # No refresh token (Salesforce password / JWT bearer, SMART): run the grant again.
                credential = domain.credential_from_json(
                    await self._cipher.decrypt_json(
                        connection.practice_id, connection.encrypted_credential, domain.credential_purpose(config_id)
                    )
                )
                grant = await self._grant(definition, credential, now)
            else:
                client = await self._oauth_client(connection.integration_type)
                refresh_token = await self._cipher.decrypt(
                    connection.practice_id, connection.encrypted_refresh_token, domain.refresh_purpose(config_id)
                )
                token = await self._oauth.refresh(client, definition, refresh_token.decode())
                grant = domain.grant_from_token(token, definition, now)
        except VendorRefused as error:
            if domain.credential_refused(connection.credential_kind, error):
                log.warning("vendor refused the stored grant of config %s: %s", config_id, error.error)
                return _expired_connection(connection)
            raise FailedPrecondition(
                "the vendor refused the token refresh",
                reason="VENDOR_TOKEN_REFRESH_FAILED",
                metadata={"vendor_error": error.error},
            ) from None
        except VendorUnavailable:
            if still_valid and not force:
                log.warning("refresh of config %s postponed: vendor unavailable", config_id)
                return connection
            raise _vendor_unavailable() from None
        access, refresh = await self._encrypt_tokens(connection.practice_id, config_id, grant)
        log.info("config %s refreshed", config_id)
        return replace(
            connection,
            encrypted_access_token=access,
            # Vendors that do not rotate answer without a refresh token: the old one stays good.
            encrypted_refresh_token=refresh or connection.encrypted_refresh_token,
            expires_at=grant.expires_at,
            scopes=grant.scopes,
            external_account_id=grant.external_account_id or connection.external_account_id,
            instance_url=grant.instance_url or connection.instance_url,
            last_refresh_at=now,
        )

    # --- disconnect and reads ------------------------------------------------------------------

    async def disconnect(self, config_id: str) -> tuple[StoredConnection, bool]:
        async with self._lock(config_id), self._repo.locked(config_id) as unit:
            connection = unit.current
            if connection is None:
                config = await self._registry.get_config(config_id)
                return StoredConnection(
                    config_id, config.practice_id, config.integration_type, Status.DISCONNECTED
                ), False
            revoked = await self._revoke(connection)
            connection = replace(
                connection,
                status=Status.DISCONNECTED,
                encrypted_access_token=None,
                encrypted_refresh_token=None,
                encrypted_credential=None,
                expires_at=None,
                scopes=[],
            )
            await unit.drop_pending()
            await unit.save(connection)
        log.info("config %s disconnected (revoked at vendor: %s)", config_id, revoked)
        return connection, revoked

    async def _revoke(self, connection: StoredConnection) -> bool:
        """Revokes at the vendor where it offers RFC 7009; the refresh token revokes the grant."""
        if connection.credential_kind == domain.API_KEY:
            return False  # an API key is rotated in the vendor's console, not through OAuth
        blob, purpose, hint = connection.encrypted_refresh_token, domain.refresh_purpose, "refresh_token"
        if blob is None:
            blob, purpose, hint = connection.encrypted_access_token, domain.access_purpose, "access_token"
        if blob is None:
            return False
        definition = await self._registry.get_definition(connection.integration_type)
        if not definition.endpoints.revocation_url:
            return False
        try:
            client = await self._oauth_client(connection.integration_type)
        except FailedPrecondition:
            return False
        token = await self._cipher.decrypt(connection.practice_id, blob, purpose(connection.config_id))
        return await self._oauth.revoke(client, definition, token.decode(), hint)

    async def find_connections(self, integration_type: str, external_account_id: str) -> list[StoredConnection]:
        """Connected configs of that vendor account. Answers only the sync service's webhook path:
        the caller must act for no practice in particular (a system caller)."""
        if not integration_type or not external_account_id:
            raise InvalidArgument(
                "integration_type and external_account_id are required",
                field="external_account_id",
                reason="REQUIRED_FIELD_MISSING",
            )
        found = await self._repo.find_connections(integration_type, external_account_id)
        caller = current_caller()
        return [
            c
            for c in found
            if c.status == Status.CONNECTED and (not caller.practice_id or c.practice_id == caller.practice_id)
        ]

    async def get_connection(self, config_id: str) -> StoredConnection:
        connection = await self._repo.get_connection(config_id)
        if connection is not None:
            return connection
        config = await self._registry.get_config(config_id)
        return StoredConnection(config_id, config.practice_id, config.integration_type, Status.DISCONNECTED)


def _expired_connection(connection: StoredConnection) -> StoredConnection:
    # The grant is dead: keep no token of it, nor the credential the vendor no longer accepts.
    return replace(
        connection,
        status=Status.EXPIRED,
        encrypted_access_token=None,
        encrypted_refresh_token=None,
        encrypted_credential=None,
        expires_at=None,
    )


def _not_connected() -> FailedPrecondition:
    return FailedPrecondition("the config has no working connection", reason="NOT_CONNECTED")


def _expired() -> FailedPrecondition:
    return FailedPrecondition(
        "the vendor refused the stored grant: authorize or connect again", reason="CONNECTION_EXPIRED"
    )


def _require_connected(connection: StoredConnection) -> None:
    if connection.status == Status.EXPIRED:
        raise _expired()
    if connection.status != Status.CONNECTED:
        raise _not_connected()
