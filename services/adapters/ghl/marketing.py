"""The config's marketing switches (registry MarketingOptions) applied to a pushed contact:
campaign tags GHL campaigns key on, added only while the contact is not DND for that channel and
removed when the switch goes off (or DND comes on). Looks before it writes: a second push of an
unchanged contact makes no call."""

from __future__ import annotations

from typing import Any

from libs.protos.concord.registry.v1 import registry_pb2
from services.adapters.ghl import schemas
from services.adapters.ghl.client import GhlClient

EMAIL_TAG = "concord:email-campaigns"
SMS_TAG = "concord:sms-campaigns"
# GHL's dndSettings statuses that stop messages on a channel (docs/vendors/gohighlevel/apps/contacts.json).
DND_STATUSES = frozenset({"active", "permanent"})


def dnd(contact: dict[str, Any], channel: str) -> bool:
    """Whether the contact is do-not-disturb for channel ("Email" or "SMS"): all channels, or that one."""
    if contact.get("dnd") is True:
        return True
    settings = contact.get("dndSettings")
    status = (settings or {}).get(channel, {}) if isinstance(settings, dict) else {}
    return isinstance(status, dict) and status.get("status") in DND_STATUSES


def campaign_tags(marketing: registry_pb2.MarketingOptions, contact: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(to add, to remove): each campaign tag is wanted while its switch is on and the contact
    is not DND for its channel; only a change from the contact's current tags is returned."""
    current = {t for t in contact.get("tags") or [] if isinstance(t, str)}
    wanted = {
        EMAIL_TAG: marketing.email_campaigns and not dnd(contact, "Email"),
        SMS_TAG: marketing.sms_campaigns and not dnd(contact, "SMS"),
    }
    add = [tag for tag, on in wanted.items() if on and tag not in current]
    remove = [tag for tag, on in wanted.items() if not on and tag in current]
    return add, remove


async def apply_to_contact(
    client: GhlClient, marketing: registry_pb2.MarketingOptions, contact: dict[str, Any]
) -> dict[str, Any]:
    """Brings the contact's campaign tags in line with the switches; returns the contact as it now is."""
    add, remove = campaign_tags(marketing, contact)
    if not (add or remove):
        return contact
    tags = contact.get("tags") or []
    path = f"/contacts/{contact['id']}/tags"
    if add:
        tags = (await client.request("POST", path, json={"tags": add})).get("tags", tags)
    if remove:
        tags = (await client.request("DELETE", path, json={"tags": remove})).get("tags", tags)
    return {**contact, "tags": tags}


# --- appointments: workflow enrolment and the lead score ------------------------------------------

BOOKED = frozenset({"new", "confirmed"})
FULFILLED = "showed"
NO_SHOW = "noshow"
DAY = 86_400.0


def lead_score(events: list[dict[str, Any]], now: float) -> int:
    """A 0-100 score from a contact's appointments (GHL events: startTime, appointmentStatus), all
    counted over the last 365 days: 10 per visit kept (`showed`, at most 50); recency of the last
    kept visit, 30 within 30 days, 20 within 90, 10 within 180, 5 within 365; 20 for a booking
    still ahead (`new`/`confirmed`); minus 10 per no-show. Cancelled and other statuses count nothing.
    Pure: the same events and clock give the same score."""
    kept: list[float] = []
    no_shows = 0
    upcoming = False
    for event in events:
        start_ms = schemas.epoch_ms(event.get("startTime"))
        if start_ms is None:
            continue
        start = start_ms / 1000
        status = event.get("appointmentStatus")
        if status in BOOKED and start > now:
            upcoming = True
        elif now - 365 * DAY <= start <= now:
            if status == FULFILLED:
                kept.append(start)
            elif status == NO_SHOW:
                no_shows += 1
    score = min(10 * len(kept), 50) - 10 * no_shows + (20 if upcoming else 0)
    if kept:
        age = (now - max(kept)) / DAY
        score += next((points for days, points in ((30, 30), (90, 20), (180, 10), (365, 5)) if age <= days), 0)
    return max(0, min(100, score))


def enrolment_tag(kind: str, event_id: str) -> str:
    """The contact's record that this appointment enrolled it (GHL lists no enrolments): GHL
    lower-cases tags, so the tag is compared lower-cased."""
    return f"concord:{kind}:{event_id}".lower()


def _workflows(marketing: registry_pb2.MarketingOptions, event: dict[str, Any]) -> list[tuple[str, str]]:
    """(kind, workflow id) the appointment's status calls for under the switches."""
    status = event.get("appointmentStatus")
    wanted = []
    if marketing.appointment_reminders and status in BOOKED:
        wanted.append(("reminder", marketing.reminder_workflow_id))
    if marketing.follow_up_sequences and status == FULFILLED:
        wanted.append(("follow-up", marketing.follow_up_workflow_id))
    return wanted


class ScoreField:
    """The location's custom field the lead score goes in, looked up once per batch by id or key."""

    def __init__(self, field_id: str | None) -> None:
        self.id = field_id

    @classmethod
    async def load(cls, client: GhlClient, location_id: str, wanted: str) -> ScoreField:
        listed = await client.request("GET", f"/locations/{location_id}/customFields", params={"model": "contact"})
        keys = {wanted, f"contact.{wanted}"}
        for custom in listed.get("customFields") or []:
            if isinstance(custom, dict) and (custom.get("id") == wanted or custom.get("fieldKey") in keys):
                return cls(str(custom["id"]))
        return cls(None)


class MarketingRefused(Exception):
    """A marketing step the config makes impossible (e.g. no such score field): the record fails."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


async def apply_to_appointment(
    client: GhlClient,
    marketing: registry_pb2.MarketingOptions,
    event: dict[str, Any],
    score_field: ScoreField | None,
    now: float,
) -> None:
    """Enrols the appointment's contact in the workflow its status calls for, once per appointment
    (the enrolment tag is looked for first), and keeps the lead score field current (written only
    when it differs)."""
    workflows = _workflows(marketing, event)
    contact_id = event.get("contactId")
    if not (workflows or marketing.lead_scoring) or not isinstance(contact_id, str):
        return
    contact = (await client.request("GET", f"/contacts/{contact_id}")).get("contact") or {}
    tags = {t.lower() for t in contact.get("tags") or [] if isinstance(t, str)}
    for kind, workflow_id in workflows:
        tag = enrolment_tag(kind, str(event["id"]))
        if tag in tags:
            continue
        await client.request(
            "POST", f"/contacts/{contact_id}/workflow/{workflow_id}", json={"eventStartTime": event.get("startTime")}
        )
        await client.request("POST", f"/contacts/{contact_id}/tags", json={"tags": [tag]})
    if not marketing.lead_scoring:
        return
    if score_field is None or score_field.id is None:
        raise MarketingRefused(
            "LEAD_SCORE_FIELD_NOT_FOUND", "the lead score custom field is not defined at GoHighLevel"
        )
    events = (await client.request("GET", f"/contacts/{contact_id}/appointments")).get("events") or []
    score = str(lead_score([e for e in events if isinstance(e, dict)], now))
    current = {c.get("id"): c.get("value") for c in contact.get("customFields") or [] if isinstance(c, dict)}
    if str(current.get(score_field.id, "")) != score:
        await client.request(
            "PUT", f"/contacts/{contact_id}", json={"customFields": [{"id": score_field.id, "field_value": score}]}
        )
