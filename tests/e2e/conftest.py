"""The whole stack for the end-to-end tests: Temporal, every service, every vendor sandbox."""

from __future__ import annotations

import pytest

from services.supervisor import start_stack


@pytest.fixture
async def stack(settings, temporal_binary):  # noqa: ANN001
    # Vendor limits are each adapter's own suite's business; here they would only make this slow.
    running = await start_stack(
        settings.model_copy(update={"vendor_pacing": False}), ephemeral_ports=True, sandbox_rate_limit=False
    )
    yield running
    await running.stop()
