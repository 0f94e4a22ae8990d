"""Zapier through the gateway and the real stack, driven by the Zapier sandbox over real HTTP: REST
hook subscribe/unsubscribe, actions with the API key Concord issued, signed deliveries of the hub's
changes, 410 and 429 handling, practice confinement."""

from __future__ import annotations

import hashlib
import hmac
import json

import httpx

from services.demo import run_sync, run_zapier_demo, synthetic_patients_bundle
from services.dev_vendors import zapier_app


def _admin(stack, practice_id: str) -> dict[str, str]:  # noqa: ANN001
    return {"Authorization": f"Bearer {stack.gateway.issuer.mint('admin-user', practice_id, 'admin')}"}


async def _connected(stack, http: httpx.AsyncClient, practice_id: str) -> tuple[dict, str]:  # noqa: ANN001
    headers = _admin(stack, practice_id)
    assert (await http.post("/practice", json={"name": practice_id}, headers=headers)).status_code == 201
    key = (await http.post("/integrations/zapier/keys", json={}, headers=headers)).json()
    zapier = stack.sandboxes["zapier"].url
    app_id = f"app-{practice_id}"
    registered = await http.post(f"{zapier}/_sandbox/apps", json=zapier_app(app_id, stack.gateway_url, key["api_key"]))
    assert registered.status_code == 201
    assert (await http.post(f"{zapier}/_sandbox/apps/{app_id}/connect", json={})).status_code == 200
    return key, app_id


async def test_zapier_demo_delivers_each_hub_patient_once_and_takes_actions(stack) -> None:  # noqa: ANN001
    result = await run_zapier_demo(stack, seeded=5)
    assert result.actions == {"patients": 5, "appointments": 1}
    assert result.pushed["records_created"] == 20
    assert result.delivered_records == 20
    assert result.appointments_delivered == 2  # the hub's own bookings; the Zap's own one is not echoed back
    assert result.unsubscribed

    headers = _admin(stack, "demo-zapier-practice")
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=120) as http:
        patients = (await http.get("/patients", params={"page_size": 500}, headers=headers)).json()["patients"]
        assert len(patients) == 25  # 5 from Zapier actions, 20 imported: none twice
        listed = (await http.get("/appointments", headers=headers)).json()["appointments"]
        assert len(listed) == 3  # the Zap's booking and the two the hub booked
        appointments = [a for a in listed if a["start"].startswith("2027-01-11")]
        assert len(appointments) == 1
        first = synthetic_patients_bundle(1)["entry"][0]["resource"]
        owner = appointments[0]["participant"][0]["actor"]["reference"].removeprefix("Patient/")
        assert any(p["id"] == owner and p["name"][0]["family"] == first["name"][0]["family"] for p in patients)


async def test_deliveries_are_signed_and_a_zap_that_answers_410_is_unsubscribed(stack) -> None:  # noqa: ANN001
    zapier = stack.sandboxes["zapier"].url
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=120) as http:
        key, app_id = await _connected(stack, http, "zap-410")
        headers = _admin(stack, "zap-410")
        zap = (await http.post(f"{zapier}/_sandbox/zaps", json={"app_id": app_id, "trigger": "patient_created"})).json()
        assert zap["state"] == "on"
        secret = zap["subscribe_data"]["signing_secret"]
        bundle = synthetic_patients_bundle(3)
        assert (await http.post("/patients/import", json=bundle, headers=headers)).status_code == 201
        pushed = await run_sync(http, headers, "push", vendor="zapier")
        assert pushed["status"] == "succeeded" and pushed["records_created"] == 3
        [delivery] = (await http.get(f"{zapier}/_sandbox/zaps/{zap['id']}/deliveries")).json()
        body = json.dumps(delivery["body"], separators=(",", ":")).encode()
        signature = {k.lower(): v for k, v in delivery["headers"].items()}["x-concord-signature"]
        assert signature == "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        assert {r["event"] for r in delivery["body"]} == {"patient.created"}
        assert len({r["id"] for r in delivery["body"]}) == 3

        # The Zap is deleted at Zapier without telling Concord: its catch hook answers 410.
        zap_state = stack.sandbox_apps["zapier"].state.sandbox.zaps[zap["id"]]
        zap_state.state = "deleted"
        patient = (await http.get("/patients", headers=headers)).json()["patients"][0]
        patient["address"][0]["city"] = "Newport"
        updated = await http.put(f"/patients/{patient['id']}", json=patient, headers=headers)
        assert updated.status_code == 200
        # A patient.updated Zap would get it; this config only has the deleted patient.created one.
        zap2 = (
            await http.post(f"{zapier}/_sandbox/zaps", json={"app_id": app_id, "trigger": "patient_updated"})
        ).json()
        stack.sandbox_apps["zapier"].state.sandbox.zaps[zap2["id"]].state = "deleted"
        pushed = await run_sync(http, headers, "push", vendor="zapier")
        assert pushed["status"] == "succeeded" and pushed["records_updated"] == 1
        hooks = (await http.get("/zapier/hooks", headers=headers)).json()["subscriptions"]
        assert [h["event"] for h in hooks] == ["patient.created"]  # the 410 removed the updated one


