"""Database engines, sessions and Alembic migrations, one way for every service.

Embedded default: one SQLite file per service under the data directory. With
CONCORD_DATABASE_URL set to a PostgreSQL (asyncpg) URL, all services share the database and each
owns its own schema (``<prefix><service>``), so no service can read another's tables by accident.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import MetaData, event, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext import asyncio as sa_asyncio
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from libs.settings import Settings

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def make_metadata() -> MetaData:
    return MetaData(naming_convention=NAMING_CONVENTION)


def is_postgres(settings: Settings) -> bool:
    return settings.database_url.startswith("postgresql")


def schema_for(service: str, settings: Settings) -> str | None:
    return f"{settings.database_schema_prefix}{service}" if is_postgres(settings) else None


def create_engine(service: str, settings: Settings) -> AsyncEngine:
    if is_postgres(settings):
        schema = schema_for(service, settings)
        # Through the module attribute, so the OpenTelemetry instrumentation (set up first) traces it.
        return sa_asyncio.create_async_engine(
            settings.database_url,
            pool_size=10,
            max_overflow=10,
            connect_args={"server_settings": {"search_path": schema}},
        )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    path = (settings.data_dir / f"{service}.db").resolve()
    engine = sa_asyncio.create_async_engine(f"sqlite+aiosqlite:///{path}", connect_args={"timeout": 30})

    @event.listens_for(engine.sync_engine, "connect")
    def _sqlite_pragmas(dbapi_connection, _record) -> None:  # noqa: ANN001
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return engine


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker:
    return async_sessionmaker(engine, expire_on_commit=False)


async def migrate(engine: AsyncEngine, migrations_dir: Path, schema: str | None) -> None:
    """Brings the service's tables to the newest Alembic revision."""
    async with engine.begin() as conn:
        if schema:
            await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        await conn.run_sync(_upgrade, str(migrations_dir), schema)


def _upgrade(connection: Connection, script_location: str, schema: str | None) -> None:
    config = Config()
    config.set_main_option("script_location", script_location)
    config.attributes["connection"] = connection
    config.attributes["schema"] = schema
    command.upgrade(config, "head")


def run_alembic_env(target_metadata: MetaData) -> None:
    """The body of every service's migrations/env.py."""
    from alembic import context

    connection = context.config.attributes["connection"]
    schema = context.config.attributes.get("schema")
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        version_table_schema=schema,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
