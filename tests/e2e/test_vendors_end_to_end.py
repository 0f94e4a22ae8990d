"""The EMR as the source, through the gateway and the real stack: patients pulled from the FHIR R4
EMR sandbox into the hub, then pushed to the Salesforce and Zenoti sandboxes."""

from __future__ import annotations

import httpx

from services.demo import run_sync, run_vendors_demo


async def test_emr_patients_reach_salesforce_and_zenoti_once(stack) -> None:  # noqa: ANN001
    result = await run_vendors_demo(stack)
    pulled = result.pulled_from_emr["records_created"]
    assert pulled == 60  # the EMR sandbox's Synthea patients
    assert result.pushed["salesforce"]["records_created"] == pulled
    assert result.vendor_calls["salesforce"] <= 2  # one sObject Collections call per 200 records (+ auth)
    assert result.pushed["zenoti"]["records_created"] == pulled
    visits = result.appointments_pulled["records_created"]
    assert visits > pulled  # past visits and bookings of those patients
    assert result.appointments_pushed["records_created"] == visits
    assert result.appointments_pushed["vendor_requests"] <= -(-visits // 200) + 1  # 200 a collection call

    token = stack.gateway.issuer.mint("demo-admin", "demo-emr-practice", "admin")
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=600) as http:
        for vendor in ("salesforce", "zenoti"):
            again = await run_sync(http, headers, "push", vendor=vendor)
            assert (again["records_created"], again["records_updated"], again["vendor_requests"]) == (0, 0, 0)
        again = await run_sync(http, headers, "pull", vendor="fhir")
        assert again["records_created"] == 0 and again["records_updated"] == 0
