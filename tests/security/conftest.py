"""One stack for the security tests that need no vendor: every service over real gRPC, the
gateway, the Temporal dev server, on SQLite."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from libs.settings import Settings
from services.supervisor import Stack, start_stack


@pytest.fixture(scope="package")
async def bare_stack(tmp_path_factory: pytest.TempPathFactory, temporal_binary: str) -> AsyncIterator[Stack]:
    running = await start_stack(
        Settings(data_dir=tmp_path_factory.mktemp("security")),
        ephemeral_ports=True,
        with_sandbox=False,
        adapter_workers=(),
    )
    yield running
    await running.stop()
