"""Mapping persistence (SQLAlchemy 2 async): a config's overrides and its mapping version."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from libs.errors import Aborted, FailedPrecondition, NotFound
from services.mapping import models
from services.mapping.rules import FieldRule


def _rule(row) -> FieldRule:  # noqa: ANN001
    transform = row.transform or {}
    return FieldRule(
        row.entity_type,
        row.hub_field,
        row.vendor_field,
        transform.get("name", "identity"),
        transform.get("params", {}),
        row.direction,
        "override",
    )


# Called inside a change's transaction with the new version and the overrides it replaced: the
# change commits only when it returns (the mapping service records the audit event there).
BeforeCommit = Callable[[int, list[FieldRule]], Awaitable[None]]


async def _nothing(version: int, previous: list[FieldRule]) -> None:
    return None


class MappingRepository:
    def __init__(self, sessions: async_sessionmaker) -> None:
        self._sessions = sessions

    async def overrides(self, config_id: str, entity_type: str) -> tuple[list[FieldRule], int]:
        """The config's overrides for the entity type and its mapping version (0: never changed)."""
        table = models.field_mappings
        async with self._sessions() as session:
            rows = await session.execute(
                select(table)
                .where(table.c.config_id == config_id, table.c.entity_type == entity_type)
                .order_by(table.c.hub_field)
            )
            rules = [_rule(row) for row in rows]
            return rules, await self._version(session, config_id)

    async def replace(
        self,
        config_id: str,
        integration_type: str,
        entity_type: str,
        rules: list[FieldRule],
        expected: int,
        before_commit: BeforeCommit = _nothing,
    ) -> int:
        table = models.field_mappings
        now = datetime.now(UTC)
        try:
            async with self._sessions() as session, session.begin():
                version = await self._bump(session, config_id, expected, now)
                where = (table.c.config_id == config_id, table.c.entity_type == entity_type)
                previous = [_rule(row) for row in await session.execute(select(table).where(*where))]
                await session.execute(delete(table).where(*where))
                if rules:
                    await session.execute(
                        table.insert(),
                        [
                            {
                                "config_id": config_id,
                                "entity_type": entity_type,
                                "hub_field": rule.hub_field,
                                "integration_type": integration_type,
                                "vendor_field": rule.vendor_field,
                                "transform": {"name": rule.transform, "params": rule.params},
                                "direction": rule.direction,
                                "updated_at": now,
                            }
                            for rule in rules
                        ],
                    )
                await before_commit(version, previous)
        except IntegrityError:  # a concurrent first change of the same config
            raise Aborted("the mappings changed concurrently; try again", reason="CONCURRENT_CHANGE") from None
        return version

    async def delete(
        self, config_id: str, entity_type: str, hub_field: str, before_commit: BeforeCommit = _nothing
    ) -> int:
        table = models.field_mappings
        now = datetime.now(UTC)
        async with self._sessions() as session, session.begin():
            where = (table.c.config_id == config_id, table.c.entity_type == entity_type, table.c.hub_field == hub_field)
            previous = [_rule(row) for row in await session.execute(select(table).where(*where))]
            if not previous:
                raise NotFound(
                    "the config has no override for this hub field", field="hub_field", reason="MAPPING_NOT_FOUND"
                )
            await session.execute(delete(table).where(*where))
            version = await self._bump(session, config_id, 0, now)
            await before_commit(version, previous)
            return version

    @staticmethod
    async def _version(session: AsyncSession, config_id: str) -> int:
        table = models.versions
        found = await session.execute(select(table.c.version).where(table.c.config_id == config_id))
        return found.scalar_one_or_none() or 0

    @staticmethod
    async def _bump(session: AsyncSession, config_id: str, expected: int, now: datetime) -> int:
        table = models.versions
        current = (
            await session.execute(select(table.c.version).where(table.c.config_id == config_id).with_for_update())
        ).scalar_one_or_none()
        if expected and expected != (current or 0):
            raise FailedPrecondition(
                "the mappings changed since expected_version", field="expected_version", reason="VERSION_MISMATCH"
            )
        if current is None:
            await session.execute(table.insert().values(config_id=config_id, version=1, updated_at=now))
            return 1
        await session.execute(
            update(table).where(table.c.config_id == config_id).values(version=current + 1, updated_at=now)
        )
        return current + 1
