"""Contacts seeded from the project's Synthea patients (data/fhir/synthea, Patient resources only)."""

from __future__ import annotations

import functools
import json
import random
from pathlib import Path
from typing import Any

from . import model
from .state import Location, Sandbox


@functools.cache
def load_patients(directory: Path) -> tuple[dict[str, Any], ...]:
    patients = []
    for path in sorted(directory.glob("*.json")):
        bundle = json.loads(path.read_text(encoding="utf-8"))
        for entry in bundle.get("entry", []):
            resource = entry.get("resource", {})
            if resource.get("resourceType") == "Patient":
                patients.append(_contact_values(resource))
    return tuple(patients)


def _contact_values(patient: dict[str, Any]) -> dict[str, Any]:
    names = patient.get("name") or [{}]
    name = next((n for n in names if n.get("use") == "official"), names[0])
    phone = next((t.get("value") for t in patient.get("telecom", []) if t.get("system") == "phone"), None)
    address = (patient.get("address") or [{}])[0]
    return {
        "firstName": (name.get("given") or [None])[0],
        "lastName": name.get("family"),
        "dateOfBirth": patient.get("birthDate"),
        "gender": patient.get("gender"),
        "phone": model.normalize_phone(phone) if phone else None,
        "address1": (address.get("line") or [None])[0],
        "city": address.get("city"),
        "state": address.get("state"),
        "postalCode": address.get("postalCode"),
        "country": address.get("country"),
        "source": "sandbox seed",
    }


def seed(sb: Sandbox, location: Location, count: int | None = None, *, notify: bool = False) -> list[str]:
    """Creates `count` contacts (default: one per patient), cycling through the patients if needed."""
    pool = list(load_patients(sb.settings.synthea_dir))
    if not pool:
        raise FileNotFoundError(f"no Synthea Patient resources under {sb.settings.synthea_dir}")
    rng = random.Random(sb.settings.seed)  # fixed: same order and substitute phones on every run
    rng.shuffle(pool)
    ids = []
    for i in range(len(pool) if count is None else count):
        values = dict(pool[i % len(pool)])
        # Repeated patients (and re-seeds) get a fresh 555 number: phones identify contacts for upsert.
        while values["phone"] is None or values["phone"] in location.by_phone:
            values["phone"] = f"+1555{rng.randrange(10**7):07d}"
        ids.append(model.create_contact(sb, location, values, notify=notify)["id"])
    return ids
