"""The Salesforce routes as RFC 9457 problems: the appointment object (roles, bad values, no config
yet) and Change Data Capture (not before the org is connected; the subscriber's key, events without
a replay id, the resume position of a config that accepted nothing, a resync report that is not an
error code)."""

from __future__ import annotations

from tests.gateway.conftest import Client, assert_problem

ROUTE = "/integrations/salesforce/appointment-object"


async def test_the_appointment_object_is_an_admins_choice_of_two(client: Client) -> None:
    admin, staff = client.headers("admin"), client.headers("staff")
    assert (await client.http.post("/practice", json={"name": "Calendar Clinic"}, headers=admin)).status_code == 201
    assert_problem(await client.http.get(ROUTE, headers=admin), 404, reason="CONFIG_NOT_FOUND")
    refused = await client.http.put(ROUTE, json={"appointment_object": "event"}, headers=staff)
    assert_problem(refused, 403, reason="ROLE_FORBIDDEN")
    assert_problem(await client.http.put(ROUTE, json={"appointment_object": "Task"}, headers=admin), 422)
    extra = await client.http.put(ROUTE, json={"appointment_object": "event", "color": "red"}, headers=admin)
    assert_problem(extra, 422, field="color")

    chosen = await client.http.put(ROUTE, json={"appointment_object": "event"}, headers=admin)

    assert chosen.status_code == 200 and chosen.json()["appointment_object"] == "event"
    read = await client.http.get(ROUTE, headers=staff)
    assert read.json() == chosen.json()


async def test_the_cdc_subscriber_routes_need_its_key_and_well_formed_reports(client: Client) -> None:
    admin = client.headers("admin")
    assert (await client.http.post("/practice", json={"name": "Realtime Clinic"}, headers=admin)).status_code == 201
    assert (await client.http.put(ROUTE, json={"appointment_object": "service_appointment"}, headers=admin)).is_success
    early = await client.http.post("/integrations/salesforce/realtime", headers=admin)
    assert_problem(early, 409, reason="NOT_CONNECTED")  # no key stands in for the org's connection
    connect = client.stack.vendors["salesforce"].connect
    assert (await client.http.post("/integrations/salesforce/connect", json=connect, headers=admin)).is_success
    enabled = (await client.http.post("/integrations/salesforce/realtime", headers=admin)).json()
    key = enabled["headers"]

    for method, url in (("GET", enabled["replay_url"]), ("POST", enabled["resync_url"])):
        missing = await client.http.request(method, url)
        assert_problem(missing, 401, reason="API_KEY_MISSING")
        forged = await client.http.request(method, url, headers={"X-API-Key": "ck_" + "f" * 43})
        assert_problem(forged, 401, reason="INVALID_API_KEY")
    event = {"payload": {"ChangeEventHeader": {"entityName": "Account", "changeOrigin": ""}}}
    no_replay_id = await client.http.post(enabled["url"], json=event, headers=key)
    assert_problem(no_replay_id, 400, field="event.replayId", reason="INVALID_CHANGE_EVENT")
    assert (await client.http.get(enabled["replay_url"], headers=key)).json()["replay_preset"] == "LATEST"
    bad_code = await client.http.post(enabled["resync_url"], json={"error_code": "not a code!"}, headers=key)
    assert_problem(bad_code, 422, field="error_code")
