"""What a person settles in the review queue, on the demo practice's GoHighLevel config.

A conflict: under manual_review, one patient's city changed in the hub and in GHL before either side
saw the other's edit. The pull applies nothing of that field, the queue shows it, an admin takes
GHL's value, and the next push leaves both sides agreeing. The config goes back to hub_wins.

A possible duplicate: a GHL user adds a contact with a hub patient's family name and postal code but
another given name and birth date (a household member). The pull does not create it: it waits as
an identity item saying why; the admin answers "a different person" and it becomes a patient."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from services.demo import PRACTICE_ID, DemoError, _check, run_sync
from services.supervisor import Stack

HUB_CITY, GHL_CITY = "Newport", "Bristol"
HOUSEHOLD_GIVEN = "Tamsin"


@dataclass
class ConflictResult:
    pull: dict[str, Any]
    held: list[dict[str, Any]]
    shown: dict[str, Any]
    resolved: dict[str, Any]
    push: dict[str, Any]
    hub_city: str
    ghl_city: str
    identity: dict[str, Any] | None = None
    identity_pull: dict[str, Any] | None = None
    patients_before: int = 0
    patients_after: int = 0


async def _settings(http: httpx.AsyncClient, headers: dict[str, str], policy: str) -> None:
    body = {"conflict_policy": policy}
    _check(await http.post("/integrations/hl/patients/sync-settings", json=body, headers=headers), 200, "policy")


async def run_conflicts_demo(stack: Stack) -> ConflictResult:
    """Runs after run_demo: its practice, GHL connection and synced patients."""
    token = stack.gateway.issuer.mint("demo-admin", PRACTICE_ID, "admin")  # type: ignore[union-attr]
    headers = {"Authorization": f"Bearer {token}"}
    sandbox = stack.sandboxes["ghl"].url
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=600) as http:
        await _settings(http, headers, "manual_review")
        listed = _check(await http.get("/patients", params={"page_size": 5}, headers=headers), 200, "patients")
        patient = listed["patients"][-1]
        patient["address"] = [{**patient["address"][0], "city": HUB_CITY}]
        _check(await http.put(f"/patients/{patient['id']}", json=patient, headers=headers), 200, "hub edit")
        status = _check(await http.get("/integrations/hl/status", headers=headers), 200, "status")
        contacts = _check(
            await http.get(f"{sandbox}/_sandbox/contacts", params={"locationId": status["account_id"]}), 200, "list"
        )["contacts"]
        name = patient["name"][0]
        contact = next(
            c
            for c in contacts
            if (c["firstName"].lower(), c["lastName"].lower()) == (name["given"][0].lower(), name["family"].lower())
        )
        _check(await http.patch(f"{sandbox}/_sandbox/contacts/{contact['id']}", json={"city": GHL_CITY}), 200, "edit")

        pull = await run_sync(http, headers, "pull")
        held = _check(await http.get("/review-items", params={"status": "open"}, headers=headers), 200, "queue")
        if [(i["record_id"], i["field"]) for i in held["items"]] != [(patient["id"], "city")]:
            raise DemoError(f"the review queue holds {len(held['items'])} items, expected the one city")
        item = held["items"][0]
        shown = _check(await http.get(f"/review-items/{item['review_id']}", headers=headers), 200, "review item")
        resolved = _check(
            await http.post(f"/review-items/{item['review_id']}/resolve", json={"choice": "vendor"}, headers=headers),
            200,
            "resolve",
        )
        push = await run_sync(http, headers, "push")
        await _settings(http, headers, "hub_wins")
        hub = _check(await http.get(f"/patients/{patient['id']}", headers=headers), 200, "patient")["address"][0]
        ghl = _check(
            await http.get(f"{sandbox}/_sandbox/contacts", params={"locationId": status["account_id"]}), 200, "list"
        )
        ghl_city = next(c for c in ghl["contacts"] if c["id"] == contact["id"])["city"]
        if hub["city"] != ghl_city:
            raise DemoError("the hub and GoHighLevel disagree after the review")
        result = ConflictResult(pull, held["items"], shown, resolved, push, hub["city"], ghl_city)
        await _possible_duplicate(stack, http, headers, status["account_id"], patient, result)
    return result


async def _possible_duplicate(
    stack: Stack,
    http: httpx.AsyncClient,
    headers: dict[str, str],
    location: str,
    relative: dict,
    result: ConflictResult,
) -> None:
    ghl = stack.vendors["ghl"]
    sandbox = ghl.sandbox.url
    token = _check(await http.post(f"{sandbox}/_sandbox/tokens", json={"client_id": ghl.client_id}), 201, "token")
    postal = (relative.get("address") or [{}])[0].get("postalCode")
    if not postal:
        raise DemoError("the demo patient has no postal code to share")
    # GHL refuses a second contact with a phone or email it holds: the household shares a surname
    # and an address.
    body = {
        "locationId": location,
        "firstName": HOUSEHOLD_GIVEN,
        "lastName": relative["name"][0]["family"],
        "postalCode": postal,
        "dateOfBirth": "2016-04-04",
    }
    api = {"Authorization": f"Bearer {token['access_token']}", "Version": "2021-07-28"}
    _check(await http.post(f"{sandbox}/contacts/", json=body, headers=api), 201, "GHL contact")
    result.patients_before = len(await _patients(http, headers))
    result.identity_pull = await run_sync(http, headers, "pull")
    items = _check(await http.get("/review-items", params={"status": "open"}, headers=headers), 200, "queue")["items"]
    identity = [i for i in items if i["kind"] == "identity"]
    if len(identity) != 1 or identity[0]["record_id"] != relative["id"]:
        raise DemoError(f"expected one possible duplicate of the demo patient, the queue holds {len(identity)}")
    result.identity = identity[0]
    answer = {"choice": "different"}
    _check(
        await http.post(f"/review-items/{identity[0]['review_id']}/resolve", json=answer, headers=headers),
        200,
        "resolve",
    )
    result.patients_after = len(await _patients(http, headers))


async def _patients(http: httpx.AsyncClient, headers: dict[str, str]) -> list[dict]:
    return _check(await http.get("/patients", params={"page_size": 500}, headers=headers), 200, "patients")["patients"]


def print_conflicts_summary(result: ConflictResult, console: Console) -> None:
    table = Table(title="Concord demo: a conflict settled in the review queue", show_header=True)
    table.add_column("step")
    table.add_column("result", justify="right")
    table.add_row("both sides changed the same city; pull under manual_review", f"{len(result.held)} field held")
    table.add_row("review item shows", f"field {result.shown['field']}: base, hub and vendor values only")
    table.add_row("resolved by", f"{result.resolved['resolved_by']} ({result.resolved['resolution']}'s value)")
    table.add_row("next push (updated)", str(result.push["records_updated"]))
    table.add_row("hub / GoHighLevel agree", "yes" if result.hub_city == result.ghl_city else "no")
    if result.identity is not None and result.identity_pull is not None:
        table.add_row(
            "GHL contact sharing a patient's family name and address: pulled, created",
            f"{result.identity_pull['records_processed']}, {result.identity_pull['records_created']}",
        )
        table.add_row("held as a possible duplicate because", ", ".join(result.identity["reasons"]))
        table.add_row(
            "answered 'a different person': hub patients", f"{result.patients_before} -> {result.patients_after}"
        )
    console.print(table)
