"""The project's Synthea patients (data/fhir/synthea: one transaction Bundle per patient)."""

from __future__ import annotations

import json
from pathlib import Path

SYNTHEA_DIR = Path(__file__).resolve().parents[2] / "data" / "fhir" / "synthea"


def synthea_patients() -> list[dict]:
    patients = []
    for path in sorted(SYNTHEA_DIR.glob("*.json")):
        bundle = json.loads(path.read_text(encoding="utf-8"))
        patients += [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"]
    return patients
