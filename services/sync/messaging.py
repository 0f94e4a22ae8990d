"""One email or SMS to a hub patient: the SendMessage workflow (one adapter activity) and how its
failures read as domain errors. The sync service resolves the patient to its linked vendor contact
and starts the workflow with an id derived from the idempotency key, so a key sends once."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from libs.errors import Aborted, ConcordError, FailedPrecondition, InvalidArgument
    from libs.protos.concord.adapter.v1 import adapter_pb2

SEND_STEP = {
    "start_to_close_timeout": timedelta(minutes=2),
    "heartbeat_timeout": timedelta(minutes=1),
    # The adapter sends at most once: only failures before GHL applied anything are retryable.
    "retry_policy": RetryPolicy(
        initial_interval=timedelta(seconds=2),
        maximum_interval=timedelta(seconds=30),
        maximum_attempts=5,
        non_retryable_error_types=["NotConnected", "MessageRefused", "InvalidArgument", "SendOutcomeUnknown"],
    ),
}


@dataclass
class MessageInput:
    """The workflow's argument. subject and body are PHI: Temporal payloads are encrypted."""

    integration_type: str
    config_id: str
    external_id: str
    channel: int
    subject: str
    body: str
    idempotency_key: str


def message_workflow_id(config_id: str, idempotency_key: str) -> str:
    return f"message:{config_id}:{hashlib.sha256(idempotency_key.encode()).hexdigest()[:40]}"


@workflow.defn(name="SendMessage")
class SendMessageWorkflow:
    @workflow.run
    async def run(self, message: MessageInput) -> adapter_pb2.SendMessageResponse:
        return await workflow.execute_activity(
            "send_message",
            adapter_pb2.SendMessageRequest(
                config_id=message.config_id,
                external_id=message.external_id,
                channel=message.channel,
                subject=message.subject,
                body=message.body,
                idempotency_key=message.idempotency_key,
            ),
            task_queue=f"adapter.{message.integration_type}",
            result_type=adapter_pb2.SendMessageResponse,
            **SEND_STEP,
        )


def application_cause(error: BaseException) -> ApplicationError | None:
    while error is not None:
        if isinstance(error, ApplicationError):
            return error
        error = error.cause if hasattr(error, "cause") else error.__cause__  # type: ignore[assignment]
    return None


def send_failure(error: BaseException) -> ConcordError:
    """The adapter's refusal as a domain error (409 at the gateway), never with message content."""
    cause = application_cause(error)
    kind = cause.type if cause is not None else ""
    reason = cause.message if cause is not None else ""
    detail = str(cause.details[0]) if cause is not None and cause.details else "the vendor did not send it"
    if kind == "MessageRefused":
        return FailedPrecondition(detail, reason=reason or "MESSAGE_REFUSED")
    if kind == "NotConnected":
        return FailedPrecondition("the vendor is not connected", reason="NOT_CONNECTED")
    if kind == "InvalidArgument":
        return InvalidArgument("the message is not valid for this vendor", field="body", reason="INVALID_MESSAGE")
    if kind == "SendOutcomeUnknown":
        return Aborted(detail, reason="SEND_OUTCOME_UNKNOWN")
    return Aborted("the message could not be sent; send it again with a new idempotency key", reason="SEND_FAILED")
