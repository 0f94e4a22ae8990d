"""python -m services.gateway"""

import asyncio

from libs.service import wait_for_shutdown
from libs.settings import get_settings
from libs.telemetry import setup_telemetry
from services.gateway.server import NAME, start


async def _main() -> None:
    settings = get_settings()
    setup_telemetry(NAME, settings)
    gateway = await start(settings)
    try:
        await wait_for_shutdown()
    finally:
        await gateway.stop()


if __name__ == "__main__":
    asyncio.run(_main())
