"""Push N patients from the hub to the GoHighLevel sandbox, its rate limit switched off.

    python -m bench.push_ghl        # N = 1000 (make bench runs the whole suite)
    python -m bench.push_ghl --patients 5000

Prints records per second and vendor API calls per record, and writes bench/results/push_ghl.json (make bench, all of bench/, writes latest.json).
A benchmark, not a test: it prints figures and asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import resource
import shutil
import tempfile
import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from libs.settings import get_settings
from services.demo import connect_ghl, record_baas, run_sync, synthetic_patients_bundle
from services.supervisor import start_stack

RESULTS = Path(__file__).resolve().parent / "results"


def generated_patients(count: int) -> list[dict]:
    """N distinct patients made from the synthetic set: unique phones, so GHL's upsert never
    merges two of them."""
    base = [e["resource"] for e in synthetic_patients_bundle()["entry"]]
    patients = []
    for index in range(count):
        patient = copy.deepcopy(base[index % len(base)])
        patient.pop("id", None)
        patient["telecom"] = [{"system": "phone", "value": f"+1617{5550000 + index:07d}", "use": "home"}]
        if index >= len(base):
            for name in patient.get("name", []):
                name["given"] = [f"{g}{index}" for g in name.get("given", [])]
        patients.append(patient)
    return patients


async def run(count: int, batch_size: int) -> dict:
    data_dir = Path(tempfile.mkdtemp(prefix="concord-bench-"))
    settings = get_settings().model_copy(update={"data_dir": data_dir, "vendor_pacing": False})
    stack = await start_stack(settings, ephemeral_ports=True, sandbox_rate_limit=False)
    try:
        token = stack.gateway.issuer.mint("bench", "bench-practice", "admin")
        headers = {"Authorization": f"Bearer {token}"}
        sandbox = stack.sandboxes["ghl"].url
        async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=3600) as http:
            await http.post("/practice", json={"name": "Benchmark Practice"}, headers=headers)
            await record_baas(http, headers, ("hl",))  # without it no PHI field goes (minimum necessary)
            await connect_ghl(http, headers)
            patients = generated_patients(count)
            with Progress(transient=True) as progress:
                task = progress.add_task("importing into the hub", total=count)
                for start in range(0, count, batch_size):
                    chunk = patients[start : start + batch_size]
                    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": p} for p in chunk]}
                    response = await http.post("/patients/import", json=bundle, headers=headers)
                    response.raise_for_status()
                    progress.advance(task, len(chunk))
            await http.post(f"{sandbox}/_sandbox/stats/reset")
            began = time.perf_counter()
            push = await run_sync(http, headers, "push")
            seconds = time.perf_counter() - began
            stats = (await http.get(f"{sandbox}/_sandbox/stats")).json()
        vendor_calls = sum(v for k, v in stats.items() if "/_sandbox" not in k and "/oauth" not in k)
        return {
            "benchmark": "push_ghl",
            "database": "postgresql" if settings.database_url else "sqlite",
            "patients": count,
            "status": push["status"],
            "records_succeeded": push["records_succeeded"],
            "records_failed": push["records_failed"],
            "seconds": round(seconds, 3),
            "records_per_second": round(push["records_succeeded"] / seconds, 1) if seconds else 0.0,
            "vendor_calls": vendor_calls,
            "vendor_calls_per_record": round(vendor_calls / max(1, push["records_succeeded"]), 3),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        }
    finally:
        await stack.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--import-batch", type=int, default=500)
    args = parser.parse_args()
    result = asyncio.run(run(args.patients, args.import_batch))
    table = Table(
        title=f"Push {result['patients']} patients hub → GoHighLevel sandbox (limit off, {result['database']})"
    )
    table.add_column("measure")
    table.add_column("figure", justify="right")
    for key in (
        "status",
        "records_succeeded",
        "records_failed",
        "seconds",
        "records_per_second",
        "vendor_calls",
        "vendor_calls_per_record",
        "peak_rss_mb",
    ):
        table.add_row(key, str(result[key]))
    Console().print(table)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "push_ghl.json").write_text(json.dumps(result, indent=2) + "\n")  # make bench writes latest.json


if __name__ == "__main__":
    main()
