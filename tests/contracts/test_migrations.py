"""Every service's Alembic migrations build exactly its models' tables and revert cleanly."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from libs.db import create_engine, migrate, schema_for

ROOT = Path(__file__).resolve().parents[2]
SERVICES = sorted(p.parent.parent.name for p in ROOT.glob("services/*/migrations/env.py"))


def _downgrade(connection, script_location: str, schema: str | None) -> None:  # noqa: ANN001
    config = Config()
    config.set_main_option("script_location", script_location)
    config.attributes["connection"] = connection
    config.attributes["schema"] = schema
    command.downgrade(config, "base")


def _diff(connection, metadata) -> list:  # noqa: ANN001
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return compare_metadata(context, metadata)


def _tables(connection) -> set[str]:  # noqa: ANN001
    return set(inspect(connection).get_table_names()) - {"alembic_version"}


@pytest.mark.parametrize("service", SERVICES)
async def test_migrations_match_models_and_revert(service: str, settings) -> None:  # noqa: ANN001
    metadata = importlib.import_module(f"services.{service}.models").metadata
    migrations = ROOT / "services" / service / "migrations"
    schema = schema_for(service, settings)
    engine = create_engine(service, settings)
    try:
        await migrate(engine, migrations, schema)
        async with engine.connect() as conn:
            assert await conn.run_sync(_tables) == set(metadata.tables)
            assert await conn.run_sync(_diff, metadata) == []
        async with engine.begin() as conn:
            await conn.run_sync(_downgrade, str(migrations), schema)
        async with engine.connect() as conn:
            assert await conn.run_sync(_tables) == set()
        await migrate(engine, migrations, schema)
        async with engine.connect() as conn:
            assert await conn.run_sync(_tables) == set(metadata.tables)
    finally:
        await engine.dispose()
