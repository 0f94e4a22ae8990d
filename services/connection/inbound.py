"""Credentials the other way round: keys Concord issues to a vendor that calls Concord (Zapier's
actions and hook subscriptions), and the REST hook subscriptions such a vendor registers.

A key is 32 random bytes shown once; only its SHA-256 is stored (a key that long needs no slow
hash). Target URLs are capabilities (anyone holding one can post into the Zap), so they and each
subscription's signing secret are encrypted with the practice's data key."""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import async_sessionmaker

from libs.crypto import EnvelopeCipher
from libs.errors import ConcordError, InvalidArgument, NotFound, Unauthenticated
from libs.identity import current_caller
from libs.paging import decode_token, next_token, page_size
from services.connection import models
from services.connection.audit import CREATE, REVOKE, CredentialAudit, audited
from services.connection.domain import Status, StoredConnection
from services.connection.registry_client import RegistryClient
from services.connection.repository import ConnectionRepository

KEY_PREFIX = "ck_"
# The connection of a config whose vendor calls Concord: connected while it has a key.
INBOUND_KIND = "INBOUND_API_KEY"
HOOK_EVENTS = ("patient.created", "patient.updated", "appointment.booked", "appointment.cancelled")
MAX_SUBSCRIPTIONS_PER_CONFIG = 200
_KEY_SHAPE = re.compile(r"^ck_[A-Za-z0-9_-]{20,100}$")
# A credential's last use is written at most this often: a request is a read, not a write.
USE_RECORD_INTERVAL = timedelta(minutes=1)


@dataclass(frozen=True)
class InboundKey:
    key_id: str
    config_id: str
    practice_id: str
    label: str
    created_at: datetime
    last_used_at: datetime | None = None


@dataclass(frozen=True)
class Subscription:
    subscription_id: str
    config_id: str
    event: str
    created_at: datetime
    target_url: str = ""
    signing_secret: str = ""

    def __repr__(self) -> str:  # the URL and secret are capabilities
        return f"Subscription({self.subscription_id!r}, {self.event!r})"


