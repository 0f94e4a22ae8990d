"""Connection persistence (SQLAlchemy 2 async)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict
from datetime import UTC, datetime

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.connection import models
from services.connection.domain import PendingAuthorization, Status, StoredConnection

_C = models.connections.c
_P = models.pending_authorizations.c
_O = models.oauth_clients.c


def _utc(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; everything stored is UTC.
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def _connection(row) -> StoredConnection:  # noqa: ANN001
    values = dict(row._mapping)
    for key in ("expires_at", "connected_at", "last_refresh_at", "updated_at"):
        values[key] = _utc(values[key])
    return StoredConnection(**{**values, "status": Status(values["status"]), "scopes": list(values["scopes"])})


class ConnectionUnit:
    """One transaction around one connection row, locked (FOR UPDATE) on PostgreSQL."""

    def __init__(self, session: AsyncSession, config_id: str, current: StoredConnection | None) -> None:
        self._session = session
        self.config_id = config_id
        self.current = current

    async def save(self, connection: StoredConnection) -> None:
        values = {**asdict(connection), "status": connection.status.value, "updated_at": datetime.now(UTC)}
        if self.current is None:
            await self._session.execute(models.connections.insert().values(**values))
        else:
            values.pop("config_id")
            await self._session.execute(
                update(models.connections).where(_C.config_id == self.config_id).values(**values)
            )
        self.current = connection

    async def add_pending(self, pending: PendingAuthorization) -> None:
        await self._session.execute(models.pending_authorizations.insert().values(**asdict(pending)))

    async def drop_pending(self) -> None:
        await self._session.execute(delete(models.pending_authorizations).where(_P.config_id == self.config_id))


class ConnectionRepository:
    def __init__(self, sessions: async_sessionmaker) -> None:
        self._sessions = sessions

    async def put_oauth_client(self, integration_type: str, client_id: str, encrypted_secret: bytes) -> None:
        now = datetime.now(UTC)
        values = {"client_id": client_id, "encrypted_client_secret": encrypted_secret, "updated_at": now}
        async with self._sessions() as session, session.begin():
            exists = (
                await session.execute(
                    select(_O.integration_type).where(_O.integration_type == integration_type).with_for_update()
                )
            ).first()
            if exists:
                await session.execute(
                    update(models.oauth_clients).where(_O.integration_type == integration_type).values(**values)
                )
            else:
                await session.execute(
                    models.oauth_clients.insert().values(integration_type=integration_type, created_at=now, **values)
                )

    async def get_oauth_client(self, integration_type: str) -> tuple[str, bytes] | None:
        async with self._sessions() as session:
            row = (
                await session.execute(
                    select(_O.client_id, _O.encrypted_client_secret).where(_O.integration_type == integration_type)
                )
            ).first()
        return (row.client_id, row.encrypted_client_secret) if row else None

    async def get_connection(self, config_id: str) -> StoredConnection | None:
        async with self._sessions() as session:
            row = (await session.execute(select(models.connections).where(_C.config_id == config_id))).first()
        return _connection(row) if row else None

    async def find_connections(self, integration_type: str, external_account_id: str) -> list[StoredConnection]:
        query = select(models.connections).where(
            _C.integration_type == integration_type, _C.external_account_id == external_account_id
        )
        async with self._sessions() as session:
            rows = (await session.execute(query)).all()
        return [_connection(row) for row in rows]

    @asynccontextmanager
    async def locked(self, config_id: str) -> AsyncIterator[ConnectionUnit]:
        """Commits when the block ends normally, rolls back when it raises."""
        async with self._sessions() as session, session.begin():
            row = (
                await session.execute(select(models.connections).where(_C.config_id == config_id).with_for_update())
            ).first()
            yield ConnectionUnit(session, config_id, _connection(row) if row else None)

    async def due_for_refresh(self, before: datetime) -> list[str]:
        async with self._sessions() as session:
            rows = await session.execute(
                select(_C.config_id)
                .where(_C.status == Status.CONNECTED.value, _C.expires_at.is_not(None), _C.expires_at <= before)
                .order_by(_C.expires_at)
            )
            return list(rows.scalars())

    async def take_pending(self, state_hash: str, now: datetime) -> PendingAuthorization | None:
        """Removes a pending authorization and returns it unless it has expired: a state works once."""
        async with self._sessions() as session, session.begin():
            row = (
                await session.execute(
                    select(models.pending_authorizations).where(_P.state_hash == state_hash).with_for_update()
                )
            ).first()
            if row is None:
                return None
            deleted = await session.execute(delete(models.pending_authorizations).where(_P.state_hash == state_hash))
        if deleted.rowcount != 1:
            return None
        pending = PendingAuthorization(
            **{**row._mapping, "expires_at": _utc(row.expires_at), "created_at": _utc(row.created_at)}
        )
        return pending if pending.expires_at > now else None

    async def purge_expired_pending(self, now: datetime) -> int:
        async with self._sessions() as session, session.begin():
            result = await session.execute(delete(models.pending_authorizations).where(_P.expires_at <= now))
        return result.rowcount
