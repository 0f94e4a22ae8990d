"""Seeding one organization from the project's synthetic data: two centers, the catalog with per-center
prices, Synthea practitioners as therapists, Synthea patients as guests, their Encounters as past
appointments and generated future bookings, a few memberships."""

from __future__ import annotations

import random
import re
import zlib
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sandbox.common import synthetic

from .model import (
    BOOKED,
    CLOSED,
    COMPLETED,
    US,
    Appointment,
    Category,
    Center,
    GuestMembership,
    Membership,
    Org,
    Service,
    Therapist,
    new_guid,
)

# Simulator-chosen state ids (Zenoti's own table is not published): alphabetical by name, from 1.
US_STATES = (
    ("AL", "Alabama"), ("AK", "Alaska"), ("AZ", "Arizona"), ("AR", "Arkansas"), ("CA", "California"),
    ("CO", "Colorado"), ("CT", "Connecticut"), ("DE", "Delaware"), ("DC", "District of Columbia"),
    ("FL", "Florida"), ("GA", "Georgia"), ("HI", "Hawaii"), ("ID", "Idaho"), ("IL", "Illinois"),
    ("IN", "Indiana"), ("IA", "Iowa"), ("KS", "Kansas"), ("KY", "Kentucky"), ("LA", "Louisiana"),
    ("ME", "Maine"), ("MD", "Maryland"), ("MA", "Massachusetts"), ("MI", "Michigan"), ("MN", "Minnesota"),
    ("MS", "Mississippi"), ("MO", "Missouri"), ("MT", "Montana"), ("NE", "Nebraska"), ("NV", "Nevada"),
    ("NH", "New Hampshire"), ("NJ", "New Jersey"), ("NM", "New Mexico"), ("NY", "New York"),
    ("NC", "North Carolina"), ("ND", "North Dakota"), ("OH", "Ohio"), ("OK", "Oklahoma"), ("OR", "Oregon"),
    ("PA", "Pennsylvania"), ("RI", "Rhode Island"), ("SC", "South Carolina"), ("SD", "South Dakota"),
    ("TN", "Tennessee"), ("TX", "Texas"), ("UT", "Utah"), ("VT", "Vermont"), ("VA", "Virginia"),
    ("WA", "Washington"), ("WV", "West Virginia"), ("WI", "Wisconsin"), ("WY", "Wyoming"),
)  # fmt: skip
STATE_IDS = {key.lower(): n for n, pair in enumerate(US_STATES, 1) for key in pair}

CENTERS = (
    # code, name, IANA zone, time_zone_id (simulator-chosen), phone, address, state, zip, tax rate, price factor
    ("BOS", "Concord Med Spa - Boston", "America/New_York", 11, "6175550100", "100 Boylston St", "Boston", "MA",
     "02116", 0.0625, 1.0),
    ("CHI", "Concord Med Spa - Chicago", "America/Chicago", 20, "3125550100", "200 N Michigan Ave", "Chicago",
     "IL", "60601", 0.1025, 1.1),
)  # fmt: skip
MEMBERSHIPS = (
    # code, name, price, recurring, membership_type, payment frequency
    ("GLOW", "Glow Monthly", 99.0, True, 1, "1 Months"),
    ("WELL", "Wellness Annual", 899.0, False, 0, ""),
    ("VIP", "Injectables VIP", 199.0, True, 1, "3 Months"),
)
GENDERS = {"female": 0, "male": 1}


def seed_catalog(org: Org, rng: random.Random) -> None:
    """Centers, categories and services (organization-level ids, prices per center), memberships."""
    for code, name, tz, tz_id, phone, line, city, state, zip_code, tax, factor in CENTERS:
        address = {
            "address_1": line,
            "address_2": "",
            "city": city,
            "state_id": STATE_IDS[state.lower()],
            "country_id": US,
            "zip_code": zip_code,
        }
        email = f"{code.lower()}@{org.account_name}.example"
        center = Center(new_guid(rng), code, name, tz, tz_id, phone, email, address, tax, factor)
        org.centers[center.id] = center
    names = sorted(set(synthetic.CATEGORIES.values()))
    by_name = {}
    for n, name in enumerate(names):
        category = Category(new_guid(rng), re.sub(r"\W", "", name.upper())[:6], name, n + 1)
        org.categories[category.id] = by_name[name] = category
    for code, name, minutes, price in synthetic.SERVICES:
        category = by_name[synthetic.CATEGORIES[code]]
        service = Service(new_guid(rng), code.upper(), name, minutes, category.id, price, category.name != "Medical")
        org.services[service.id] = service
    for code, name, price, recurring, kind, frequency in MEMBERSHIPS:
        membership = Membership(new_guid(rng), code, name, price, recurring, kind, frequency, f"{name} membership")
        org.memberships[membership.id] = membership


def seed_staff(org: Org, data: synthetic.SyntheticSet | None = None) -> None:
    """Synthea's practitioners as the centers' therapists, alternating between centers: staff is part
    of the organization's set-up, so an org without guests (seed off) can take bookings too."""
    data = data or synthetic.load()
    centers = list(org.centers.values())
    for n, practitioner in enumerate(sorted(data.practitioners, key=lambda p: p["id"])):
        name = (practitioner.get("name") or [{}])[0]
        first, last = (name.get("given") or [""])[0], name.get("family", "")
        therapist = Therapist(
            id=practitioner["id"],
            code=f"EMP{n + 1:03d}",
            center_id=centers[n % len(centers)].id,
            first_name=first,
            last_name=last,
            gender=GENDERS.get(practitioner.get("gender", ""), -1),
            email=f"{first}.{last}@{org.account_name}.example".lower(),
            job_id=new_guid(random.Random("job")),
        )
        org.therapists[therapist.id] = therapist


