"""The config's marketing switches (registry MarketingOptions) applied to a pushed contact:
campaign tags GHL campaigns key on, added only while the contact is not DND for that channel and
removed when the switch goes off (or DND comes on). Looks before it writes: a second push of an
unchanged contact makes no call."""

from __future__ import annotations

from typing import Any

from libs.protos.concord.registry.v1 import registry_pb2
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
