"""Registry persistence (SQLAlchemy 2 async)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker

from libs.errors import AlreadyExists
from services.registry import models
from services.registry.domain import IntegrationConfig, Practice


class RegistryRepository:
    def __init__(self, sessions: async_sessionmaker) -> None:
        self._sessions = sessions

    async def add_practice(self, practice_id: str, name: str) -> Practice:
        practice = Practice(practice_id, name, datetime.now(UTC))
        try:
            async with self._sessions() as session, session.begin():
                await session.execute(models.practices.insert().values(**practice.__dict__))
        except IntegrityError:
            raise AlreadyExists("practice already exists", reason="PRACTICE_EXISTS") from None
        return practice

    async def get_practice(self, practice_id: str) -> Practice | None:
        async with self._sessions() as session:
            row = (
                await session.execute(select(models.practices).where(models.practices.c.practice_id == practice_id))
            ).first()
        return Practice(**row._mapping) if row else None

    async def put_definition(self, integration_type: str, document: dict) -> None:
        table = models.definitions
        now = datetime.now(UTC)
        async with self._sessions() as session, session.begin():
            exists = (
                await session.execute(
                    select(table.c.integration_type).where(table.c.integration_type == integration_type)
                )
            ).first()
            if exists:
                await session.execute(
                    update(table)
                    .where(table.c.integration_type == integration_type)
                    .values(document=document, updated_at=now)
                )
            else:
                await session.execute(
                    table.insert().values(integration_type=integration_type, document=document, updated_at=now)
                )

    async def get_definition(self, integration_type: str) -> dict | None:
        table = models.definitions
        async with self._sessions() as session:
            return (
                await session.execute(select(table.c.document).where(table.c.integration_type == integration_type))
            ).scalar_one_or_none()

    async def list_definitions(self, after: str, limit: int) -> list[dict]:
        table = models.definitions
        async with self._sessions() as session:
            rows = await session.execute(
                select(table.c.document)
                .where(table.c.integration_type > after)
                .order_by(table.c.integration_type)
                .limit(limit)
            )
            return list(rows.scalars())

    async def add_config(self, config: IntegrationConfig) -> IntegrationConfig:
        try:
            async with self._sessions() as session, session.begin():
                await session.execute(models.configs.insert().values(**config.__dict__))
        except IntegrityError:
            raise AlreadyExists(
                f"the practice already has a {config.integration_type} config", reason="CONFIG_EXISTS"
            ) from None
        return config

    async def get_config(self, config_id: str) -> IntegrationConfig | None:
        return await self._one(models.configs.c.config_id == config_id)

    async def find_config(self, practice_id: str, integration_type: str) -> IntegrationConfig | None:
        c = models.configs.c
        return await self._one((c.practice_id == practice_id) & (c.integration_type == integration_type))

    async def list_configs(self, practice_id: str, after: str, limit: int) -> list[IntegrationConfig]:
        c = models.configs.c
        async with self._sessions() as session:
            rows = await session.execute(
                select(models.configs)
                .where(c.practice_id == practice_id, c.config_id > after)
                .order_by(c.config_id)
                .limit(limit)
            )
            return [IntegrationConfig(**row._mapping) for row in rows]

    async def save_config(self, config: IntegrationConfig) -> None:
        values = {k: v for k, v in config.__dict__.items() if k not in ("config_id", "created_at")}
        async with self._sessions() as session, session.begin():
            await session.execute(
                update(models.configs).where(models.configs.c.config_id == config.config_id).values(**values)
            )

    async def _one(self, condition) -> IntegrationConfig | None:  # noqa: ANN001
        async with self._sessions() as session:
            row = (await session.execute(select(models.configs).where(condition))).first()
        return IntegrationConfig(**row._mapping) if row else None
