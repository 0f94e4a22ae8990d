"""The records one organization holds, and Zenoti's date and id formats."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from .settings import OrgConfig

MIN_DATE = "0001-01-01T00:00:00"  # how the API renders an unset date
US = 225  # Zenoti's country id of the United States
DIAL_CODES = {US: "1", 95: "91"}

# Zenoti appointment status values (AppointmentStatus enum as seen in API payloads).
NO_SHOW, CANCELLED, BOOKED, CLOSED, CHECKED_IN, CONFIRMED = -2, -1, 0, 1, 2, 4
STATUS_NAMES = {
    "noshow": NO_SHOW,
    "no_show": NO_SHOW,
    "cancelled": CANCELLED,
    "canceled": CANCELLED,
    "booked": BOOKED,
    "closed": CLOSED,
    "checkin": CHECKED_IN,
    "checked_in": CHECKED_IN,
    "confirmed": CONFIRMED,
}
# Appointment progress: 0 open (not started), 1 started, 2 completed.
OPEN, STARTED, COMPLETED = 0, 1, 2


def new_guid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def fmt(value: datetime) -> str:
    """Zenoti's wall-clock timestamp: no offset, no fraction."""
    return value.strftime("%Y-%m-%dT%H:%M:%S")


def fmt_date(value: date | None, unset: str | None = MIN_DATE) -> str | None:
    return f"{value.isoformat()}T00:00:00" if value else unset


def net_stamp(epoch: float) -> str:
    """.NET round-trip UTC format with 7 fractional digits, as in access_token_expiry."""
    whole = int(epoch // 1)
    return f"{datetime.fromtimestamp(whole, UTC):%Y-%m-%dT%H:%M:%S}.{int((epoch - whole) * 10**7):07d}Z"


def utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


@dataclass
class Center:
    id: str
    code: str
    name: str
    tz: str
    time_zone_id: int
    phone: str
    email: str
    address: dict[str, Any]
    tax_rate: float
    price_factor: float
    currency_id: int = 148
    open_hour: int = 9
    close_hour: int = 17

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.tz)

    def local(self, moment: datetime) -> datetime:
        return moment.astimezone(self.zone).replace(tzinfo=None)

    def to_utc(self, wall: datetime) -> datetime:
        return wall.replace(tzinfo=self.zone).astimezone(UTC)


@dataclass
class Category:
    id: str
    code: str
    name: str
    display_order: int


@dataclass
class Service:
    id: str
    code: str
    name: str
    duration: int
    category_id: str
    base_price: float
    taxable: bool

    def price(self, center: Center) -> tuple[float, float, float]:
        """(sale price, tax, final price) at a center."""
        sale = round(self.base_price * center.price_factor, 2)
        tax = round(sale * center.tax_rate, 2) if self.taxable else 0.0
        return sale, tax, round(sale + tax, 2)


@dataclass
class Therapist:
    id: str
    code: str
    center_id: str
    first_name: str
    last_name: str
    gender: int
    email: str
    job_id: str
    job_name: str = "Provider"


@dataclass
class Membership:
    id: str
    code: str
    name: str
    price: float
    is_recurring: bool
    membership_type: int
    payment_frequency: str
    description: str


@dataclass
class GuestMembership:
    id: str
    guest_id: str
    membership_id: str
    center_id: str
    start: date
    end: date
    status: str
    invoice_id: str


@dataclass
class Appointment:
    id: str
    group_id: str
    invoice_id: str
    invoice_item_id: str
    invoice_number: int
    center_id: str
    guest_id: str
    service_id: str
    therapist_id: str | None
    start: datetime  # UTC
    end: datetime
    status: int
    created: datetime
    updated: datetime
    progress: int = OPEN
    notes: str | None = None
    source: int = 0
    checkin_time: datetime | None = None
    actual_start: datetime | None = None
    completed: datetime | None = None
    requested_therapist: bool = False

    @property
    def blocking(self) -> bool:
        return self.status not in (CANCELLED, NO_SHOW)


@dataclass
class Booking:
    """A service booking between POST /v1/bookings and its confirmation."""

    id: str
    center_id: str
    day: date
    guest_id: str
    items: list[tuple[str, str | None]]  # (service id, requested therapist id or None)
    double_booking: bool
    slot: datetime | None = None  # reserved wall-clock time at the center
    assigned: list[str] = field(default_factory=list)
    reserved_until: float = 0.0
    reservation_id: str | None = None
    confirmed: bool = False
    # A reschedule (POST /v1/bookings with the invoice_id and invoice_item_ids of a confirmed
    # booking): confirming moves these appointments instead of creating new ones.
    reschedules: list[str] = field(default_factory=list)


@dataclass
class Org:
    config: OrgConfig
    id: str
    api_key: str
    centers: dict[str, Center] = field(default_factory=dict)
    categories: dict[str, Category] = field(default_factory=dict)
    services: dict[str, Service] = field(default_factory=dict)
    therapists: dict[str, Therapist] = field(default_factory=dict)
    memberships: dict[str, Membership] = field(default_factory=dict)
    guest_memberships: dict[str, GuestMembership] = field(default_factory=dict)
    guests: dict[str, dict[str, Any]] = field(default_factory=dict)
    appointments: dict[str, Appointment] = field(default_factory=dict)
    bookings: dict[str, Booking] = field(default_factory=dict)
    next_guest_number: int = 683_700
    next_invoice_number: int = 4_900

    @property
    def account_name(self) -> str:
        return self.config.account_name

    def group(self, group_id: str) -> list[Appointment]:
        return sorted((a for a in self.appointments.values() if a.group_id == group_id), key=lambda a: a.start)

    def invoice(self, invoice_id: str) -> list[Appointment]:
        return sorted((a for a in self.appointments.values() if a.invoice_id == invoice_id), key=lambda a: a.start)

    def booked(self, therapist_id: str, start: datetime, end: datetime, ignore: Iterable[str] = ()) -> bool:
        """Whether the therapist has a (not cancelled, not no-show) appointment overlapping [start, end),
        UTC, other than those in ``ignore`` (the appointments a reschedule moves)."""
        skip = set(ignore)
        return any(
            a.therapist_id == therapist_id and a.blocking and a.start < end and start < a.end and a.id not in skip
            for a in self.appointments.values()
        )


def day_bounds(center: Center, day: date) -> tuple[datetime, datetime]:
    """The center's working hours on a day, as wall-clock datetimes."""
    start = datetime(day.year, day.month, day.day, center.open_hour)
    return start, start + timedelta(hours=center.close_hour - center.open_hour)
