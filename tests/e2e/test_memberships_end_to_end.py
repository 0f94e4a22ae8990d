"""Zenoti memberships through the gateway and the real stack (Temporal, gRPC services, the sandbox
over HTTP): the center's guests pulled as patients, then their memberships pulled as FHIR Coverage
whose beneficiary is the hub patient of that guest; a second run changes nothing, a two-way run is a
pull, and a push to Zenoti is refused as read-only; memberships pulled before their guests wait, not lost."""

from __future__ import annotations

import logging
from datetime import date, timedelta

import httpx

from libs import fhir_membership
from sandbox.zenoti.model import GuestMembership
from services.demo import _check, run_sync
from tests.e2e.test_cli import _concord

GUESTS = [("Mara", "Okafor"), ("Ilse", "Brandt"), ("Teo", "Lindqvist")]


async def _front_desk_signs_up(stack, center_id: str) -> dict[str, GuestMembership]:  # noqa: ANN001
    """Guests created over Zenoti's own API; their memberships sold at the front desk (Zenoti's web
    app: the public API sells memberships only through invoices), as the sandbox's memory."""
    vendor = stack.vendors["zenoti"]
    org = next(iter(vendor.app.state.sandbox.orgs.values()))
    plans = sorted(org.memberships.values(), key=lambda m: m.name)
    held: dict[str, GuestMembership] = {}
    auth = {"Authorization": f"apikey {vendor.connect['api_key']}"}
    async with httpx.AsyncClient(base_url=vendor.sandbox.url, headers=auth, timeout=30) as zenoti:
        for n, (first, last) in enumerate(GUESTS):
            guest = {
                "center_id": center_id,
                "personal_info": {
                    "first_name": first,
                    "last_name": last,
                    "email": f"{first}.{last}@example.com".lower(),
                },
            }
            created = await zenoti.post("/v1/guests", json=guest)
            assert created.status_code == 200, created.text
            for k in range(n):  # 0, 1 and 2 memberships
                start = date(2026, 1, 1) + timedelta(days=30 * k)
                status = ("Active", "Cancelled")[k]
                gm = GuestMembership(
                    f"gm-{n}-{k}",
                    created.json()["id"],
                    plans[k].id,
                    center_id,
                    start,
                    start + timedelta(days=365),
                    status,
                    f"inv-{n}-{k}",
                )
                org.guest_memberships[gm.id] = gm
                held[gm.id] = gm
    return held


async def test_zenoti_memberships_land_linked_to_their_patients_once(stack, caplog) -> None:  # noqa: ANN001
    caplog.set_level(logging.DEBUG)
    token = stack.gateway.issuer.mint("demo-admin", "memberships-practice", "admin")
    headers = {"Authorization": f"Bearer {token}"}
    org = next(iter(stack.vendors["zenoti"].app.state.sandbox.orgs.values()))
    held = await _front_desk_signs_up(stack, stack.vendors["zenoti"].connect["account_id"])
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=600) as http:
        _check(await http.post("/practice", json={"name": "Membership Spa"}, headers=headers), 201, "practice")
        body = stack.vendors["zenoti"].connect
        _check(await http.post("/integrations/zenoti/connect", json=body, headers=headers), 200, "connect")
        # Memberships first: none of their guests is a hub patient yet, so each waits, none is lost.
        early = await run_sync(http, headers, "pull", vendor="zenoti", entity="memberships")
        assert (early["records_created"], early["records_failed"]) == (0, len(held)), early
        patients = await run_sync(http, headers, "pull", vendor="zenoti", entity="patients")
        assert patients["status"] == "succeeded" and patients["records_created"] == len(GUESTS), patients

        pulled = await run_sync(http, headers, "pull", vendor="zenoti", entity="memberships")
        assert pulled["status"] == "succeeded" and pulled["records_failed"] == 0, pulled
        assert pulled["records_created"] == len(held) == 3

        listed = _check(await http.get("/memberships", params={"page_size": 500}, headers=headers), 200, "list")
        memberships = listed["memberships"]
        assert sorted(fhir_membership.project(m)["membership_id"] for m in memberships) == sorted(held)
        for membership in memberships:
            projected = fhir_membership.project(membership)
            expected = held[projected["membership_id"]]
            # The beneficiary is the hub patient linked to that Zenoti guest.
            assert projected["patient"].startswith("Patient/")
            patient = _check(
                await http.get(f"/patients/{projected['patient'].removeprefix('Patient/')}", headers=headers),
                200,
                "patient",
            )
            guest = org.guests[expected.guest_id]
            assert patient["name"][0]["family"] == guest["personal_info"]["last_name"]
            assert projected["plan_name"] == org.memberships[expected.membership_id].name
        one = _check(await http.get(f"/memberships/{memberships[0]['id']}", headers=headers), 200, "one")
        assert one == memberships[0]
        missing = await http.get("/memberships/no-such-membership", headers=headers)
        assert missing.status_code == 404 and missing.headers["content-type"].startswith("application/problem+json")

        again = await run_sync(http, headers, "pull", vendor="zenoti", entity="memberships")
        assert (again["records_created"], again["records_updated"], again["records_failed"]) == (0, 0, 0), again
        both = await run_sync(http, headers, "bidirectional", vendor="zenoti", entity="memberships")
        assert both["direction"] == "pull" and (both["records_created"], both["records_updated"]) == (0, 0), both
        refused = await http.post("/integrations/zenoti/memberships/sync", json={"direction": "push"}, headers=headers)
        assert refused.status_code == 409 and refused.json()["reason"] == "READ_ONLY_ENTITY", refused.text
        after = _check(await http.get("/memberships", params={"page_size": 500}, headers=headers), 200, "list")
        assert after["memberships"] == memberships
    # The operator's command: unchanged memberships come again and change nothing (every pass returns
    # every membership, memberships.py); a push to Zenoti is refused.
    code, output = await _concord(stack, token, "sync", "memberships", "--vendor", "zenoti", "--direction", "pull")
    assert code == 0 and f"succeeded: {len(held)} synced (0 created, 0 updated), 0 failed" in output, output
    code, output = await _concord(stack, token, "sync", "memberships", "--vendor", "zenoti", "--direction", "push")
    assert code == 2 and "HTTP 409" in output, output
    # Names of members are PHI: none in any log line of the whole run (which logged plenty).
    assert len(caplog.records) > 10
    for first, last in GUESTS:
        assert first not in caplog.text and last not in caplog.text
