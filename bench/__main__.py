"""``make bench``: every benchmark of bench/ on the embedded default (SQLite) and, when
CONCORD_BENCH_POSTGRES_URL is set, again on PostgreSQL; one table of figures next to their
targets, and bench/results/latest.json.

    python -m bench                         # all of them
    python -m bench --only audit_append     # some of them (module names)
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import platform
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench.common import Figure

RESULTS = Path(__file__).resolve().parent / "results"
# In the order of the table.
MODULES = [
    "backfill_salesforce",
    "service_memory",
    "paced",
    "incremental",
    "webhook_latency",
    "gateway_reads",
    "audit_append",
]


async def _run(modules: list[str], databases: list[str], console: Console) -> list[Figure]:
    figures: list[Figure] = []
    for database_url in databases:
        for name in modules:
            module = importlib.import_module(f"bench.{name}")
            where = "postgresql" if database_url else "sqlite"
            if database_url == "" and getattr(module, "POSTGRES_ONLY", False):
                continue
            console.print(f"[bold]{name}[/bold] on {where} …")
            began = time.perf_counter()
            try:
                found = await module.run(database_url)
            except Exception as error:  # noqa: BLE001 (one benchmark failing does not hide the others' figures)
                traceback.print_exc()
                found = [Figure(name, "failed", "", note=f"{type(error).__name__}", database=where)]
            for figure in found:
                figure.database = figure.database or where
            figures.extend(found)
            console.print(f"  {len(found)} figures in {time.perf_counter() - began:.1f} s")
    return figures


def _table(figures: list[Figure]) -> Table:
    table = Table(title="Concord benchmarks (targets: a 2-core machine)")
    for column in ("measure", "database", "figure", "target", "met", "note"):
        table.add_column(column, justify="right" if column == "figure" else "left")
    for f in figures:
        met = "" if f.met is None else ("[green]yes[/green]" if f.met else "[red]no[/red]")
        value = f"{f.value:,}" if isinstance(f.value, int | float) else str(f.value)
        table.add_row(f.measure, f.database, f"{value} {f.unit}".strip(), f.target, met, f.note)
    return table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", default=None, help="module names (default: all)")
    args = parser.parse_args()
    modules = args.only or MODULES
    databases = [""]
    postgres = os.environ.get("CONCORD_BENCH_POSTGRES_URL", "")
    if postgres:
        databases.append(postgres)
    # Wide enough for the notes when the output goes to a file or a CI log (rich's default there is 80).
    console = Console(width=None if sys.stdout.isatty() else 200)
    figures = asyncio.run(_run(modules, databases, console))
    console.print(_table(figures))
    RESULTS.mkdir(exist_ok=True)
    document = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0], "platform": platform.platform()},
        "figures": [f.as_dict() for f in figures],
    }
    (RESULTS / "latest.json").write_text(json.dumps(document, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
