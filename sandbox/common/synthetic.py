"""The project's synthetic data as every sandbox seeds from it: Synthea patients, their past
Encounters as past appointments, and future appointments generated with a fixed seed."""

from __future__ import annotations

import functools
import json
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

SYNTHEA_DIR = Path(__file__).resolve().parents[2] / "data" / "fhir" / "synthea"

# A small med-spa / primary-care service catalog (simulator-chosen): code, name, minutes, price.
SERVICES = (
    ("consult", "New patient consultation", 30, 150.00),
    ("followup", "Follow-up visit", 20, 95.00),
    ("physical", "Annual physical", 45, 220.00),
    ("facial", "Hydrating facial", 60, 120.00),
    ("botox", "Botox treatment", 30, 350.00),
    ("laser", "Laser hair removal", 45, 275.00),
    ("massage", "Therapeutic massage", 60, 110.00),
    ("peel", "Chemical peel", 45, 180.00),
)
CATEGORIES = {
    "consult": "Medical",
    "followup": "Medical",
    "physical": "Medical",
    "facial": "Skin care",
    "botox": "Injectables",
    "laser": "Laser",
    "massage": "Body",
    "peel": "Skin care",
}


@dataclass(frozen=True)
class Visit:
    """An appointment: a past Synthea Encounter or a generated future booking."""

    visit_id: str
    patient_id: str
    practitioner_id: str | None
    practitioner_name: str | None
    service_code: str
    start: datetime
    end: datetime
    status: str  # FHIR Appointment status: fulfilled (past) or booked (future)
    reason: str | None


@dataclass(frozen=True)
class SyntheticSet:
    patients: tuple[dict[str, Any], ...]
    practitioners: tuple[dict[str, Any], ...]
    past_visits: tuple[Visit, ...]


@functools.cache
def load(directory: Path = SYNTHEA_DIR) -> SyntheticSet:
    patients, practitioners, visits = [], {}, []
    for path in sorted(directory.glob("*.json")):
        bundle = json.loads(path.read_text(encoding="utf-8"))
        resources = [e.get("resource", {}) for e in bundle.get("entry", [])]
        by_url = {e.get("fullUrl"): e.get("resource", {}) for e in bundle.get("entry", [])}
        patient = next(r for r in resources if r.get("resourceType") == "Patient")
        patients.append(patient)
        for resource in resources:
            if resource.get("resourceType") == "Practitioner":
                practitioners[resource["id"]] = resource
            if resource.get("resourceType") != "Encounter" or "period" not in resource:
                continue
            practitioner = _practitioner_of(resource, by_url)
            visits.append(
                Visit(
                    visit_id=resource["id"],
                    patient_id=patient["id"],
                    practitioner_id=practitioner.get("id") if practitioner else None,
                    practitioner_name=_display_name(practitioner) if practitioner else None,
                    service_code=_service_for(resource),
                    start=_parse(resource["period"]["start"]),
                    end=_parse(resource["period"].get("end", resource["period"]["start"])),
                    status="fulfilled",
                    reason=((resource.get("type") or [{}])[0].get("text")),
                )
            )
    return SyntheticSet(tuple(patients), tuple(practitioners.values()), tuple(visits))


def future_visits(data: SyntheticSet, *, seed: int, now: datetime, per_patient: int = 1, days: int = 60) -> list[Visit]:
    """Bookings in the next `days` days, on the hour between 9:00 and 17:00 UTC, fixed by `seed`."""
    rng = random.Random(seed)
    practitioners = [p for p in data.practitioners] or [None]
    day0 = now.replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=UTC)
    visits = []
    for patient in data.patients:
        if patient.get("deceasedDateTime") or patient.get("deceasedBoolean"):
            continue
        for n in range(per_patient):
            code, _, minutes, _ = rng.choice(SERVICES)
            start = day0 + timedelta(days=rng.randrange(1, days + 1), hours=rng.randrange(9, 17))
            practitioner = rng.choice(practitioners)
            visits.append(
                Visit(
                    visit_id=f"future-{patient['id'][:8]}-{n}",
                    patient_id=patient["id"],
                    practitioner_id=practitioner.get("id") if practitioner else None,
                    practitioner_name=_display_name(practitioner) if practitioner else None,
                    service_code=code,
                    start=start,
                    end=start + timedelta(minutes=minutes),
                    status="booked",
                    reason=None,
                )
            )
    return visits


def _practitioner_of(encounter: dict[str, Any], by_url: dict[str, Any]) -> dict[str, Any] | None:
    for participant in encounter.get("participant", []):
        reference = participant.get("individual", {}).get("reference")
        if reference and reference in by_url:
            return by_url[reference]
    return None


def _display_name(practitioner: dict[str, Any]) -> str:
    name = (practitioner.get("name") or [{}])[0]
    return " ".join([*(name.get("prefix") or []), *(name.get("given") or []), name.get("family", "")]).strip()


def _service_for(encounter: dict[str, Any]) -> str:
    text = ((encounter.get("type") or [{}])[0].get("text") or "").lower()
    if "check up" in text or "physical" in text:
        return "physical"
    if "follow" in text:
        return "followup"
    return "consult"


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def official_name(patient: dict[str, Any]) -> dict[str, Any]:
    names = patient.get("name") or [{}]
    return next((n for n in names if n.get("use") == "official"), names[0])
