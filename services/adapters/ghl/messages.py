"""Email and SMS through GHL's Conversations API (``POST /conversations/messages``).

GHL has no idempotency key for messages and no way to look a sent message up by ours, so a send is
made at most once: a 429 or 401 (refused before GHL applied anything) is retried by the client, but
an answer that leaves the outcome unknown (5xx, a connection dropped after sending) fails the
activity as non-retryable ``SendOutcomeUnknown`` instead of risking a second message. The sync
service keys the workflow on the caller's idempotency key, so a retried request sends once too.
The subject, body and the contact's address are PHI: never in an error, log line or span.
"""

from __future__ import annotations

from temporalio.exceptions import ApplicationError

from libs.protos.concord.adapter.v1 import adapter_pb2 as pb
from services.adapters.ghl.client import CALENDARS_VERSION, GhlClient, GhlError, WriteOutcomeUnknown

CONVERSATIONS_VERSION = CALENDARS_VERSION  # Conversations share the 2021-04-15 family
CHANNELS = {pb.MESSAGE_CHANNEL_EMAIL: "Email", pb.MESSAGE_CHANNEL_SMS: "SMS"}


def message_body(request: pb.SendMessageRequest) -> dict:
    """``SendMessageBodyDto`` for one message to the linked contact (GHL finds its address)."""
    channel = CHANNELS.get(request.channel)
    if channel is None:
        raise ApplicationError("channel must be email or sms", type="InvalidArgument", non_retryable=True)
    if not request.external_id or not request.body:
        raise ApplicationError("a contact and a body are required", type="InvalidArgument", non_retryable=True)
    body = {"type": channel, "contactId": request.external_id, "message": request.body}
    if channel == "Email":
        body["subject"] = request.subject
    return body


def _refusal(error: GhlError, channel: str) -> ApplicationError:
    """GHL's refusal as a stable reason; its message is kept only when it is GHL's own fixed text."""
    if "DND is active" in error.message:
        return ApplicationError(
            "DND_ACTIVE", f"the contact has DND active for {channel}", type="MessageRefused", non_retryable=True
        )
    if error.status == 400 and "not found" in error.message.lower():
        return ApplicationError(
            "CONTACT_NOT_FOUND", "the linked contact is gone at GoHighLevel", type="MessageRefused", non_retryable=True
        )
    if error.status == 400 and ("phone" in error.message.lower() or "email" in error.message.lower()):
        return ApplicationError(
            "NO_ADDRESS", f"the contact has no address for {channel}", type="MessageRefused", non_retryable=True
        )
    return ApplicationError(
        error.reason,
        f"GoHighLevel refused the message (HTTP {error.status})",
        type="MessageRefused",
        non_retryable=True,
    )


async def send(client: GhlClient, request: pb.SendMessageRequest) -> pb.SendMessageResponse:
    body = message_body(request)
    try:
        answer = await client.request(
            "POST", "/conversations/messages", json=body, version=CONVERSATIONS_VERSION, replay=False
        )
    except WriteOutcomeUnknown:
        raise ApplicationError(
            "SEND_OUTCOME_UNKNOWN",
            "GoHighLevel may have sent it; not sent again",
            type="SendOutcomeUnknown",
            non_retryable=True,
        ) from None
    except GhlError as error:
        if error.about_the_record:
            raise _refusal(error, body["type"]) from None
        raise
    return pb.SendMessageResponse(
        message_id=str(answer.get("messageId", "")),
        conversation_id=str(answer.get("conversationId", "")),
        vendor_requests=client.requests,
    )
