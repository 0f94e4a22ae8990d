"""What a location holds from the start (users, calendars, workflows) and the contacts and appointments
seeded from the project's synthetic data (sandbox/common/synthetic.py)."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime
from typing import Any

from sandbox.common import synthetic

from . import model, scheduling
from .state import Location, Sandbox

# Simulator-chosen automations every seeded location has (GET /workflows/).
WORKFLOWS = ("New patient welcome", "Appointment reminders", "Post-visit follow-up", "Annual physical recall")


def _contact_values(patient: dict[str, Any]) -> dict[str, Any]:
    name = synthetic.official_name(patient)
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


def furnish(sb: Sandbox, location: Location) -> None:
    """Users (one per synthetic practitioner), one calendar group with a round-robin calendar per
    service of synthetic.SERVICES, and the workflows; called when the location is created."""
    data = synthetic.load(sb.settings.synthea_dir)
    for practitioner in data.practitioners:
        name = synthetic.official_name(practitioner)
        user = {
            "id": sb.new_id(),
            "firstName": (name.get("given") or [""])[0],
            "lastName": name.get("family", ""),
        }
        user["name"] = f"{user['firstName']} {user['lastName']}".strip()
        location.users[user["id"]] = user
        location.user_by_practitioner[practitioner["id"]] = user["id"]
    if not location.users:
        location.users[location.user_id] = {"id": location.user_id, "name": "Sandbox Staff"}
    users = list(location.users)
    location.group_id = sb.new_id()
    for i, (code, name, minutes, _) in enumerate(synthetic.SERVICES):
        members = users[i :: len(synthetic.SERVICES)] or users[:1]
        calendar = scheduling.new_calendar(sb, location, code, name, minutes, members)
        location.calendars[calendar["id"]] = calendar
        location.calendar_by_service[code] = calendar["id"]
    created = model.iso_ms(int(sb.clock() * 1000))
    for version, name in enumerate(WORKFLOWS, start=1):
        workflow_id = str(uuid.UUID(int=sb.rng.getrandbits(128), version=4))
        location.workflows[workflow_id] = {
            "id": workflow_id,
            "name": name,
            "status": "published",
            "version": version,
            "createdAt": created,
            "updatedAt": created,
            "locationId": location.id,
        }


def seed(
    sb: Sandbox, location: Location, count: int | None = None, *, notify: bool = False, appointments: bool = True
) -> tuple[list[str], int]:
    """Creates `count` contacts (default: one per patient), cycling through the patients if needed, and
    (for each patient's first contact) an appointment per past visit and per generated future visit.
    Returns the contact ids and the number of appointments."""
    data = synthetic.load(sb.settings.synthea_dir)
    if not data.patients:
        raise FileNotFoundError(f"no Synthea Patient resources under {sb.settings.synthea_dir}")
    pool = list(data.patients)
    rng = random.Random(sb.settings.seed)  # fixed: same order and substitute phones on every run
    rng.shuffle(pool)
    ids, contact_of = [], {}
    for i in range(len(pool) if count is None else count):
        patient = pool[i % len(pool)]
        values = _contact_values(patient)
        # Repeated patients (and re-seeds) get a fresh 555 number: phones identify contacts for upsert.
        while values["phone"] is None or values["phone"] in location.by_phone:
            values["phone"] = f"+1555{rng.randrange(10**7):07d}"
        contact = model.create_contact(sb, location, values, notify=notify)
        ids.append(contact["id"])
        contact_of.setdefault(patient["id"], contact["id"])
    if not appointments:
        return ids, 0
    now = datetime.fromtimestamp(sb.clock(), UTC)
    visits = [*data.past_visits, *synthetic.future_visits(data, seed=sb.settings.seed, now=now)]
    made, stamp = 0, int(sb.clock() * 1000)  # not stamp_ms(): a seed must not push later contacts' dates ahead
    for visit in visits:
        if visit.patient_id not in contact_of:
            continue
        calendar = location.calendars[location.calendar_by_service[visit.service_code]]
        user = location.user_by_practitioner.get(visit.practitioner_id or "") or scheduling.team(calendar)[0]
        appt = scheduling.new_appointment(
            sb,
            location,
            calendar,
            contact_of[visit.patient_id],
            int(visit.start.timestamp() * 1000),
            int(visit.end.timestamp() * 1000),
            user,
            stamp,
            appointmentStatus="showed" if visit.status == "fulfilled" else "confirmed",
            source="booking_widget",
            createdBy={"source": "booking_widget"},
        )
        made += 1
        if notify and visit.status == "booked":  # history is imported silently; bookings announce themselves
            scheduling.notify(sb, location, "AppointmentCreate", appt)
    return ids, made
