"""The records routes (services/gateway/catalog.py's records_router: the catalog, and memberships
in services/gateway/memberships.py): role checks as for appointments, RFC 9457 problems for unknown
records and vendors, bad bodies and page sizes, missing tokens."""

from __future__ import annotations

import uuid

import pytest

from tests.gateway.conftest import Client, assert_problem

KINDS = pytest.mark.parametrize(
    ("plural", "not_found"), [("services", "HEALTHCARESERVICE_NOT_FOUND"), ("memberships", "COVERAGE_NOT_FOUND")]
)


@KINDS
async def test_staff_may_read_the_records_but_not_start_their_sync(client: Client, plural: str, not_found: str) -> None:
    staff = client.headers("staff")
    listed = await client.http.get(f"/{plural}", headers=staff)
    assert listed.status_code == 200 and listed.json() == {plural: [], "next_page_token": ""}
    response = await client.http.post(f"/integrations/zenoti/{plural}/sync", json={}, headers=staff)
    assert_problem(response, 403, reason="ROLE_FORBIDDEN")


@KINDS
async def test_unknown_records_vendors_and_missing_tokens_are_problems(
    client: Client, plural: str, not_found: str
) -> None:
    admin = client.headers("admin")
    missing = await client.http.get(f"/{plural}/{uuid.uuid4()}", headers=admin)
    assert_problem(missing, 404, reason=not_found)
    unknown = await client.http.post(f"/integrations/nosuchvendor/{plural}/sync", json={}, headers=admin)
    assert_problem(unknown, 404, reason="UNKNOWN_INTEGRATION")
    unconfigured = await client.http.post(f"/integrations/zenoti/{plural}/sync", json={}, headers=admin)
    assert_problem(unconfigured, 404, reason="CONFIG_NOT_FOUND")
    bad = await client.http.post(f"/integrations/zenoti/{plural}/sync", json={"direction": "sideways"}, headers=admin)
    assert_problem(bad, 422)
    assert_problem(await client.http.get(f"/{plural}", params={"page_size": 501}, headers=admin), 422)
    assert (await client.http.get(f"/{plural}")).status_code == 401
