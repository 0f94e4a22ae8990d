"""Registry persistence (SQLAlchemy 2 async)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker

from libs.errors import AlreadyExists
from services.registry import models
from services.registry.domain import BusinessAssociateAgreement, IntegrationConfig, Practice

# Filled in from the practice's agreements when a config is read; never a column of the config.
_NOT_STORED = ("baa_effective_date",)


class RegistryRepository:
    def __init__(self, sessions: async_sessionmaker) -> None:
        self._sessions = sessions

    async def add_practice(self, practice_id: str, name: str) -> Practice:
        practice = Practice(practice_id, name, datetime.now(UTC))
        try:
            async with self._sessions() as session, session.begin():
                await session.execute(
                    models.practices.insert().values(
                        practice_id=practice.practice_id, name=practice.name, created_at=practice.created_at
                    )
                )
        except IntegrityError:
            raise AlreadyExists("practice already exists", reason="PRACTICE_EXISTS") from None
        return practice

    async def get_practice(self, practice_id: str) -> Practice | None:
        a = models.agreements.c
        async with self._sessions() as session:
            row = (
                await session.execute(select(models.practices).where(models.practices.c.practice_id == practice_id))
            ).first()
            if row is None:
                return None
            rows = await session.execute(
                select(models.agreements).where(a.practice_id == practice_id).order_by(a.integration_type)
            )
            agreements = tuple(BusinessAssociateAgreement(**r._mapping) for r in rows)
        return Practice(**row._mapping, agreements=agreements)

    async def put_agreement(self, agreement: BusinessAssociateAgreement) -> None:
        """Records the practice's BAA with the vendor, replacing an earlier one."""
        a = models.agreements.c
        async with self._sessions() as session, session.begin():
            await session.execute(
                models.agreements.delete().where(
                    a.practice_id == agreement.practice_id, a.integration_type == agreement.integration_type
                )
            )
            await session.execute(models.agreements.insert().values(**agreement.__dict__))

    async def _with_agreements(self, session, configs: list[IntegrationConfig]) -> list[IntegrationConfig]:  # noqa: ANN001
        """Each config with its practice's BAA date for its vendor."""
        if not configs:
            return configs
        a = models.agreements.c
        rows = await session.execute(
            select(a.practice_id, a.integration_type, a.effective_date).where(
                a.practice_id.in_({c.practice_id for c in configs})
            )
        )
        dates = {(r.practice_id, r.integration_type): r.effective_date for r in rows}
        return [replace(c, baa_effective_date=dates.get((c.practice_id, c.integration_type), "")) for c in configs]

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
                await session.execute(models.configs.insert().values(**_stored(config)))
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
            return await self._with_agreements(session, [IntegrationConfig(**row._mapping) for row in rows])

    async def save_config(self, config: IntegrationConfig) -> None:
        values = {k: v for k, v in _stored(config).items() if k not in ("config_id", "created_at")}
        async with self._sessions() as session, session.begin():
            await session.execute(
                update(models.configs).where(models.configs.c.config_id == config.config_id).values(**values)
            )

    async def _one(self, condition) -> IntegrationConfig | None:  # noqa: ANN001
        async with self._sessions() as session:
            row = (await session.execute(select(models.configs).where(condition))).first()
            if row is None:
                return None
            return (await self._with_agreements(session, [IntegrationConfig(**row._mapping)]))[0]


def _stored(config: IntegrationConfig) -> dict:
    return {k: v for k, v in config.__dict__.items() if k not in _NOT_STORED}
