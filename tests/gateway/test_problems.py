"""Bad input on every endpoint: RFC 9457 problem JSON that names the field and never echoes the
submitted value; unknown ids 404; If-Match guards updates."""

from __future__ import annotations

import uuid

import pytest

from tests.gateway.conftest import Client, assert_problem

CANARY = "Canaryvaluezz"


def _patient(**extra: object) -> dict:
    return {"resourceType": "Patient", "name": [{"family": "Okafor", "given": ["Ada"]}], **extra}


async def _created(client: Client) -> tuple[str, str]:
    response = await client.http.post("/patients", json=_patient(), headers=client.headers())
    assert response.status_code == 201, response.text
    return response.json()["id"], response.headers["etag"]


JSON_BODIES = [
    ("POST", "/practice"),
    ("POST", "/patients"),
    ("POST", "/patients/import"),
    ("PUT", "/patients/{id}"),
    ("POST", "/integrations/hl/patients/sync"),
    ("POST", "/integrations/hl/patients/sync-settings"),
]


async def test_a_malformed_json_body_is_400_naming_the_body(admin: Client) -> None:
    patient_id, _ = await _created(admin)
    for method, path in JSON_BODIES:
        response = await admin.http.request(
            method,
            path.format(id=patient_id),
            content=f'{{"name": "{CANARY}",'.encode(),
            headers={**admin.headers(), "Content-Type": "application/json"},
        )
        assert_problem(response, 400, field="body")
        assert CANARY not in response.text, path


WRONG_TYPES = [
    ("POST", "/practice", {"name": 12345}, "name"),
    ("POST", "/practice", {"name": ""}, "name"),
    ("POST", "/practice", {"title": CANARY}, "name"),
    ("POST", "/patients", [CANARY], "body"),
    ("POST", "/patients/import", CANARY, "body"),
    ("POST", "/integrations/hl/patients/sync", {"direction": CANARY}, "direction"),
    ("POST", "/integrations/hl/patients/sync", {"direction": 7}, "direction"),
    ("POST", "/integrations/hl/patients/sync-settings", {"active": CANARY}, "active"),
    ("POST", "/integrations/hl/patients/sync-settings", {"conflict_policy": CANARY}, "conflict_policy"),
    ("POST", "/integrations/hl/patients/sync-settings", {"sync_frequency": ["hourly"]}, "sync_frequency"),
    ("GET", f"/patients?page_size={CANARY}", None, "page_size"),
    ("GET", "/patients?page_size=0", None, "page_size"),
    ("GET", "/integrations/hl/patients/status?page_size=1000", None, "page_size"),
    ("GET", f"/sync-runs/{uuid.UUID(int=7)}?wait={CANARY}", None, "wait"),  # fixed: test ids match across xdist workers
    ("GET", "/integrations/hl/callback?code=abc", None, "state"),
]


@pytest.mark.parametrize(("method", "path", "body", "field"), WRONG_TYPES)
async def test_wrong_types_are_422_naming_the_field(
    admin: Client, method: str, path: str, body: object, field: str
) -> None:
    response = await admin.http.request(method, path, json=body, headers=admin.headers())
    problem = assert_problem(response, 422, field=field)
    assert problem["errors"] and all(e["reason"] for e in problem["errors"])
    assert CANARY not in response.text


async def test_invalid_values_are_400_naming_the_field_not_the_value(admin: Client) -> None:
    headers = admin.headers()
    cases = [
        ("POST", "/patients", _patient(gender=CANARY), "gender"),
        ("POST", "/patients", _patient(birthDate=f"{CANARY}-01"), "birthDate"),
        ("POST", "/patients", {"resourceType": CANARY}, "resourceType"),
        ("POST", "/patients/import", {"resourceType": "Patient", "note": CANARY}, "body"),
        (
            "POST",
            "/patients/import",
            {"resourceType": "Bundle", "entry": [{"resource": _patient(birthDate=CANARY)}]},
            "entry[0].resource.birthDate",
        ),
        ("POST", "/integrations/hl/patients/sync-settings", {}, "body"),
        ("GET", f"/patients?page_token={CANARY}%25", None, "page_token"),
        ("GET", f"/integrations/hl/patients/status?page_token={CANARY}%25", None, "page_token"),
    ]
    for method, path, body, field in cases:
        response = await admin.http.request(method, path, json=body, headers=headers)
        assert_problem(response, 400, field=field)
        assert CANARY not in response.text, path
    listed = (await admin.http.get("/patients", headers=headers)).json()
    assert listed["patients"] == []  # nothing half-written by the refused requests


