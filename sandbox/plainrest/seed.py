"""Synthetic patients from the project's Synthea set, as PlainREST stores them."""

from __future__ import annotations

import re
from typing import Any

from sandbox.common.synthetic import load, official_name

from .state import Account, Sandbox

_SEX = {"male": "M", "female": "F", "other": "X", "unknown": "U"}


def _slug(text: str) -> str:
    return re.sub(r"[^a-z]", "", text.lower()) or "x"


def _patient(source: dict[str, Any], n: int) -> dict[str, Any]:
    name = official_name(source)
    first = " ".join(name.get("given") or []) or "Pat"
    last = name.get("family") or "Doe"
    address = (source.get("address") or [{}])[0]
    phone = next((t["value"] for t in source.get("telecom", []) if t.get("system") == "phone"), None)
    digits = re.sub(r"\D", "", phone or "")
    return {
        "first_name": first,
        "last_name": last,
        "dob": source.get("birthDate"),
        "sex": _SEX.get(source.get("gender", ""), None),
        "mobile": f"+1{digits[-10:]}" if len(digits) >= 10 else None,
        "email": f"{_slug(first)}.{_slug(last)}.{n}@example.com",
        "street": ", ".join(address.get("line") or []) or None,
        "city": address.get("city"),
        "region": address.get("state"),
        "postcode": address.get("postalCode"),
        "country_code": address.get("country") if len(address.get("country") or "") == 2 else None,
    }


def add_patients(sb: Sandbox, account: Account, count: int) -> list[str]:
    """Creates ``count`` patients as the practice's staff would (cycling through Synthea)."""
    sources = load().patients
    ids = []
    for _ in range(count):
        number = len(account.patients)
        record = {"id": sb.new_id(), **_patient(sources[number % len(sources)], number)}
        sb.touch(record)
        account.patients[record["id"]] = record
        ids.append(record["id"])
    return ids
