"""What the end-to-end tests share: the whole stack on ephemeral ports (Temporal, every service,
every vendor sandbox), and a status check."""

from __future__ import annotations

from typing import Any

import httpx
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


def ok(response: httpx.Response, status: int = 200) -> Any:
    """The JSON body, once the status is the one expected (the body is the failure message)."""
    assert response.status_code == status, response.text
    return response.json()