async def test_a_throttled_zap_gets_every_record_once(stack) -> None:  # noqa: ANN001
    zapier = stack.sandboxes["zapier"].url
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=120) as http:
        _, app_id = await _connected(stack, http, "zap-429")
        headers = _admin(stack, "zap-429")
        zap = (await http.post(f"{zapier}/_sandbox/zaps", json={"app_id": app_id, "trigger": "patient_created"})).json()
        assert (
            await http.post("/patients/import", json=synthetic_patients_bundle(4), headers=headers)
        ).status_code == 201
        # Zapier's throttle says Retry-After: 60; the adapter's waits are recorded, not slept.
        waits: list[float] = []

        async def wait(seconds: float) -> None:
            waits.append(seconds)

        adapter = next(w.adapter for w, _ in stack.workers if w.adapter.vendor == "zapier")
        adapter._sleep = wait
        # Two 429s, then the hook takes it (Retry-After honoured, nothing failed).
        faults = await http.post(f"{zapier}/_sandbox/faults", json={"rate_limit_storm": 2})
        assert faults.status_code in (200, 201), faults.text
        pushed = await run_sync(http, headers, "push", vendor="zapier")
        assert pushed["status"] == "succeeded" and pushed["records_failed"] == 0
        deliveries = (await http.get(f"{zapier}/_sandbox/zaps/{zap['id']}/deliveries")).json()
        assert sum(len(d["body"]) for d in deliveries) == 4
        assert waits == [60.0, 60.0]


async def test_keys_and_hooks_are_confined_to_their_practice(stack) -> None:  # noqa: ANN001
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=120) as http:
        key_a, _ = await _connected(stack, http, "zap-a")
        key_b, app_b = await _connected(stack, http, "zap-b")
        zapier = stack.sandboxes["zapier"].url
        zap_b = (
            await http.post(f"{zapier}/_sandbox/zaps", json={"app_id": app_b, "trigger": "patient_created"})
        ).json()
        hook_b = zap_b["subscribe_data"]["id"]
        as_a = {"X-API-Key": key_a["api_key"]}
        refused = await http.delete(f"/zapier/hooks/{hook_b}", headers=as_a)
        assert refused.status_code == 404
        assert refused.json()["reason"] == "SUBSCRIPTION_NOT_FOUND"
        assert (await http.get("/zapier/me", headers={"X-API-Key": "ck_" + "x" * 43})).status_code == 401
        assert (await http.get("/zapier/me")).status_code == 401
        bad = await http.post("/zapier/patients", json={"first_name": "No", "external_id": "z1"}, headers=as_a)
        assert bad.status_code == 400 and bad.json()["field"] == "last_name"
        revoked = await http.delete(f"/integrations/zapier/keys/{key_a['key_id']}", headers=_admin(stack, "zap-a"))
        assert revoked.status_code == 204
        after = await http.get("/zapier/me", headers=as_a)
        assert after.status_code == 401 and after.json()["reason"] == "INVALID_API_KEY"


async def test_an_action_for_someone_the_hub_may_know_is_held_for_review_not_created(stack) -> None:  # noqa: ANN001
    """Zapier actions are matched like any vendor's records: an existing patient (name and birth
    date) is updated, not duplicated; a household member sharing the patient's phone is held."""
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=120) as http:
        key, _ = await _connected(stack, http, "zap-identity")
        headers = _admin(stack, "zap-identity")
        imported = (await http.post("/patients/import", json=synthetic_patients_bundle(1), headers=headers)).json()
        [patient_id] = imported["patient_ids"]
        hub = (await http.get(f"/patients/{patient_id}", headers=headers)).json()
        name = hub["name"][0]
        phone = next(t["value"] for t in hub["telecom"] if t["system"] == "phone")
        as_zapier = {"X-API-Key": key["api_key"]}
        same = {
            "external_id": "zap-same",
            "first_name": name["given"][0].lower(),
            "last_name": name["family"].upper(),
            "birth_date": hub["birthDate"],
            "email": "same.person@example.org",
        }
        matched = await http.post("/zapier/patients", json=same, headers=as_zapier)
        assert matched.status_code == 200, matched.text  # updated, not created
        assert matched.json() == {"patient_id": patient_id, "external_id": "zap-same", "created": False}
        relative = {
            "external_id": "zap-relative",
            "first_name": "Quennith",
            "last_name": name["family"],
            "birth_date": "2016-03-03",
            "phone": phone,
        }
        held = await http.post("/zapier/patients", json=relative, headers=as_zapier)
        assert held.status_code == 202, held.text
        assert held.json()["status"] == "held_for_review" and held.json()["review_id"]
        patients = (await http.get("/patients", headers=headers)).json()["patients"]
        assert [p["id"] for p in patients] == [patient_id]
        assert any(t["value"] == "same.person@example.org" for t in patients[0]["telecom"])  # merged in
