"""No PHI at rest in clear: canary PHI is planted through the gateway (hub-origin) and at the GHL
sandbox (vendor-origin), a full push and a pull run, and then Concord's raw storage is searched for
it: every file under the data directory as bytes (each service's SQLite file and its -wal/-shm,
Temporal's SQLite history, the keyring, logs) and, on PostgreSQL, every row of every table in the
stack's schemas as text.

Excluded: the vendor sandboxes' storage. They are the vendor (GHL holds the contacts in clear by
design) and keep it in process memory, never under the data directory, so nothing on disk is left
out of the scan; the sandbox's in-memory contacts are read only to prove the canaries got there.
"""

from __future__ import annotations

import random
import uuid
from pathlib import Path

import httpx
import pytest

from libs.settings import SERVICES
from services.demo import connect_ghl, run_sync
from services.supervisor import start_stack


@pytest.fixture
async def stack(settings, temporal_binary):  # noqa: ANN001
    running = await start_stack(
        settings.model_copy(update={"vendor_pacing": False}), ephemeral_ports=True, sandbox_rate_limit=False
    )
    yield running
    await running.stop()


def _canaries() -> dict[str, str]:
    tag = uuid.uuid4().hex[:8]
    rng = random.Random(tag)  # noqa: S311
    return {
        # hub-origin: created through the gateway
        "given": f"Quillon{tag}",
        "family": f"Vexmortar{tag}",
        "email": f"canary.{tag}@example.org",
        "phone_digits": f"617555{rng.randint(100, 199):03d}{rng.randint(0, 9)}",
        "line": f"{rng.randint(100, 999)} Zephyrcanary{tag} Lane",
        "birth": f"19{rng.randint(10, 29)}-0{rng.randint(1, 9)}-{rng.randint(10, 28)}",
        "note": f"Canary note {tag}: allergic to marmalade",
        # vendor-origin: edited at GHL, pulled into the hub
        "city": f"Brindlecanary{tag}",
        "v_given": f"Ortolan{tag}",
        "v_family": f"Quasimodal{tag}",
        "v_email": f"vendor.canary.{tag}@example.net",
        "v_phone_digits": f"212555{rng.randint(100, 199):03d}{rng.randint(0, 9)}",
        "v_line": f"{rng.randint(100, 999)} Marrowcanary{tag} Road",
        "v_birth": f"18{rng.randint(80, 99)}-1{rng.randint(0, 2)}-{rng.randint(10, 28)}",
    }


def _forms(canaries: dict[str, str]) -> dict[str, list[bytes]]:
    """Every canary as UTF-8, lower-cased (the scan lower-cases what it reads too)."""
    out = {}
    for name, value in canaries.items():
        forms = {value.lower()}
        if name.endswith("phone_digits"):
            d = value
            forms |= {f"+1{d}", f"{d[:3]}-{d[3:6]}-{d[6:]}", f"({d[:3]}) {d[3:6]}-{d[6:]}"}
        out[name] = [f.encode() for f in forms]
    return out


def _leaks(raw: bytes, forms: dict[str, list[bytes]]) -> list[str]:
    lowered = raw.lower()
    return sorted(name for name, variants in forms.items() if any(v in lowered for v in variants))


def _patient(c: dict[str, str]) -> dict:
    return {
        "resourceType": "Patient",
        "name": [{"use": "official", "family": c["family"], "given": [c["given"]]}],
        "telecom": [
            {"system": "email", "value": c["email"]},
            {
                "system": "phone",
                "value": f"+1 {c['phone_digits'][:3]} {c['phone_digits'][3:6]} {c['phone_digits'][6:]}",
            },
        ],
        "birthDate": c["birth"],
        "gender": "female",
        "address": [{"line": [c["line"]], "city": "Boston", "state": "MA", "postalCode": "02118", "country": "US"}],
        "text": {"status": "generated", "div": f'<div xmlns="http://www.w3.org/1999/xhtml">{c["note"]}</div>'},
    }


