"""A conflict a person settles: the demo practice's GoHighLevel config under manual_review, one
patient's city changed in the hub and in GHL before either side saw the other's edit. The pull
applies nothing of that field, the review queue shows it, an admin takes GHL's value, and the next
push leaves both sides agreeing. The config goes back to hub_wins afterwards."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from services.demo import PRACTICE_ID, DemoError, _check, run_sync
from services.supervisor import Stack

HUB_CITY, GHL_CITY = "Newport", "Bristol"


@dataclass
class ConflictResult:
    pull: dict[str, Any]
    held: list[dict[str, Any]]
    shown: dict[str, Any]
    resolved: dict[str, Any]
    push: dict[str, Any]
    hub_city: str
    ghl_city: str


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
    return ConflictResult(pull, held["items"], shown, resolved, push, hub["city"], ghl_city)


def print_conflicts_summary(result: ConflictResult, console: Console) -> None:
    table = Table(title="Concord demo: a conflict settled in the review queue", show_header=True)
    table.add_column("step")
    table.add_column("result", justify="right")
    table.add_row("both sides changed the same city; pull under manual_review", f"{len(result.held)} field held")
    table.add_row("review item shows", f"field {result.shown['field']}: base, hub and vendor values only")
    table.add_row("resolved by", f"{result.resolved['resolved_by']} ({result.resolved['resolution']}'s value)")
    table.add_row("next push (updated)", str(result.push["records_updated"]))
    table.add_row("hub / GoHighLevel agree", "yes" if result.hub_city == result.ghl_city else "no")
    console.print(table)
