"""The membership routes (services/gateway/memberships.py, catalog.py's records_router): role
checks, RFC 9457 problems for unknown memberships and vendors, bad bodies and missing tokens."""

from __future__ import annotations

import uuid

from tests.gateway.conftest import Client, assert_problem


async def test_staff_may_read_memberships_but_not_start_their_sync(client: Client) -> None:
    staff = client.headers("staff")
    listed = await client.http.get("/memberships", headers=staff)
    assert listed.status_code == 200 and listed.json() == {"memberships": [], "next_page_token": ""}
    response = await client.http.post("/integrations/zenoti/memberships/sync", json={}, headers=staff)
    assert_problem(response, 403, reason="ROLE_FORBIDDEN")


async def test_unknown_memberships_vendors_and_missing_tokens_are_problems(client: Client) -> None:
    admin = client.headers("admin")
    missing = await client.http.get(f"/memberships/{uuid.uuid4()}", headers=admin)
    assert_problem(missing, 404, reason="COVERAGE_NOT_FOUND")
    unknown = await client.http.post("/integrations/nosuchvendor/memberships/sync", json={}, headers=admin)
    assert_problem(unknown, 404, reason="UNKNOWN_INTEGRATION")
    unconfigured = await client.http.post("/integrations/zenoti/memberships/sync", json={}, headers=admin)
    assert_problem(unconfigured, 404, reason="CONFIG_NOT_FOUND")
    bad = await client.http.post("/integrations/zenoti/memberships/sync", json={"direction": "up"}, headers=admin)
    assert_problem(bad, 422)
    too_many = await client.http.get("/memberships", params={"page_size": 501}, headers=admin)
    assert_problem(too_many, 422)
    assert (await client.http.get("/memberships")).status_code == 401
