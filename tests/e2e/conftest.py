"""What the vendor end-to-end tests share."""

from __future__ import annotations

import pytest

from services.supervisor import start_stack


@pytest.fixture
async def unpaced_stack(settings, temporal_binary):  # noqa: ANN001
    """The whole stack with every sandbox, unpaced: vendor limits are each adapter's own suite's
    business; here they would only make the test slow."""
    running = await start_stack(
        settings.model_copy(update={"vendor_pacing": False}), ephemeral_ports=True, sandbox_rate_limit=False
    )
    yield running
    await running.stop()
