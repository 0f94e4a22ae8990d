"""Registry rules: pure, no gRPC, no SQL."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import datetime
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from libs import minimum_necessary
from libs.errors import InvalidArgument
from libs.merge_fields import FIELD_KEYS

PRACTICE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
DIRECTIONS = ("SYNC_DIRECTION_PUSH", "SYNC_DIRECTION_PULL", "SYNC_DIRECTION_BIDIRECTIONAL")
FREQUENCIES = ("SYNC_FREQUENCY_REAL_TIME", "SYNC_FREQUENCY_HOURLY", "SYNC_FREQUENCY_DAILY", "SYNC_FREQUENCY_MANUAL")
POLICIES = (
    "CONFLICT_POLICY_HUB_WINS",
    "CONFLICT_POLICY_VENDOR_WINS",
    "CONFLICT_POLICY_NEWEST_WINS",
    "CONFLICT_POLICY_MANUAL_REVIEW",
)
MUTABLE_FIELDS = (
    "sync_direction",
    "sync_frequency",
    "conflict_policy",
    "active",
    "enabled_entities",
    "options",
    "field_conflict_policies",
    "field_allow_list",
)
# SalesforceAppointmentObject names without it are the keys of a definition's extra.appointment_objects.
APPOINTMENT_OBJECT_PREFIX = "SALESFORCE_APPOINTMENT_OBJECT_"
# A switch that is on needs the vendor id it acts with.
MARKETING_NEEDS = {
    "appointment_reminders": "reminder_workflow_id",
    "follow_up_sequences": "follow_up_workflow_id",
    "lead_scoring": "lead_score_field",
}


@dataclass(frozen=True)
class BusinessAssociateAgreement:
    """A practice's BAA with one vendor: from ``effective_date`` (YYYY-MM-DD) PHI may go to it."""

    practice_id: str
    integration_type: str
    effective_date: str
    recorded_at: datetime
    recorded_by: str = ""


@dataclass(frozen=True)
class Practice:
    practice_id: str
    name: str
    created_at: datetime
    agreements: tuple[BusinessAssociateAgreement, ...] = ()


@dataclass(frozen=True)
class IntegrationConfig:
    config_id: str
    practice_id: str
    integration_type: str
    sync_direction: str
    sync_frequency: str
    conflict_policy: str
    active: bool
    enabled_entities: list[str] = field(default_factory=list)
    options: dict = field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None
    # "<entity>.<field>" -> ConflictPolicy name (libs/merge_fields.py).
    field_conflict_policies: dict[str, str] = field(default_factory=dict)
    # Minimum necessary: "<entity>.<field>" names that may leave for the vendor (libs/minimum_necessary.py).
    field_allow_list: list[str] = field(default_factory=list)
    # Not stored with the config: the practice's BAA with its vendor, filled in when read.
    baa_effective_date: str = ""


def validate_practice(practice_id: str, name: str) -> None:
    if not PRACTICE_ID.match(practice_id):
        raise InvalidArgument(
            "practice_id must be 1-64 letters, digits, '-' or '_'", field="practice_id", reason="INVALID_PRACTICE_ID"
        )
    if not name.strip() or len(name) > 200:
        raise InvalidArgument("name must be 1-200 characters", field="name", reason="INVALID_NAME")


def with_defaults(config: IntegrationConfig, capabilities: list[str]) -> IntegrationConfig:
    """Unset settings take the defaults; every entity the vendor can sync is enabled unless named."""
    return replace(
        config,
        sync_direction=config.sync_direction or "SYNC_DIRECTION_BIDIRECTIONAL",
        sync_frequency=config.sync_frequency or "SYNC_FREQUENCY_MANUAL",
        conflict_policy=config.conflict_policy or "CONFLICT_POLICY_HUB_WINS",
        enabled_entities=config.enabled_entities or list(capabilities),
    )


def validate_config(config: IntegrationConfig, capabilities: list[str]) -> None:
    _one_of(config.sync_direction, DIRECTIONS, "sync_direction")
    _one_of(config.sync_frequency, FREQUENCIES, "sync_frequency")
    _one_of(config.conflict_policy, POLICIES, "conflict_policy")
    for key, policy in config.field_conflict_policies.items():
        if key not in FIELD_KEYS:
            raise InvalidArgument(
                "field_conflict_policies keys must be <entity>.<field> of the hub's merge fields, e.g. patient.email",
                field="field_conflict_policies",
                reason="UNKNOWN_MERGE_FIELD",
            )
        _one_of(policy, POLICIES, "field_conflict_policies")
    minimum_necessary.validate_allow_list(config.field_allow_list)
    for entity in config.enabled_entities:
        if entity not in capabilities:
            raise InvalidArgument(
                f"{entity} is not a capability of {config.integration_type}",
                field="enabled_entities",
                reason="UNSUPPORTED_ENTITY",
            )


def _one_of(value: str, allowed: tuple[str, ...], name: str) -> None:
    if value not in allowed:
        raise InvalidArgument(f"{name} must be one of {', '.join(allowed)}", field=name, reason="INVALID_ENUM")


def point_at_sandbox(endpoints: dict[str, str], base_url: str) -> dict[str, str]:
    """Moves every endpoint to the sandbox host, keeping the vendor's paths."""
    base = urlsplit(base_url)
    moved = {}
    for key, url in endpoints.items():
        if not url:
            moved[key] = url
            continue
        parts = urlsplit(url)
        path = base.path.rstrip("/") + parts.path
        moved[key] = urlunsplit((base.scheme, base.netloc, path, parts.query, ""))
    return moved


def _allowed(definition: dict, group: str, extra_key: str = "") -> None:
    """The option group is the vendor's if its definition's extra has ``extra_key`` (default: the group)."""
    if not (definition.get("extra") or {}).get(extra_key or group):
        raise InvalidArgument(
            f"{definition.get('integration_type', 'this vendor')} has no {group} options",
            field=f"options.{group}",
            reason="UNSUPPORTED_OPTION",
        )


def validate_options(options: dict, definition: dict) -> None:
    """Vendor options the vendor's definition allows, each switch with what it needs."""
    _validate_salesforce(options.get("salesforce"), definition)
    booking = options.get("booking")
    if booking:
        _allowed(definition, "booking")
        zone = str(booking.get("center_time_zone") or "")
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise InvalidArgument(
                "center_time_zone must be an IANA time zone such as America/New_York",
                field="options.booking.center_time_zone",
                reason="INVALID_TIME_ZONE",
            ) from None
    marketing = options.get("marketing")
    if not marketing:
        return
    _allowed(definition, "marketing")
    for switch, needed in MARKETING_NEEDS.items():
        if marketing.get(switch) and not str(marketing.get(needed) or "").strip():
            raise InvalidArgument(
                f"{switch} needs {needed}", field=f"options.marketing.{needed}", reason="REQUIRED_FIELD_MISSING"
            )


def _validate_salesforce(salesforce: dict | None, definition: dict) -> None:
    """The appointment object must be one the definition's extra.appointment_objects names."""
    if not salesforce:
        return
    _allowed(definition, "salesforce", "appointment_objects")
    objects = definition["extra"]["appointment_objects"]
    choice = salesforce.get("appointment_object")
    if choice is None:
        return
    if not isinstance(choice, str) or choice.removeprefix(APPOINTMENT_OBJECT_PREFIX) not in objects:
        raise InvalidArgument(
            f"appointment_object must be one of {', '.join(APPOINTMENT_OBJECT_PREFIX + o for o in objects)}",
            field="options.salesforce.appointment_object",
            reason="INVALID_ENUM",
        )
