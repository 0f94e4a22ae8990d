"""What every benchmark shares: the figure it reports (next to its target), a stack on the
embedded default or on PostgreSQL, and a practice ready to sync (its BAAs recorded).

A benchmark module exposes ``async def run(database_url: str) -> list[Figure]`` (``database_url``
empty: SQLite, the embedded default) and ``NAME``; ``python -m bench`` runs them all and prints
one table (bench/__main__.py). Benchmarks print figures; they assert nothing about speed.
"""

from __future__ import annotations

import resource
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from libs.settings import Settings, get_settings
from services.demo import record_baas
from services.supervisor import Stack, start_stack


@dataclass
class Figure:
    """One measured figure. ``target`` is the issue's, as text ("≥ 1,000 records/s"); ``met`` is
    None where the figure has no target (printed only)."""

    measure: str
    value: float | int | str
    unit: str
    target: str = ""
    met: bool | None = None
    database: str = ""
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def at_least(measure: str, value: float, unit: str, target: float, **extra: Any) -> Figure:
    return Figure(measure, round(value, 3), unit, f"≥ {target:,} {unit}", value >= target, **extra)


def at_most(measure: str, value: float, unit: str, target: float, **extra: Any) -> Figure:
    return Figure(measure, round(value, 4), unit, f"≤ {target:,} {unit}", value <= target, **extra)


def database_name(database_url: str) -> str:
    return "postgresql" if database_url else "sqlite"


@asynccontextmanager
async def bench_stack(database_url: str = "", *, paced: bool = False, **settings: Any) -> AsyncIterator[Stack]:
    """Every service, the Temporal dev server and the sandboxes in this process, in a data dir of
    its own (removed after). ``paced``: the sandboxes enforce their vendors' rate limits and the
    adapters pace under them; otherwise both are off (a figure of Concord, not of a quota)."""
    data_dir = Path(tempfile.mkdtemp(prefix="concord-bench-"))
    overrides = {"data_dir": data_dir, "vendor_pacing": paced, "log_level": "WARNING", **settings}
    if database_url:
        overrides["database_url"] = database_url
        # Schemas of its own: a stack never meets an earlier stack's rows (or its data keys).
        overrides["database_schema_prefix"] = f"bench_{uuid.uuid4().hex[:8]}_"
    base: Settings = get_settings()
    stack = await start_stack(base.model_copy(update=overrides), ephemeral_ports=True, sandbox_rate_limit=paced)
    try:
        yield stack
    finally:
        await stack.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


async def practice(stack: Stack, http: httpx.AsyncClient, practice_id: str, vendors: tuple[str, ...]) -> dict[str, str]:
    """Registers the practice, records its BAA with each vendor slug, and returns an admin's headers."""
    token = stack.gateway.issuer.mint("bench", practice_id, "admin")  # type: ignore[union-attr]
    return await register_practice(http, token, vendors)


async def register_practice(http: httpx.AsyncClient, token: str, vendors: tuple[str, ...]) -> dict[str, str]:
    """``practice`` given an admin's bearer token of the practice (minted by whoever holds the issuer)."""
    headers = {"Authorization": f"Bearer {token}"}
    response = await http.post("/practice", json={"name": "Benchmark Practice"}, headers=headers)
    response.raise_for_status()
    await record_baas(http, headers, vendors)
    return headers


def peak_rss_mb() -> float:
    """This process's peak resident memory (the embedded default runs every service in it)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
