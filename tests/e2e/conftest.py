"""The real stack for end-to-end tests; vendor limits are each adapter suite's business, here
they would only make a test slow."""

from __future__ import annotations

import pytest

from services.supervisor import start_stack


@pytest.fixture
async def unpaced_stack(settings, temporal_binary):  # noqa: ANN001
    running = await start_stack(
        settings.model_copy(update={"vendor_pacing": False}), ephemeral_ports=True, sandbox_rate_limit=False
    )
    yield running
    await running.stop()
