"""The catalog routes (services/gateway/catalog.py): role checks as for appointments, RFC 9457
problems for unknown items and vendors, and the read-only refusal for Zenoti's catalog."""

from __future__ import annotations

import uuid

from tests.gateway.conftest import Client, assert_problem


async def test_staff_may_read_the_catalog_but_not_start_its_sync(client: Client) -> None:
    staff = client.headers("staff")
    listed = await client.http.get("/services", headers=staff)
    assert listed.status_code == 200 and listed.json() == {"services": [], "next_page_token": ""}
    response = await client.http.post("/integrations/zenoti/services/sync", json={}, headers=staff)
    assert_problem(response, 403, reason="ROLE_FORBIDDEN")


async def test_unknown_items_vendors_and_missing_tokens_are_problems(client: Client) -> None:
    admin = client.headers("admin")
    missing = await client.http.get(f"/services/{uuid.uuid4()}", headers=admin)
    assert_problem(missing, 404, reason="HEALTHCARESERVICE_NOT_FOUND")
    unknown = await client.http.post("/integrations/nosuchvendor/services/sync", json={}, headers=admin)
    assert_problem(unknown, 404, reason="UNKNOWN_INTEGRATION")
    unconfigured = await client.http.post("/integrations/zenoti/services/sync", json={}, headers=admin)
    assert_problem(unconfigured, 404, reason="CONFIG_NOT_FOUND")
    bad = await client.http.post("/integrations/zenoti/services/sync", json={"direction": "sideways"}, headers=admin)
    assert_problem(bad, 422)
    assert (await client.http.get("/services")).status_code == 401
