"""A tenant's start state from the project's synthetic set: Synthea Patients (ids and identifiers kept) and
Practitioners, a HealthcareService per catalog entry, a Schedule per practitioner with hourly weekday Slots
for the next ``slot_days`` days, and Appointments: past Encounters (fulfilled) and future bookings (booked)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

from sandbox.common import synthetic

SERVICE_SYSTEM = "urn:concord:sandbox:service"
SERVICE_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/service-type"


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _display(practitioner: dict[str, Any]) -> str:
    name = (practitioner.get("name") or [{}])[0]
    return " ".join([*(name.get("prefix") or []), *(name.get("given") or []), name.get("family", "")]).strip()


def _service_type(code: str) -> dict[str, Any]:
    name = next(s[1] for s in synthetic.SERVICES if s[0] == code)
    return {"coding": [{"system": SERVICE_SYSTEM, "code": code, "display": name}], "text": name}


def resources(now: float, *, seed: int, slot_days: int) -> list[dict[str, Any]]:
    """Every seeded resource, in the order they are stored."""
    data = synthetic.load()
    out: list[dict[str, Any]] = [copy.deepcopy(p) for p in data.patients]
    out += [copy.deepcopy(p) for p in data.practitioners]
    for code, name, minutes, price in synthetic.SERVICES:
        out.append(
            {
                "resourceType": "HealthcareService",
                "id": f"svc-{code}",
                "identifier": [{"system": SERVICE_SYSTEM, "value": code}],
                "active": True,
                "category": [{"text": synthetic.CATEGORIES[code]}],
                "type": [_service_type(code)],
                "name": name,
                "comment": f"{minutes} minutes, USD {price:.2f}",
            }
        )
    moment = datetime.fromtimestamp(now, UTC)
    day0 = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    future = synthetic.future_visits(data, seed=seed, now=moment, days=slot_days)
    booked = {(v.practitioner_id, v.start.replace(minute=0, second=0)): v for v in future}
    all_services = [_service_type(code) for code, *_ in synthetic.SERVICES]
    for practitioner in data.practitioners:
        pid = practitioner["id"]
        schedule_id = f"sched-{pid}"
        out.append(
            {
                "resourceType": "Schedule",
                "id": schedule_id,
                "active": True,
                "serviceType": all_services,
                "actor": [{"reference": f"Practitioner/{pid}", "display": _display(practitioner)}],
                "planningHorizon": {"start": _iso(day0), "end": _iso(day0 + timedelta(days=slot_days + 1))},
            }
        )
        for day in range(1, slot_days + 1):
            date = day0 + timedelta(days=day)
            if date.weekday() >= 5:
                continue
            for hour in range(9, 17):
                start = date.replace(hour=hour)
                visit = booked.get((pid, start))
                out.append(
                    {
                        "resourceType": "Slot",
                        "id": f"slot-{pid}-{start:%Y%m%d%H}",
                        "schedule": {"reference": f"Schedule/{schedule_id}"},
                        "status": "busy" if visit else "free",
                        "start": _iso(start),
                        "end": _iso(start + timedelta(hours=1)),
                    }
                )
    slot_ids = {r["id"] for r in out if r["resourceType"] == "Slot"}
    for visit in (*data.past_visits, *future):
        out.append(_appointment(visit, slot_ids))
    return out


def _appointment(visit: synthetic.Visit, slot_ids: set[str]) -> dict[str, Any]:
    participants: list[dict[str, Any]] = [
        {"actor": {"reference": f"Patient/{visit.patient_id}"}, "required": "required", "status": "accepted"}
    ]
    if visit.practitioner_id:
        participants.append(
            {
                "actor": {"reference": f"Practitioner/{visit.practitioner_id}", "display": visit.practitioner_name},
                "required": "required",
                "status": "accepted",
            }
        )
    appointment: dict[str, Any] = {
        "resourceType": "Appointment",
        "id": visit.visit_id,
        "status": visit.status,
        "serviceType": [_service_type(visit.service_code)],
        "start": _iso(visit.start),
        "end": _iso(visit.end),
        "participant": participants,
    }
    if visit.reason:
        appointment["reasonCode"] = [{"text": visit.reason}]
    if visit.practitioner_id:
        slot_id = f"slot-{visit.practitioner_id}-{visit.start:%Y%m%d%H}"
        if visit.status == "booked" and slot_id in slot_ids:
            appointment["slot"] = [{"reference": f"Slot/{slot_id}"}]
    return appointment
