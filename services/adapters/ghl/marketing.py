"""The config's marketing switches (registry MarketingOptions) applied to a pushed record.

Contacts: campaign tags GHL campaigns key on, added only while the hub's patient consents to
marketing on that channel and GHL's DND does not forbid it, removed when the switch goes off,
the consent is revoked or DND comes on. Appointments: enrolment in the reminder and follow-up
workflows, the reminder left when the booking is cancelled, missed or invalid and redone when it
moves; the lead score. Looks before it writes: a second push of an unchanged record makes no
marketing call."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from libs.protos.concord.registry.v1 import registry_pb2
from services.adapters.ghl import schemas
from services.adapters.ghl.client import GhlClient, GhlError

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


def consents(written: dict[str, Any], channel: str) -> bool:
    """Whether the hub's patient consents to marketing on channel ("Email" or "SMS"), read from
    the contact as the push wrote it: the GHL mapper writes the hub's consent as that channel's
    DND lifted (`dndSettings.<channel>.status` inactive) and nothing at all when the hub has none
    (services/mapping/mappers/ghl.py, dnd_from_consent)."""
    settings = written.get("dndSettings")
    setting = settings.get(channel) if isinstance(settings, dict) else None
    return isinstance(setting, dict) and setting.get("status") == "inactive"


def campaign_tags(
    marketing: registry_pb2.MarketingOptions, contact: dict[str, Any], written: dict[str, Any]
) -> tuple[list[str], list[str]]:
    """(to add, to remove): each campaign tag is wanted while its switch is on, the hub consents
    for its channel (``written``: the push's write body) and the contact GHL returned is not DND
    for it; only a change from the contact's current tags is returned."""
    current = {t for t in contact.get("tags") or [] if isinstance(t, str)}
    wanted = {
        EMAIL_TAG: marketing.email_campaigns and consents(written, "Email") and not dnd(contact, "Email"),
        SMS_TAG: marketing.sms_campaigns and consents(written, "SMS") and not dnd(contact, "SMS"),
    }
    add = [tag for tag, on in wanted.items() if on and tag not in current]
    remove = [tag for tag, on in wanted.items() if not on and tag in current]
    return add, remove


async def apply_to_contact(
    client: GhlClient, marketing: registry_pb2.MarketingOptions, contact: dict[str, Any], written: dict[str, Any]
) -> dict[str, Any]:
    """Brings the contact's campaign tags in line with the switches and the hub's consent (as
    ``written`` by the push); returns the contact as it now is."""
    add, remove = campaign_tags(marketing, contact, written)
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
# Statuses after which a booking's reminders must stop: the contact leaves the reminder workflow.
ENDED = frozenset({"cancelled", NO_SHOW, "invalid"})
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
    """The contact's record that this appointment enrolled it in the follow-up sequence (GHL lists
    no enrolments): GHL lower-cases tags, so the tag is compared lower-cased."""
    return f"concord:{kind}:{event_id}".lower()


@dataclass(frozen=True)
class Reminder:
    """One reminder enrolment as the contact's marker tag records it (GHL lists no enrolments):
    the booking, the workflow it was put in and the start it was enrolled for (epoch s), so a
    cancelled booking leaves the very workflow it entered and a moved one is enrolled again.
    Lower-cased, as GHL stores tags."""

    event_id: str
    workflow_id: str
    start: int

    @property
    def tag(self) -> str:
        return f"concord:reminder:{self.event_id}:{self.workflow_id}:{self.start}".lower()

    @classmethod
    def parse(cls, tag: str) -> Reminder | None:
        parts = tag.lower().split(":")
        if len(parts) == 5 and parts[:2] == ["concord", "reminder"] and parts[4].isdigit():
            return cls(parts[2], parts[3], int(parts[4]))
        return None


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


async def _enrol(client: GhlClient, contact_id: str, workflow_id: str, start: Any) -> None:
    await client.request("POST", f"/contacts/{contact_id}/workflow/{workflow_id}", json={"eventStartTime": start})


async def _leave(client: GhlClient, contact_id: str, workflow_id: str) -> None:
    """DELETE /contacts/{contactId}/workflow/{workflowId} (its body is CreateWorkflowDto, required
    by the spec, nothing in it needed). GHL answers success for a contact not enrolled, so this is
    safe to repeat; a workflow GHL no longer has holds no one, so its "not found" is done too."""
    try:
        await client.request("DELETE", f"/contacts/{contact_id}/workflow/{workflow_id}", json={})
    except GhlError as error:
        text = error.message.casefold()
        if not (error.status == 400 and "workflow" in text and "not found" in text):
            raise


async def _tag(client: GhlClient, contact_id: str, method: str, tags: list[str]) -> None:
    await client.request(method, f"/contacts/{contact_id}/tags", json={"tags": tags})


def _configured(marketing: registry_pb2.MarketingOptions, workflow_id: str) -> str:
    """The workflow id as the config spells it, when a (lower-cased) marker names the configured one."""
    configured = marketing.reminder_workflow_id
    return configured if configured.lower() == workflow_id else workflow_id


async def _follow_reminder(
    client: GhlClient,
    marketing: registry_pb2.MarketingOptions,
    event: dict[str, Any],
    contact_id: str,
    tags: set[str],
    now: float,
) -> None:
    """Keeps the contact's reminder enrolment for this booking as its status and start call for:
    enrolled once while booked (switch on); enrolled again when the booking moves or the
    configured workflow changes; removed from the workflow it entered once the booking is
    cancelled, a no-show or invalid. GHL holds one enrolment per contact and workflow, so leaving
    it for this booking enrols the contact again for its earliest booking still ahead that is
    enrolled there. Each step is safe to repeat, in an order that a retry after any of them
    finishes: leave, enrol, tag the new marker, untag the old ones."""
    event_id = str(event["id"]).lower()
    start_ms = schemas.epoch_ms(event.get("startTime"))
    held = [r for r in (Reminder.parse(t) for t in tags) if r is not None]
    mine = [r for r in held if r.event_id == event_id]
    wanted = None
    if marketing.appointment_reminders and event.get("appointmentStatus") in BOOKED and start_ms is not None:
        wanted = Reminder(event_id, marketing.reminder_workflow_id.lower(), start_ms // 1000)
    if wanted is not None and wanted in mine:
        if stale := [r.tag for r in mine if r != wanted]:
            await _tag(client, contact_id, "DELETE", stale)
        return
    for old in mine:
        await _leave(client, contact_id, _configured(marketing, old.workflow_id))
    if wanted is not None:
        await _enrol(client, contact_id, marketing.reminder_workflow_id, event.get("startTime"))
        await _tag(client, contact_id, "POST", [wanted.tag])
    else:
        for workflow_id in sorted({r.workflow_id for r in mine}):
            ahead = [r.start for r in held if r.event_id != event_id and r.workflow_id == workflow_id and r.start > now]
            if ahead:
                start = datetime.fromtimestamp(min(ahead), UTC).isoformat()
                await _enrol(client, contact_id, _configured(marketing, workflow_id), start)
    if mine:
        await _tag(client, contact_id, "DELETE", [r.tag for r in mine])


async def apply_to_appointment(
    client: GhlClient,
    marketing: registry_pb2.MarketingOptions,
    event: dict[str, Any],
    score_field: ScoreField | None,
    now: float,
) -> None:
    """Follows the booking's reminder enrolment (_follow_reminder), enrols its contact in the
    follow-up sequence once it is kept (once per appointment: the enrolment tag is looked for
    first), and keeps the lead score field current (written only when it differs). A booking that
    ended is looked at whatever the switches: an enrolment made while they were on still has to go."""
    status = event.get("appointmentStatus")
    reminding = (marketing.appointment_reminders and status in BOOKED) or status in ENDED
    following_up = marketing.follow_up_sequences and status == FULFILLED
    contact_id = event.get("contactId")
    if not (reminding or following_up or marketing.lead_scoring) or not isinstance(contact_id, str):
        return
    contact = (await client.request("GET", f"/contacts/{contact_id}")).get("contact") or {}
    tags = {t.lower() for t in contact.get("tags") or [] if isinstance(t, str)}
    if reminding:
        await _follow_reminder(client, marketing, event, contact_id, tags, now)
    if following_up:
        tag = enrolment_tag("follow-up", str(event["id"]))
        if tag not in tags:
            await _enrol(client, contact_id, marketing.follow_up_workflow_id, event.get("startTime"))
            await _tag(client, contact_id, "POST", [tag])
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