async def test_canary_phi_is_nowhere_at_rest_in_clear(stack) -> None:  # noqa: ANN001
    canaries = _canaries()
    sandbox = stack.sandboxes["ghl"].url
    practice = f"p-{uuid.uuid4().hex[:10]}"
    token = stack.gateway.issuer.mint("canary-admin", practice, "admin")
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=300) as http:
        assert (await http.post("/practice", json={"name": "Canary Clinic"}, headers=headers)).status_code == 201
        await connect_ghl(http, headers)
        location = (await http.get("/integrations/hl/status", headers=headers)).json()["account_id"]
        created = await http.post("/patients", json=_patient(canaries), headers=headers)
        assert created.status_code == 201, created.text

        pushed = await run_sync(http, headers, "push")
        assert pushed["status"] == "succeeded" and pushed["records_created"] == 1, pushed

        # At the vendor: the pushed contact is edited, and a contact of the vendor's own is made.
        contacts = (await http.get(f"{sandbox}/_sandbox/contacts", params={"locationId": location})).json()
        contacts = contacts.get("contacts", contacts) if isinstance(contacts, dict) else contacts
        [ours] = contacts
        assert ours["lastName"].lower() == canaries["family"].lower()
        edit = await http.patch(f"{sandbox}/_sandbox/contacts/{ours['id']}", json={"city": canaries["city"]})
        assert edit.status_code == 200, edit.text
        seeded = await http.post(f"{sandbox}/_sandbox/seed", json={"locationId": location, "count": 1})
        assert seeded.status_code == 201, seeded.text
        [vendor_id] = seeded.json()["ids"]
        d = canaries["v_phone_digits"]
        edit = await http.patch(
            f"{sandbox}/_sandbox/contacts/{vendor_id}",
            json={
                "firstName": canaries["v_given"],
                "lastName": canaries["v_family"],
                "email": canaries["v_email"],
                "phone": f"+1{d}",
                "address1": canaries["v_line"],
                "city": "Albany",
                "postalCode": "12207",
                "dateOfBirth": canaries["v_birth"],
            },
        )
        assert edit.status_code == 200, edit.text

        pulled = await run_sync(http, headers, "pull")
        assert pulled["status"] == "succeeded", pulled
        assert (pulled["records_created"], pulled["records_updated"]) == (1, 1), pulled

        # The canaries did go through Concord: the hub serves them decrypted.
        listed = (await http.get("/patients", headers=headers)).text.lower()
        for name in ("family", "given", "email", "line", "city", "v_family", "v_given", "v_email", "v_line"):
            assert canaries[name].lower() in listed, name

    forms = _forms(canaries)
    assert _leaks(b"x" + canaries["family"].upper().encode() + b"x", forms) == ["family"]  # the scan sees
    settings = stack.settings
    scanned, found = _scan_files(Path(settings.data_dir), forms)
    if not settings.database_url:
        assert {f"{s}.db" for s in SERVICES} <= set(scanned)
    assert "temporal.db" in scanned and "keys/keyring.json" in scanned
    assert found == {}

    if settings.database_url:
        assert await _postgres_leaks(settings, forms) == {}


def _scan_files(data_dir: Path, forms: dict[str, list[bytes]]) -> tuple[list[str], dict[str, list[str]]]:
    """Every file under the data directory, as bytes: (the files, file -> canaries found in it)."""
    scanned, found = [], {}
    for path in sorted(p for p in data_dir.rglob("*") if p.is_file()):
        name = str(path.relative_to(data_dir))
        scanned.append(name)
        if leaked := _leaks(path.read_bytes(), forms):
            found[name] = leaked
    return scanned, found


async def _postgres_leaks(settings, forms: dict[str, list[bytes]]) -> dict[str, list[str]]:  # noqa: ANN001
    """table -> canaries found in its rows, read as text (bytea columns print as hex: looked for too)."""
    import asyncpg

    conn = await asyncpg.connect(settings.database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        schemas = [f"{settings.database_schema_prefix}{s}" for s in SERVICES]
        tables = await conn.fetch(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_schema = ANY($1::text[]) AND table_type = 'BASE TABLE'",
            schemas,
        )
        assert {t["table_schema"] for t in tables} == set(schemas)
        hex_forms = {name: [v.hex().encode() for v in variants] for name, variants in forms.items()}
        out = {}
        for t in tables:
            name = f'"{t["table_schema"]}"."{t["table_name"]}"'
            rows = await conn.fetch(f"SELECT t::text AS row FROM {name} t")  # noqa: S608
            raw = "\n".join(r["row"] for r in rows).encode()
            leaked = sorted(set(_leaks(raw, forms)) | set(_leaks(raw, hex_forms)))
            if leaked:
                out[name] = leaked
        return out
    finally:
        await conn.close()
