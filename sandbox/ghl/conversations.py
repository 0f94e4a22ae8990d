"""Outbound SMS and email (Conversations API, Version 2021-04-15).

Not in docs/vendors: shapes follow GoHighLevel/highlevel-api-docs `apps/conversations.json`
(SendMessageBodyDto, SendMessageResponseDto, GetMessageResponseDto, GetEmailMessageResponseDto).
Nothing is really sent: every message lands in `sb.outbox` (GET /_sandbox/messages)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from . import model
from .contacts import json_body
from .errors import bad_request, forbidden
from .state import Grant, Location, Sandbox

TYPES = ("SMS", "Email", "WhatsApp", "IG", "FB", "Custom", "Live_Chat")
SIMULATED = ("SMS", "Email")
_NUMBER = "number"
_SEND_FIELDS: dict[str, Any] = {
    "type": TYPES, "contactId": str, "appointmentId": str, "attachments": list, "emailFrom": str, "emailCc": list,
    "emailBcc": list, "html": str, "message": str, "subject": str, "replyMessageId": str, "templateId": str,
    "threadId": str, "scheduledTimestamp": _NUMBER, "conversationProviderId": str, "emailTo": str,
    "emailReplyMode": ("reply", "reply_all"), "fromNumber": str, "toNumber": str,
}  # fmt: skip
# GHL's message type numbers (GetMessageResponseDto.type): 1 call, 2 SMS, 3 email.
_TYPE_NUMBER = {"SMS": 2, "Email": 3}
DEFAULT_FROM = "Sandbox Clinic <no-reply@sandbox-clinic.test>"
DEFAULT_SMS_FROM = "+15550100000"


def dnd_message(channel: str) -> str:
    return f"Cannot send message as DND is active for {channel}."


def _validate(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise bad_request("Bad Request")
    errors = [f"property {k} should not exist" for k in body if k not in _SEND_FIELDS]
    errors += [f"{k} should not be empty" for k in ("type", "contactId") if body.get(k) in (None, "")]
    for key, kind in _SEND_FIELDS.items():
        value = body.get(key)
        if value is None:
            continue
        if isinstance(kind, tuple) and value not in kind:
            errors.append(f"{key} must be one of the following values: {', '.join(kind)}")
        elif kind is str and not isinstance(value, str):
            errors.append(f"{key} must be a string")
        elif kind is list and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            errors.append(f"each value in {key} must be a string")
        elif kind == _NUMBER and (isinstance(value, bool) or not isinstance(value, int | float)):
            errors.append(f"{key} must be a number")
    if errors:
        raise bad_request(", ".join(errors))
    if body["type"] not in SIMULATED:
        raise bad_request(f"Message type {body['type']} is not simulated by the sandbox")
    return body


def _dnd(contact: dict[str, Any], channel: str) -> bool:
    setting = (contact.get("dndSettings") or {}).get(channel) or {}
    return bool(contact.get("dnd")) or setting.get("status") in ("active", "permanent")


def _conversation(sb: Sandbox, location: Location, contact_id: str, stamp: int) -> dict[str, Any]:
    conversation = location.conversations.get(contact_id)
    if conversation is None:
        conversation = {"id": sb.new_id(), "contactId": contact_id, "locationId": location.id, "dateAdded": stamp}
        location.conversations[contact_id] = conversation
    conversation["lastMessageDate"] = stamp
    return conversation


async def send(request: Request, sb: Sandbox, grant: Grant) -> JSONResponse:
    values = _validate(await json_body(request))
    found = sb.find_contact(values["contactId"])
    if found is None:
        raise bad_request("Contact not found")
    location, contact = found
    if location.id != grant.location_id:
        raise forbidden()
    channel = values["type"]
    if _dnd(contact, channel):
        sb.refused.append({"contactId": contact["id"], "locationId": location.id, "type": channel, "reason": "dnd"})
        raise bad_request(dnd_message(channel))
    if channel == "SMS":
        body = values.get("message")
        if not body and not values.get("attachments"):
            raise bad_request("message should not be empty")
        to = values.get("toNumber") or contact.get("phone")
        if not to:
            raise bad_request("Contact does not have a phone number")
        sender = values.get("fromNumber") or DEFAULT_SMS_FROM
    else:
        body = values.get("html") or values.get("message")
        if not body:
            raise bad_request("html or message should not be empty")
        to = values.get("emailTo") or contact.get("email")
        if not to:
            raise bad_request("Contact does not have an email address")
        sender = values.get("emailFrom") or DEFAULT_FROM
    stamp = sb.stamp_ms()
    conversation = _conversation(sb, location, contact["id"], stamp)
    scheduled = values.get("scheduledTimestamp")
    message = {
        "id": sb.new_id(),
        "type": channel,
        "conversationId": conversation["id"],
        "locationId": location.id,
        "contactId": contact["id"],
        "body": body or "",
        "contentType": "text/html" if channel == "Email" and values.get("html") else "text/plain",
        "attachments": list(values.get("attachments") or []),
        "status": "scheduled" if scheduled and scheduled > sb.clock() else "delivered",
        "dateAdded": stamp,
        "to": to,
        "from": sender,
        "subject": values.get("subject"),
        "cc": list(values.get("emailCc") or []),
        "bcc": list(values.get("emailBcc") or []),
        "emailMessageId": sb.new_id() if channel == "Email" else None,
    }
    location.messages[message["id"]] = message
    sb.message_location[message["id"]] = location.id
    if message["emailMessageId"]:
        sb.message_location[message["emailMessageId"]] = location.id
    sb.outbox.append(message)
    answer = {"conversationId": conversation["id"], "messageId": message["id"]}
    if message["emailMessageId"]:
        answer["emailMessageId"] = message["emailMessageId"]
    return JSONResponse(answer)


def _find(sb: Sandbox, grant: Grant, message_id: str, *, email: bool) -> tuple[Location, dict[str, Any]]:
    location_id = sb.message_location.get(message_id)
    location = sb.locations.get(location_id or "")
    message = None
    if location is not None:
        if email:
            message = next((m for m in location.messages.values() if m["emailMessageId"] == message_id), None)
        else:
            message = location.messages.get(message_id)
    if location is None or message is None:
        raise bad_request("Message not found")
    if location.id != grant.location_id:
        raise forbidden()
    return location, message


def render(message: dict[str, Any]) -> dict[str, Any]:
    """GetMessageResponseDto."""
    out: dict[str, Any] = {
        "id": message["id"],
        "type": _TYPE_NUMBER[message["type"]],
        "messageType": f"TYPE_{message['type'].upper()}",
        "locationId": message["locationId"],
        "contactId": message["contactId"],
        "conversationId": message["conversationId"],
        "dateAdded": model.iso_ms(message["dateAdded"]),
        "body": message["body"],
        "direction": "outbound",
        "status": message["status"],
        "contentType": message["contentType"],
        "attachments": message["attachments"],
        "source": "api",
    }
    if message["emailMessageId"]:
        out["meta"] = {"email": {"messageIds": [message["emailMessageId"]]}}
    return out


def render_email(message: dict[str, Any]) -> dict[str, Any]:
    """GetEmailMessageResponseDto."""
    out = {
        "id": message["emailMessageId"],
        "threadId": message["id"],
        "locationId": message["locationId"],
        "contactId": message["contactId"],
        "conversationId": message["conversationId"],
        "dateAdded": model.iso_ms(message["dateAdded"]),
        "subject": message["subject"],
        "body": message["body"],
        "direction": "outbound",
        "status": message["status"],
        "contentType": message["contentType"],
        "attachments": message["attachments"],
        "provider": "Leadconnector Gmail",
        "from": message["from"],
        "to": [message["to"]],
        "cc": message["cc"],
        "bcc": message["bcc"],
        "source": "api",
    }
    return {k: v for k, v in out.items() if v is not None}


async def get_message(request: Request, sb: Sandbox, grant: Grant) -> JSONResponse:
    _, message = _find(sb, grant, request.path_params["id"], email=False)
    return JSONResponse(render(message))


async def get_email(request: Request, sb: Sandbox, grant: Grant) -> JSONResponse:
    _, message = _find(sb, grant, request.path_params["id"], email=True)
    return JSONResponse(render_email(message))


def outbox_json(message: dict[str, Any]) -> dict[str, Any]:
    """An outbox entry for /_sandbox/messages."""
    return {**render(message), "to": message["to"], "from": message["from"], "subject": message["subject"]}
