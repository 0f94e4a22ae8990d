"""python -m services.adapters --vendor ghl"""

from __future__ import annotations

import argparse
import asyncio

from libs.service import wait_for_shutdown
from libs.settings import get_settings
from libs.telemetry import setup_telemetry
from libs.temporal import connect
from services.adapters.worker import build_worker


async def _main(vendor: str) -> None:
    settings = get_settings()
    setup_telemetry(f"adapter.{vendor}", settings)
    worker = build_worker(vendor, settings, await connect(settings))
    task = asyncio.create_task(worker.run())
    try:
        await wait_for_shutdown()
    finally:
        await worker.shutdown()
        await task


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Serve one vendor adapter as Temporal activities.")
    parser.add_argument("--vendor", required=True)
    asyncio.run(_main(parser.parse_args().vendor))
