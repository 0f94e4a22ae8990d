"""``concord``: the operator's commands, with progress bars (the POPA Health scripts' equivalents).

    concord sync patients --vendor salesforce [--direction push|pull|bidirectional]
    concord sync appointments --vendor salesforce --direction push
    concord sync services --vendor zenoti --direction pull
    concord auth refresh --vendor salesforce
    concord status --vendor ghl

It talks to the gateway (CONCORD_GATEWAY_URL, default http://127.0.0.1:8080) with a bearer token
from CONCORD_TOKEN, or, on the embedded default, one minted by the development issuer in the data
directory for CONCORD_PRACTICE_ID (an admin of that practice).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from libs.settings import get_settings

ENTITIES = {
    "patients": "patients",
    "appointments": "appointments",
    "services": "services",
    "memberships": "memberships",
}
console = Console(stderr=True)


class CliError(Exception):
    pass


def _token() -> str:
    if token := os.environ.get("CONCORD_TOKEN"):
        return token
    practice = os.environ.get("CONCORD_PRACTICE_ID")
    if not practice:
        raise CliError("set CONCORD_TOKEN, or CONCORD_PRACTICE_ID on the embedded default")
    from services.gateway.auth import DevIssuer

    return DevIssuer.in_data_dir(get_settings()).mint("cli-operator", practice, "admin", ttl_seconds=900)


def _check(response: httpx.Response) -> dict[str, Any]:
    if response.status_code >= 400:
        try:
            problem = response.json()
            detail = f"{problem.get('title')}: {problem.get('detail')} ({problem.get('reason', '')})"
        except ValueError:
            detail = response.text[:200]
        raise CliError(f"HTTP {response.status_code} {detail}")
    return response.json()


async def sync(http: httpx.AsyncClient, vendor: str, entity: str, direction: str | None) -> int:
    body = {"direction": direction} if direction else {}
    run = _check(await http.post(f"/integrations/{vendor}/{entity}/sync", json=body))
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed} records"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(f"{vendor} {entity} {run['direction']}", total=None)
        waiter = asyncio.create_task(http.get(f"/sync-runs/{run['run_id']}", params={"wait": "true"}))
        while not waiter.done():
            current = _check(await http.get(f"/sync-runs/{run['run_id']}"))
            progress.update(task, completed=current["records_processed"])
            await asyncio.wait({waiter}, timeout=0.5)
        final = _check(waiter.result())
    console.print(
        f"{final['status']}: {final['records_succeeded']} synced "
        f"({final['records_created']} created, {final['records_updated']} updated), "
        f"{final['records_failed']} failed, {final['vendor_requests']} vendor requests; trace {final['trace_id']}"
    )
    for error in final["errors"][:10]:
        console.print(f"  {error['record']}: {error['reason']} {error['field']}")
    return 0 if final["status"] == "succeeded" else 1


async def refresh(http: httpx.AsyncClient, vendor: str) -> int:
    result = _check(await http.post(f"/integrations/{vendor}/refresh"))
    console.print(f"{vendor}: token refreshed, expires {result['expires_at'] or 'with the session'}")
    return 0


async def status(http: httpx.AsyncClient, vendor: str) -> int:
    result = _check(await http.get(f"/integrations/{vendor}/status"))
    console.print_json(data=result)
    return 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="concord", description="Concord operator commands.")
    commands = parser.add_subparsers(dest="command", required=True)
    sync_parser = commands.add_parser("sync", help="run a sync and follow it")
    sync_parser.add_argument("entity", choices=sorted(ENTITIES))
    sync_parser.add_argument("--vendor", required=True)
    sync_parser.add_argument("--direction", choices=["push", "pull", "bidirectional"])
    auth_parser = commands.add_parser("auth", help="vendor credentials")
    auth_parser.add_argument("action", choices=["refresh"])
    auth_parser.add_argument("--vendor", required=True)
    status_parser = commands.add_parser("status", help="connection and sync settings of a vendor")
    status_parser.add_argument("--vendor", required=True)
    args = parser.parse_args(argv)

    async def run() -> int:
        base = os.environ.get("CONCORD_GATEWAY_URL", "http://127.0.0.1:8080")
        headers = {"Authorization": f"Bearer {_token()}"}
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=3600) as http:
            if args.command == "sync":
                return await sync(http, args.vendor, args.entity, args.direction)
            if args.command == "auth":
                return await refresh(http, args.vendor)
            return await status(http, args.vendor)

    try:
        sys.exit(asyncio.run(run()))
    except (CliError, httpx.HTTPError) as error:
        console.print(f"[red]concord: {error}[/red]")
        sys.exit(2)


if __name__ == "__main__":
    main()