async def test_unknown_ids_are_404(admin: Client, stack) -> None:  # noqa: ANN001
    headers = admin.headers()
    unknown = str(uuid.uuid4())
    for method, path, body, reason in [
        ("GET", f"/patients/{unknown}", None, "PATIENT_NOT_FOUND"),
        ("PUT", f"/patients/{unknown}", _patient(), "PATIENT_NOT_FOUND"),
        ("GET", f"/sync-runs/{unknown}", None, "SYNC_RUN_NOT_FOUND"),
        ("GET", f"/integrations/{CANARY}/status", None, "UNKNOWN_INTEGRATION"),
        ("GET", f"/integrations/{CANARY}/authorize", None, "UNKNOWN_INTEGRATION"),
        ("POST", f"/integrations/{CANARY}/patients/sync", {}, "UNKNOWN_INTEGRATION"),
    ]:
        response = await admin.http.request(method, path, json=body, headers=headers)
        problem = assert_problem(response, 404, reason=reason)
        assert CANARY not in problem["detail"]

    # Another practice's patient does not exist for this one; a practice with no config has none.
    patient_id, _ = await _created(admin)
    other = Client(stack, admin.http, f"p-{uuid.uuid4().hex[:10]}")
    assert_problem(await admin.http.get(f"/patients/{patient_id}", headers=other.headers()), 404)
    for method, path in [
        ("POST", "/integrations/hl/patients/sync"),
        ("GET", "/integrations/hl/patients/status"),
        ("POST", "/integrations/hl/disconnect"),
        ("POST", "/integrations/hl/patients/sync-settings"),
    ]:
        response = await admin.http.request(method, path, json={"active": True}, headers=other.headers())
        assert_problem(response, 404, reason="CONFIG_NOT_FOUND")
    status = (await admin.http.get("/integrations/hl/status", headers=other.headers())).json()
    assert status == {"integration": "hl", "configured": False, "connected": False}


async def test_if_match_guards_updates(admin: Client) -> None:
    headers = admin.headers()
    patient_id, etag = await _created(admin)
    assert etag == 'W/"1"'
    path = f"/patients/{patient_id}"

    for bad in (CANARY, 'W/"0"', '"-1"', 'W/"1.5"'):
        response = await admin.http.put(path, json=_patient(gender="male"), headers={**headers, "If-Match": bad})
        assert_problem(response, 400, field="If-Match", reason="INVALID_ETAG")
        assert CANARY not in response.text

    response = await admin.http.put(path, json=_patient(gender="male"), headers={**headers, "If-Match": etag})
    assert response.status_code == 200, response.text
    assert response.headers["etag"] == 'W/"2"'

    response = await admin.http.put(path, json=_patient(gender="other"), headers={**headers, "If-Match": etag})
    assert_problem(response, 409, reason="VERSION_MISMATCH")
    current = await admin.http.get(path, headers=headers)
    assert current.headers["etag"] == 'W/"2"' and current.json()["gender"] == "male"

    # "*" matches whatever version is current (RFC 9110 13.1.1).
    response = await admin.http.put(path, json=_patient(gender="female"), headers={**headers, "If-Match": "*"})
    assert response.status_code == 200 and response.headers["etag"] == 'W/"3"'

    response = await admin.http.put(
        path, json={**_patient(), "id": str(uuid.uuid4())}, headers={**headers, "If-Match": 'W/"3"'}
    )
    assert_problem(response, 400, field="id", reason="ID_MISMATCH")