def seed_org(org: Org, rng: random.Random, now_epoch: float) -> None:
    seed_catalog(org, rng)
    data = synthetic.load()
    now = datetime.fromtimestamp(now_epoch, UTC)
    centers = list(org.centers.values())
    services = {s.code.lower(): s for s in org.services.values()}

    seed_staff(org, data)
    by_center = {c.id: [t for t in org.therapists.values() if t.center_id == c.id] for c in centers}

    home: dict[str, str] = {}
    emails: set[str] = set()
    for n, patient in enumerate(data.patients):
        guest = _guest_from_patient(org, patient, centers[n % len(centers)], rng, emails)
        org.guests[guest["id"]] = guest
        home[patient["id"]] = guest["id"]

    def add(visit: synthetic.Visit, status: int) -> Appointment:
        guest = org.guests[home[visit.patient_id]]
        center = org.centers[guest["center_id"]]
        therapist = visit.practitioner_id if visit.practitioner_id in org.therapists else None
        if status == BOOKED and (therapist is None or org.therapists[therapist].center_id != center.id):
            staff = by_center[center.id]
            therapist = staff[zlib.crc32(visit.visit_id.encode()) % len(staff)].id
        service = services[visit.service_code]
        start = visit.start.replace(second=0, microsecond=0)  # the Appointment Book works in whole minutes
        created = min(start - timedelta(days=7), now - timedelta(days=1))
        org.next_invoice_number += 1
        appt = Appointment(
            id=new_guid(rng),
            group_id=new_guid(rng),
            invoice_id=new_guid(rng),
            invoice_item_id=new_guid(rng),
            invoice_number=org.next_invoice_number,
            center_id=center.id,
            guest_id=guest["id"],
            service_id=service.id,
            therapist_id=therapist,
            start=start,
            end=start + timedelta(minutes=service.duration),
            status=status,
            created=created,
            updated=created,
            progress=COMPLETED if status == CLOSED else 0,
            requested_therapist=therapist is not None,
        )
        if status == CLOSED:
            appt.checkin_time = appt.actual_start = appt.start
            appt.completed = appt.end
        org.appointments[appt.id] = appt
        return appt

    for visit in data.past_visits:
        add(visit, CLOSED)
    for visit in synthetic.future_visits(data, seed=rng.randrange(1 << 30), now=now):
        add(visit, BOOKED)

    statuses = ("Active", "Active", "Active", "Expired", "Cancelled")
    plans = list(org.memberships.values())
    for n, guest_id in enumerate(list(org.guests)[::4]):
        guest = org.guests[guest_id]
        start = now.date() - timedelta(days=rng.randrange(30, 400))
        status = statuses[n % len(statuses)]
        end = start + timedelta(days=365) if status != "Expired" else now.date() - timedelta(days=rng.randrange(1, 30))
        gm = GuestMembership(
            new_guid(rng), guest_id, plans[n % len(plans)].id, guest["center_id"], start, end, status, new_guid(rng)
        )
        org.guest_memberships[gm.id] = gm


def _guest_from_patient(
    org: Org, patient: dict[str, Any], center: Center, rng: random.Random, emails: set[str]
) -> dict[str, Any]:
    name = synthetic.official_name(patient)
    given = name.get("given") or [""]
    first, last = given[0], name.get("family", "")
    email = f"{first}.{last}@example.com".lower()
    suffix = 1
    while email in emails:
        suffix += 1
        email = f"{first}.{last}{suffix}@example.com".lower()
    emails.add(email)
    phone = next((t["value"] for t in patient.get("telecom", []) if t.get("system") == "phone"), None)
    digits = re.sub(r"\D", "", phone or "")
    address = (patient.get("address") or [{}])[0]
    state = STATE_IDS.get(str(address.get("state", "")).lower())
    created = datetime(2019, 1, 1, tzinfo=UTC).timestamp() + rng.randrange(0, 365 * 86_400)
    org.next_guest_number += 1
    return {
        "id": new_guid(rng),
        "_id": org.next_guest_number,
        "code": "",
        "center_id": center.id,
        "personal_info": {
            "user_name": "",
            "first_name": first,
            "last_name": last,
            "middle_name": given[1] if len(given) > 1 else "",
            "email": email,
            "mobile_phone": {"country_code": US, "number": digits} if digits else None,
            "work_phone": None,
            "home_phone": None,
            "gender": GENDERS.get(patient.get("gender", ""), -1),
            "date_of_birth": date.fromisoformat(patient["birthDate"]) if patient.get("birthDate") else None,
            "is_minor": False,
            "nationality_id": -1,
            "anniversary_date": None,
            "lock_guest_custom_data": False,
            "pan": "",
        },
        "address_info": {
            "address_1": " ".join(address.get("line") or []),
            "address_2": "",
            "city": address.get("city", ""),
            "country_id": US if address.get("country", "US") == "US" else -1,
            "state_id": state or -1,
            "state_other": "",
            "zip_code": address.get("postalCode", ""),
        },
        "preferences": {
            "receive_transactional_email": True,
            "receive_transactional_sms": True,
            "receive_marketing_email": False,
            "receive_marketing_sms": False,
            "recieve_lp_stmt": True,
            "preferred_therapist": None,
        },
        "tags": None,
        "referral": None,
        "primary_employee": None,
        "created": created,
        "updated": created,
    }
