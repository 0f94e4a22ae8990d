"""Provider availability: the Availability workflow (one adapter activity, get_availability) and how
its failures read as domain errors. The sync service resolves the hub patient and the hub service to
the vendor's ids through its links first; the adapter reads the vendor's free slots, holding none."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from google.protobuf import json_format

    from libs.errors import ConcordError, FailedPrecondition, InvalidArgument, Unavailable
    from libs.protos.concord.adapter.v1 import adapter_pb2
    from libs.protos.concord.registry.v1 import registry_pb2
    from services.sync.messaging import application_cause

READ_STEP = {
    "start_to_close_timeout": timedelta(minutes=2),
    "heartbeat_timeout": timedelta(minutes=1),
    "retry_policy": RetryPolicy(
        initial_interval=timedelta(seconds=1),
        maximum_interval=timedelta(seconds=10),
        maximum_attempts=4,
        non_retryable_error_types=["NotConnected", "InvalidArgument", "FailedPrecondition"],
    ),
}


@dataclass
class AvailabilityInput:
    integration_type: str
    config_id: str
    patient_external_id: str
    service_external_id: str
    provider_external_id: str
    date: str
    days: int
    options: dict  # the config's VendorOptions as JSON (the center's time zone)


@workflow.defn(name="Availability")
class AvailabilityWorkflow:
    @workflow.run
    async def run(self, query: AvailabilityInput) -> adapter_pb2.GetAvailabilityResponse:
        return await workflow.execute_activity(
            "get_availability",
            adapter_pb2.GetAvailabilityRequest(
                config_id=query.config_id,
                patient_external_id=query.patient_external_id,
                service_external_id=query.service_external_id,
                provider_external_id=query.provider_external_id,
                date=query.date,
                days=query.days,
                options=json_format.ParseDict(query.options, registry_pb2.VendorOptions()),
            ),
            task_queue=f"adapter.{query.integration_type}",
            result_type=adapter_pb2.GetAvailabilityResponse,
            **READ_STEP,
        )


def availability_failure(error: BaseException) -> ConcordError:
    """The adapter's refusal as a domain error; the vendor's message quotes no record value."""
    cause = application_cause(error)
    kind = cause.type if cause is not None else ""
    message = cause.message if cause is not None else ""
    if kind == "InvalidArgument":
        return InvalidArgument(f"the vendor refused the request: {message}", reason="AVAILABILITY_REFUSED")
    if kind == "FailedPrecondition":
        # The adapter leads a config error's message with its reason: "CENTER_TIME_ZONE_MISSING: set ..."
        coded = re.match(r"([A-Z][A-Z_]+): (.+)", message)
        reason, text = coded.groups() if coded else ("FAILED_PRECONDITION", message)
        return FailedPrecondition(text, reason=reason)
    if kind == "NotConnected":
        return FailedPrecondition("the vendor is not connected", reason="NOT_CONNECTED")
    return Unavailable("the vendor's availability could not be read; try again", reason="VENDOR_UNAVAILABLE")
