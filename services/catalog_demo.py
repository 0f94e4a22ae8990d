"""The service catalog across vendors: Zenoti's catalog (services, categories, the center's prices)
pulled into the hub as HealthcareService, then pushed to the FHIR R4 EMR. Zenoti's catalog is
pull-only (its API has no catalog writes)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from services.demo import DemoError, _check, record_baas, run_sync
from services.supervisor import Stack


@dataclass
class CatalogResult:
    pulled: dict[str, Any]
    pushed: dict[str, Any]
    services: list[dict[str, Any]]


async def run_catalog_demo(stack: Stack, practice_id: str = "demo-catalog-practice") -> CatalogResult:
    token = stack.gateway.issuer.mint("demo-admin", practice_id, "admin")  # type: ignore[union-attr]
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=600) as http:
        _check(await http.post("/practice", json={"name": "Demo Catalog Spa"}, headers=headers), 201, "practice")
        await record_baas(http, headers, ("zenoti", "fhir"))
        for vendor in ("zenoti", "fhir"):
            body = stack.vendors[vendor].connect
            _check(
                await http.post(f"/integrations/{vendor}/connect", json=body, headers=headers), 200, f"{vendor} connect"
            )
        pulled = await run_sync(http, headers, "pull", vendor="zenoti", entity="services")
        if pulled["status"] != "succeeded" or not pulled["records_created"]:
            raise DemoError(f"the Zenoti catalog pull ended {pulled['status']}: {pulled['records_created']} created")
        pushed = await run_sync(http, headers, "push", vendor="fhir", entity="services")
        if pushed["status"] != "succeeded" or pushed["records_created"] != pulled["records_created"]:
            raise DemoError(f"the EMR catalog push ended {pushed['status']}: {pushed['records_created']} created")
        listed = _check(await http.get("/services", params={"page_size": 500}, headers=headers), 200, "services")
    return CatalogResult(pulled, pushed, listed["services"])