def _hash(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def confine(practice_id: str, error: ConcordError) -> None:
    """Raises ``error`` when the caller names a practice and it is not ``practice_id``: a direct
    gRPC caller of one practice cannot see or change another's credentials by their ids. Callers
    that name none are the system's own (the gateway always names the user's)."""
    caller = current_caller()
    if caller.practice_id and caller.practice_id != practice_id:
        raise error


def _optional_utc(value: datetime | None) -> datetime | None:
    return None if value is None else _utc(value)


def _to_key(row) -> InboundKey:  # noqa: ANN001
    return InboundKey(
        row.key_id, row.config_id, row.practice_id, row.label, _utc(row.created_at), _optional_utc(row.last_used_at)
    )


def _target_purpose(config_id: str) -> str:
    return f"hook-target:{config_id}"


def _secret_purpose(config_id: str) -> str:
    return f"hook-secret:{config_id}"


def check_target_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.netloc or len(url) > 2048:
        raise InvalidArgument("target_url must be an absolute http(s) URL", field="target_url", reason="INVALID_URL")
    return url


def check_event(event: str) -> str:
    if event not in HOOK_EVENTS:
        raise InvalidArgument(f"event must be one of {', '.join(HOOK_EVENTS)}", field="event", reason="UNKNOWN_EVENT")
    return event


class InboundAccess:
    def __init__(
        self,
        sessions: async_sessionmaker,
        cipher: EnvelopeCipher,
        registry: RegistryClient,
        connections: ConnectionRepository,
        audit: CredentialAudit | None = None,
    ) -> None:
        self._sessions = sessions
        self._cipher = cipher
        self._registry = registry
        self._connections = connections
        self._audit = audit

    # --- keys ---------------------------------------------------------------------------------

    async def create_key(self, config_id: str, label: str) -> tuple[InboundKey, str]:
        config = await self._registry.get_config(config_id)
        confine(config.practice_id, NotFound("integration config not found", reason="CONFIG_NOT_FOUND"))
        if len(label) > 200:
            raise InvalidArgument("label is longer than 200 characters", field="label", reason="TOO_LONG")
        api_key = KEY_PREFIX + secrets.token_urlsafe(32)
        key = InboundKey(str(uuid.uuid4()), config_id, config.practice_id, label or "zapier", datetime.now(UTC))
        previous = await self._connections.get_connection(config_id)
        # Only a config the vendor reaches solely by calling Concord (Zapier) has its connection made
        # by a key; a Salesforce config's CDC key leaves the OAuth connection as it is.
        inbound_only = previous is None or previous.credential_kind == INBOUND_KIND
        async with self._sessions() as session, session.begin():
            if inbound_only and (previous is None or previous.status != Status.CONNECTED):
                # Keys issued before a Disconnect stay dead when the config is connected again.
                await session.execute(
                    update(models.inbound_keys)
                    .where(models.inbound_keys.c.config_id == config_id, models.inbound_keys.c.revoked_at.is_(None))
                    .values(revoked_at=key.created_at)
                )
            await session.execute(
                insert(models.inbound_keys).values(
                    key_id=key.key_id,
                    key_hash=_hash(api_key),
                    config_id=config_id,
                    practice_id=key.practice_id,
                    label=key.label,
                    created_at=key.created_at,
                )
            )
            await audited(self._audit, CREATE, f"InboundKey/{key.key_id}", key.practice_id, config.integration_type)
        if not inbound_only:
            return key, api_key
        await self.connect(config_id, key.created_at)
        return key, api_key

    async def connect(self, config_id: str, at: datetime) -> None:
        """A config Zapier calls is connected once it has a key or an OAuth grant; Disconnect ends
        every key (and, through ``is_connected``, every OAuth access token)."""
        config = await self._registry.get_config(config_id)
        previous = await self._connections.get_connection(config_id)
        if previous is not None and previous.credential_kind != INBOUND_KIND:
            return
        async with self._connections.locked(config_id) as unit:
            await unit.save(
                StoredConnection(
                    config_id,
                    config.practice_id,
                    config.integration_type,
                    Status.CONNECTED,
                    connected_at=at,
                    credential_kind=INBOUND_KIND,
                )
            )

    async def is_connected(self, config_id: str) -> bool:
        connection = await self._connections.get_connection(config_id)
        return connection is not None and connection.status == Status.CONNECTED

    async def revoke_key(self, config_id: str, key_id: str) -> None:
        config = await self._registry.get_config(config_id)
        not_found = NotFound("no such key for this config", reason="KEY_NOT_FOUND")
        confine(config.practice_id, not_found)
        async with self._sessions() as session, session.begin():
            result = await session.execute(
                update(models.inbound_keys)
                .where(
                    models.inbound_keys.c.key_id == key_id,
                    models.inbound_keys.c.config_id == config_id,
                    models.inbound_keys.c.revoked_at.is_(None),
                )
                .values(revoked_at=datetime.now(UTC))
            )
            if result.rowcount != 1:
                raise not_found
            await audited(self._audit, REVOKE, f"InboundKey/{key_id}", config.practice_id, config.integration_type)

    async def end_keys(self, config_id: str) -> None:
        """Revokes every key of the config (Disconnect), each audited."""
        config = await self._registry.get_config(config_id)
        table = models.inbound_keys
        async with self._sessions() as session, session.begin():
            live = table.c.config_id == config_id, table.c.revoked_at.is_(None)
            ended = (await session.execute(select(table.c.key_id).where(*live))).scalars().all()
            await session.execute(update(table).where(*live).values(revoked_at=datetime.now(UTC)))
            for key_id in ended:
                await audited(self._audit, REVOKE, f"InboundKey/{key_id}", config.practice_id, config.integration_type)

    async def keys(self, config_id: str, requested_size: int, token: str) -> tuple[list[InboundKey], str]:
        """The config's unrevoked keys, in id order; never a key or its hash. While the config is
        disconnected they are refused all the same (``authenticate``)."""
        config = await self._registry.get_config(config_id)
        confine(config.practice_id, NotFound("integration config not found", reason="CONFIG_NOT_FOUND"))
        limit = page_size(requested_size)
        table = models.inbound_keys
        query = select(table).where(
            table.c.config_id == config_id, table.c.revoked_at.is_(None), table.c.key_id > decode_token(token)
        )
        async with self._sessions() as session:
            rows = (await session.execute(query.order_by(table.c.key_id).limit(limit))).all()
        found = [_to_key(row) for row in rows]
        return found, next_token([k.key_id for k in found], limit)

    async def authenticate(self, api_key: str) -> InboundKey:
        refused = Unauthenticated("the API key is not valid", reason="INVALID_API_KEY")
        if not _KEY_SHAPE.match(api_key):
            raise refused
        async with self._sessions() as session:
            row = (
                await session.execute(
                    select(models.inbound_keys).where(models.inbound_keys.c.key_hash == _hash(api_key))
                )
            ).first()
        # The lookup is by hash of a 256-bit key: its timing tells nothing about other keys.
        if row is None or row.revoked_at is not None:
            raise refused
        connection = await self._connections.get_connection(row.config_id)
        if connection is None or connection.status != Status.CONNECTED:
            raise refused
        now = datetime.now(UTC)
        if row.last_used_at is None or _utc(row.last_used_at) <= now - USE_RECORD_INTERVAL:
            async with self._sessions() as session, session.begin():
                await session.execute(
                    update(models.inbound_keys)
                    .where(models.inbound_keys.c.key_id == row.key_id)
                    .values(last_used_at=now)
                )
        return _to_key(row)

    # --- hook subscriptions ---------------------------------------------------------------------

    async def subscribe(self, config_id: str, event: str, target_url: str) -> Subscription:
        check_event(event)
        check_target_url(target_url)
        config = await self._registry.get_config(config_id)
        secret = secrets.token_urlsafe(32)
        subscription = Subscription(str(uuid.uuid4()), config_id, event, datetime.now(UTC), target_url, secret)
        target_enc = await self._cipher.encrypt(config.practice_id, target_url.encode(), _target_purpose(config_id))
        secret_enc = await self._cipher.encrypt(config.practice_id, secret.encode(), _secret_purpose(config_id))
        async with self._sessions() as session, session.begin():
            count = len(
                (
                    await session.execute(
                        select(models.hook_subscriptions.c.subscription_id).where(
                            models.hook_subscriptions.c.config_id == config_id
                        )
                    )
                ).all()
            )
            if count >= MAX_SUBSCRIPTIONS_PER_CONFIG:
                raise InvalidArgument(
                    "too many hook subscriptions for this config", field="config_id", reason="TOO_MANY_SUBSCRIPTIONS"
                )
            await session.execute(
                insert(models.hook_subscriptions).values(
                    subscription_id=subscription.subscription_id,
                    config_id=config_id,
                    practice_id=config.practice_id,
                    event=event,
                    encrypted_target_url=target_enc,
                    encrypted_signing_secret=secret_enc,
                    created_at=subscription.created_at,
                )
            )
        return subscription

    async def unsubscribe(self, config_id: str, subscription_id: str) -> None:
        async with self._sessions() as session, session.begin():
            result = await session.execute(
                delete(models.hook_subscriptions).where(
                    models.hook_subscriptions.c.subscription_id == subscription_id,
                    models.hook_subscriptions.c.config_id == config_id,
                )
            )
        if result.rowcount != 1:
            raise NotFound("no such hook subscription", reason="SUBSCRIPTION_NOT_FOUND")

    async def subscriptions(
        self, config_id: str, event: str, include_secrets: bool, requested_size: int, token: str
    ) -> tuple[list[Subscription], str]:
        if event:
            check_event(event)
        limit = page_size(requested_size)
        table = models.hook_subscriptions
        query = select(table).where(table.c.config_id == config_id, table.c.subscription_id > decode_token(token))
        if event:
            query = query.where(table.c.event == event)
        async with self._sessions() as session:
            rows = (await session.execute(query.order_by(table.c.subscription_id).limit(limit))).all()
        found = []
        for row in rows:
            subscription = Subscription(row.subscription_id, row.config_id, row.event, _utc(row.created_at))
            if include_secrets:
                target = await self._cipher.decrypt(
                    row.practice_id, row.encrypted_target_url, _target_purpose(config_id)
                )
                secret = await self._cipher.decrypt(
                    row.practice_id, row.encrypted_signing_secret, _secret_purpose(config_id)
                )
                subscription = Subscription(
                    row.subscription_id,
                    row.config_id,
                    row.event,
                    _utc(row.created_at),
                    target.decode(),
                    secret.decode(),
                )
            found.append(subscription)
        return found, next_token([s.subscription_id for s in found], limit)
