"""Email and SMS to a hub patient through a vendor (GoHighLevel's Conversations; the seed's
``/integrations/hl/email/send``). The caller names a hub patient, never an address: the recipient
is the patient's linked vendor contact. Subject and body are PHI: never logged, never echoed."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Header
from pydantic import BaseModel, Field

from libs.grpc_client import call
from libs.identity import Caller
from libs.protos.concord.adapter.v1 import adapter_pb2
from libs.protos.concord.sync.v1 import sync_pb2
from services.gateway.auth import require
from services.gateway.deps import Backends, BackendsDep, CallerDep, find_config, resolve_vendor

router = APIRouter(tags=["messaging"])

IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", min_length=1, max_length=200)]


class EmailIn(BaseModel):
    patient_id: str = Field(min_length=1, max_length=64)
    subject: str = Field(min_length=1, max_length=300)
    body: str = Field(min_length=1, max_length=50_000)


class SmsIn(BaseModel):
    patient_id: str = Field(min_length=1, max_length=64)
    body: str = Field(min_length=1, max_length=1_600)


async def _send(
    backends: Backends,
    caller: Caller,
    slug: str,
    channel: int,
    patient_id: str,
    subject: str,
    body: str,
    key: str | None,
) -> dict[str, Any]:
    require(caller, "message.send")
    config = await find_config(backends, caller, await resolve_vendor(backends, slug))
    key = key or uuid.uuid4().hex  # without the caller's key, each request is its own send
    response = await call(
        backends.sync.SendMessage,
        sync_pb2.SendMessageRequest(
            practice_id=caller.practice_id,
            config_id=config.config_id,
            patient_id=patient_id,
            channel=channel,
            subject=subject,
            body=body,
            idempotency_key=key,
        ),
        deadline=180,
    )
    return {
        "status": "sent",
        "message_id": response.message_id,
        "conversation_id": response.conversation_id,
        "idempotency_key": response.idempotency_key,
    }


@router.post("/integrations/{slug}/email/send", summary="Email a patient through the vendor")
async def send_email(
    slug: str, body: EmailIn, caller: CallerDep, backends: BackendsDep, idempotency_key: IdempotencyKey = None
) -> dict[str, Any]:
    return await _send(
        backends,
        caller,
        slug,
        adapter_pb2.MESSAGE_CHANNEL_EMAIL,
        body.patient_id,
        body.subject,
        body.body,
        idempotency_key,
    )


@router.post("/integrations/{slug}/sms/send", summary="Text a patient through the vendor")
async def send_sms(
    slug: str, body: SmsIn, caller: CallerDep, backends: BackendsDep, idempotency_key: IdempotencyKey = None
) -> dict[str, Any]:
    return await _send(
        backends, caller, slug, adapter_pb2.MESSAGE_CHANNEL_SMS, body.patient_id, "", body.body, idempotency_key
    )
