"""Offboarding crypto-shreds the practice: afterwards nothing of it can be read or written, its
configs are inactive, the audit chain is intact and says what happened, and another practice is
untouched."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from libs.grpc_client import call, open_channel
from libs.identity import Caller, acting_as
from libs.protos.concord.registry.v1 import registry_pb2, registry_pb2_grpc
from services.supervisor import Stack


@pytest.fixture
async def http(bare_stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=bare_stack.gateway_url, timeout=30) as client:
        yield client


async def _practice_with_a_patient(stack: Stack, http: httpx.AsyncClient, role: str = "admin") -> tuple[str, dict, str]:
    practice = f"p-{uuid.uuid4().hex[:10]}"
    token = stack.gateway.issuer.mint(f"{role}-1", practice, role)  # type: ignore[union-attr]
    headers = {"Authorization": f"Bearer {token}"}
    if role == "admin":
        assert (await http.post("/practice", json={"name": "Leaving Clinic"}, headers=headers)).status_code == 201
        async with open_channel(stack.services["registry"].address) as channel:  # a config, not connected
            with acting_as(Caller(user_id="admin-1", practice_id=practice, role="admin")):
                await call(
                    registry_pb2_grpc.RegistryServiceStub(channel).CreateIntegrationConfig,
                    registry_pb2.CreateIntegrationConfigRequest(
                        config=registry_pb2.IntegrationConfig(practice_id=practice, integration_type="ghl")
                    ),
                )
    patient = {"resourceType": "Patient", "name": [{"family": "Quillon", "given": ["Ada"]}], "birthDate": "1950-01-02"}
    created = await http.post("/patients", json=patient, headers=headers)
    assert created.status_code == 201
    return practice, headers, created.json()["id"]


async def test_offboarding_makes_the_practice_unreadable_and_leaves_others_alone(
    bare_stack: Stack, http: httpx.AsyncClient
) -> None:
    practice, headers, patient_id = await _practice_with_a_patient(bare_stack, http)
    _, other_headers, other_patient = await _practice_with_a_patient(bare_stack, http)

    staff = {"Authorization": f"Bearer {bare_stack.gateway.issuer.mint('staff-1', practice, 'staff')}"}  # type: ignore[union-attr]
    assert (await http.post("/practice/offboard", json={"confirm": practice}, headers=staff)).status_code == 403
    mistyped = await http.post("/practice/offboard", json={"confirm": "p-other"}, headers=headers)
    assert mistyped.status_code == 400 and mistyped.json()["reason"] == "CONFIRMATION_MISMATCH"
    assert (await http.get(f"/patients/{patient_id}", headers=headers)).status_code == 200  # refusals changed nothing

    done = await http.post("/practice/offboard", json={"confirm": practice}, headers=headers)
    assert done.status_code == 200, done.text
    report = done.json()
    assert report["configs_deactivated"] == 1 and report["data_keys_destroyed"] >= 1
    assert report["blind_indexes_deleted"] >= 1

    gone = await http.get(f"/patients/{patient_id}", headers=headers)
    assert gone.status_code == 409 and gone.json()["reason"] == "PRACTICE_SHREDDED"
    new = {"resourceType": "Patient", "name": [{"family": "Later"}], "birthDate": "1990-01-01"}
    refused = await http.post("/patients", json=new, headers=headers)
    assert refused.status_code == 409 and refused.json()["reason"] == "PRACTICE_SHREDDED"
    status = (await http.get("/integrations/hl/status", headers=headers)).json()
    assert status["active"] is False

    verified = (await http.get("/audit/verify", headers=headers)).json()
    assert verified["intact"] is True
    events = (await http.get("/audit/events", params={"action": "*.shred"}, headers=headers)).json()["events"]
    assert {e["action"] for e in events} == {"practice.shred", "credential.shred"}

    other = await http.get(f"/patients/{other_patient}", headers=other_headers)
    assert other.status_code == 200 and other.json()["name"][0]["family"] == "Quillon"
