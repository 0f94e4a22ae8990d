"""The OpenAPI document, and what disconnecting a vendor does to status and sync."""

from __future__ import annotations

from services.demo import connect_ghl
from tests.gateway.conftest import Client, assert_problem

SEED_PATHS = {
    "/integrations/{slug}/authorize": {"get"},
    "/integrations/{slug}/callback": {"get"},
    "/integrations/{slug}/status": {"get"},
    "/integrations/{slug}/disconnect": {"post"},
    "/integrations/{slug}/patients/sync": {"post"},
    "/integrations/{slug}/patients/status": {"get"},
    "/integrations/{slug}/patients/sync-settings": {"post"},
    "/patients": {"get", "post"},
    "/patients/import": {"post"},
    "/patients/{patient_id}": {"get", "put"},
    "/sync-runs/{run_id}": {"get"},
    "/practice": {"post"},
    "/audit/verify": {"get"},
}


async def test_openapi_is_served(client: Client) -> None:
    docs = await client.http.get("/docs")
    assert docs.status_code == 200 and docs.headers["content-type"].startswith("text/html")
    assert "/openapi.json" in docs.text

    document = (await client.http.get("/openapi.json")).json()
    assert document["openapi"].startswith("3.1")
    paths = document["paths"]
    for path, methods in SEED_PATHS.items():
        assert path in paths, path
        assert methods <= paths[path].keys(), path
        assert all(paths[path][m].get("summary") for m in methods), path


async def test_disconnect_shows_disconnected_and_refuses_a_sync(client: Client) -> None:
    headers = client.headers()
    assert (await client.http.post("/practice", json={"name": "Leaving Clinic"}, headers=headers)).status_code == 201
    config_id = await connect_ghl(client.http, headers)
    before = (await client.http.get("/integrations/hl/status", headers=headers)).json()
    assert before["connected"] and before["config_id"] == config_id and before["account_id"]

    response = await client.http.post("/integrations/hl/disconnect", headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "disconnected"

    after = (await client.http.get("/integrations/hl/status", headers=headers)).json()
    assert after["configured"] and after["active"]
    assert not after["connected"] and after["connection_status"] == "disconnected"
    assert after["access_token_expires_at"] is None

    for body in ({}, {"direction": "push"}):
        response = await client.http.post("/integrations/hl/patients/sync", json=body, headers=headers)
        assert_problem(response, 409, reason="NOT_CONNECTED")
    runs = (await client.http.get("/integrations/hl/patients/status", headers=headers)).json()
    assert runs["runs"] == []
