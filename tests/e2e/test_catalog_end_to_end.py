"""The service catalog through the gateway and the real stack (Temporal, gRPC services, sandboxes
over HTTP): Zenoti's catalog pulled into the hub, pushed to the FHIR EMR as HealthcareService, and
nothing duplicated or rewritten on a second run; a push to Zenoti is refused as read-only."""

from __future__ import annotations

import httpx

from libs import fhir_service
from services.adapters.fhir.resources import SERVICE
from services.catalog_demo import run_catalog_demo
from services.demo import run_sync
from tests.e2e.test_cli import _concord


async def test_zenoti_catalog_reaches_the_emr_once(stack) -> None:  # noqa: ANN001
    result = await run_catalog_demo(stack)
    created = result.pulled["records_created"]
    assert created == len(result.services) == result.pushed["records_created"] and result.pulled["records_failed"] == 0
    projected = [fhir_service.project(s) for s in result.services]
    assert all(p["name"] and p["price"] and p["category_name"] and p["duration_minutes"] for p in projected)

    emr = stack.vendors["fhir"].app.state.sandbox.tenants["default"]

    def at_the_emr() -> list[str]:
        """The hub ids of the EMR's HealthcareServices the hub wrote (the EMR's own seeded ones have none)."""
        return sorted(hub_id for r in emr.live("HealthcareService") if (hub_id := SERVICE.hub_id(r)))

    assert at_the_emr() == sorted(s["id"] for s in result.services)  # each item once, under its hub id
    token = stack.gateway.issuer.mint("demo-admin", "demo-catalog-practice", "admin")
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=600) as http:
        one = (await http.get(f"/services/{result.services[0]['id']}", headers=headers)).json()
        assert one == result.services[0]
        again = await run_sync(http, headers, "pull", vendor="zenoti", entity="services")
        assert (again["records_created"], again["records_updated"]) == (0, 0)
        again = await run_sync(http, headers, "push", vendor="fhir", entity="services")
        assert (again["records_created"], again["records_updated"]) == (0, 0)
        both = await run_sync(http, headers, "bidirectional", vendor="zenoti", entity="services")
        assert both["direction"] == "pull" and (both["records_created"], both["records_updated"]) == (0, 0)
        refused = await http.post("/integrations/zenoti/services/sync", json={"direction": "push"}, headers=headers)
        assert refused.status_code == 409 and refused.json()["reason"] == "READ_ONLY_ENTITY", refused.text
    assert at_the_emr() == sorted(s["id"] for s in result.services)

    # The operator's command: an unchanged catalog pulls nothing; a push to Zenoti is refused.
    code, output = await _concord(stack, token, "sync", "services", "--vendor", "zenoti", "--direction", "pull")
    assert code == 0 and "succeeded: 0 synced (0 created, 0 updated), 0 failed" in output, output
    code, output = await _concord(stack, token, "sync", "services", "--vendor", "zenoti", "--direction", "push")
    assert code == 2 and "HTTP 409" in output, output
