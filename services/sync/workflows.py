"""The patient sync workflow: pages and batches, never one activity per record."""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from google.protobuf import json_format, struct_pb2

    from libs.protos.concord.adapter.v1 import adapter_pb2
    from libs.protos.concord.common.v1 import common_pb2
    from libs.protos.concord.registry.v1 import registry_pb2
    from services.sync import domain
    from services.sync.domain import (
        CursorRequest,
        DeleteResults,
        FanOut,
        FinishRun,
        InboxBatch,
        InboxDone,
        InboxRequest,
        InboxTake,
        PullPage,
        PushBatch,
        PushBatchRequest,
        PushOutcome,
        PushResults,
        ScheduledSyncInput,
        SyncRunInput,
        WebhookInput,
    )

HUB_STEP = {
    "start_to_close_timeout": timedelta(minutes=2),
    "retry_policy": RetryPolicy(maximum_attempts=5, non_retryable_error_types=["InvalidArgument", "NotFound"]),
}
# Vendor calls pace themselves under the vendor's limit inside the activity; a long backoff here
# is for outages, not rate limits.
VENDOR_STEP = {
    "start_to_close_timeout": timedelta(minutes=10),
    # The adapter worker heartbeats every 5 s while an activity runs (services/adapters/worker.py):
    # one that died is noticed in 20 s and its activity retried elsewhere.
    "heartbeat_timeout": timedelta(seconds=20),
    "retry_policy": RetryPolicy(
        initial_interval=timedelta(seconds=2),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(minutes=2),
        maximum_attempts=8,
        non_retryable_error_types=["NotConnected", "VendorRejected", "InvalidArgument"],
    ),
}


# Histories begun before hub steps became local activities replay them as activities.
LOCAL_HUB_STEPS = "local-hub-steps"


async def hub_step(
    name: str, arg: Any = None, *, args: Sequence[Any] | None = None, result_type: type | None = None
) -> Any:
    """A step of the sync service's own (its database, the mapping and audit services) as a local
    activity: run by the worker that runs the workflow (the sync service's), with no trip through
    the Temporal server's task queue, which costs tens of milliseconds a step, and a real-time
    change takes a dozen steps from webhook to the other vendor. Vendor calls stay activities of
    the adapters' task queues."""
    steps = list(args) if args is not None else ([] if arg is None else [arg])
    if workflow.patched(LOCAL_HUB_STEPS):
        return await workflow.execute_local_activity(name, args=steps, result_type=result_type, **HUB_STEP)
    return await workflow.execute_activity(name, args=steps, result_type=result_type, **HUB_STEP)


def _struct(record: dict) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(record)
    return message


@workflow.defn(name="PatientSync")
class PatientSyncWorkflow:
    def __init__(self) -> None:
        self._again = False

    @workflow.signal
    def push_again(self) -> None:
        """A real-time change reached the hub while this run was going (SyncService.fan_out): its
        push passes over the records once more before the run ends."""
        self._again = True

    @workflow.run
    async def run(self, run: SyncRunInput) -> str:
        try:
            if domain.pulls(run.direction) and not run.pull_done:
                await self._pull(run)
            if domain.pushes(run.direction):
                await self._push(run)
                while self._again:
                    self._again = False
                    await self._push(run)
        except ActivityError as error:
            cause = error.cause
            reason = cause.type if isinstance(cause, ApplicationError) and cause.type else type(cause).__name__
            await hub_step("finish_run", FinishRun(run.run_id, f"sync step failed: {reason}"))
            raise ApplicationError(f"sync run failed: {reason}", non_retryable=True) from None
        await hub_step("finish_run", FinishRun(run.run_id))
        return run.run_id

    async def _pull(self, run: SyncRunInput) -> None:
        cursor = ""
        if not run.from_start:
            cursor = await hub_step("load_cursor", CursorRequest(run.config_id, run.entity_type), result_type=str)
        for _ in range(run.pages_per_execution):
            page = await workflow.execute_activity(
                "fetch_changes",
                adapter_pb2.FetchChangesRequest(
                    config_id=run.config_id,
                    entity_type=common_pb2.EntityType.Value(run.entity_type),
                    cursor=cursor,
                    page_size=run.page_size,
                    options=json_format.ParseDict(run.options, registry_pb2.VendorOptions()),
                    lane=run.lane,
                ),
                task_queue=f"adapter.{run.integration_type}",
                result_type=adapter_pb2.FetchChangesResponse,
                **VENDOR_STEP,
            )
            # The records go on as the adapter read them (binary protobuf), never decoded here.
            records = adapter_pb2.FetchChangesResponse(records=page.records)
            await hub_step(
                "reconcile_pull_page",
                args=[
                    PullPage(
                        run_id=run.run_id,
                        config_id=run.config_id,
                        practice_id=run.practice_id,
                        integration_type=run.integration_type,
                        conflict_policy=run.conflict_policy,
                        field_policies=run.field_policies,
                        records=[],
                        next_cursor=page.next_cursor,
                        vendor_requests=page.vendor_requests,
                        entity_type=run.entity_type,
                        options=run.options,
                    ),
                    records,
                ],
            )
            cursor = page.next_cursor
            if not page.has_more:
                return
        # The cursor is saved with every page, so the next execution resumes from it.
        workflow.continue_as_new(dataclasses.replace(run, from_start=False))

    async def _push(self, run: SyncRunInput) -> None:
        after = ""
        while True:
            batch: PushBatch = await hub_step(
                "prepare_push_batch",
                PushBatchRequest(
                    run.run_id,
                    run.config_id,
                    run.practice_id,
                    run.integration_type,
                    after,
                    run.push_batch_size,
                    entity_type=run.entity_type,
                ),
                result_type=PushBatch,
            )
            if batch.items:
                written = await workflow.execute_activity(
                    "upsert_batch",
                    adapter_pb2.UpsertBatchRequest(
                        config_id=run.config_id,
                        entity_type=common_pb2.EntityType.Value(run.entity_type),
                        items=[
                            adapter_pb2.UpsertItem(ref=i.ref, external_id=i.external_id, record=_struct(i.record))
                            for i in batch.items
                        ],
                        options=json_format.ParseDict(batch.options, registry_pb2.VendorOptions()),
                        lane=run.lane,
                    ),
                    task_queue=f"adapter.{run.integration_type}",
                    result_type=adapter_pb2.UpsertBatchResponse,
                    **VENDOR_STEP,
                )
                outcomes = [
                    PushOutcome(
                        ref=r.ref,
                        external_id=r.external_id,
                        success=r.success,
                        record=json_format.MessageToDict(r.record),
                        error_reason=r.error_reason,
                        error_message=r.error_message,
                    )
                    for r in written.results
                ]
                await hub_step(
                    "record_push_results",
                    PushResults(
                        run.run_id,
                        run.config_id,
                        run.practice_id,
                        run.integration_type,
                        outcomes,
                        written.vendor_requests,
                        entity_type=run.entity_type,
                        options=batch.options,
                        mapping_version=batch.mapping_version,
                        disclosed=batch.disclosed,
                    ),
                )
            if batch.deletes:
                await self._delete(run, batch)
            after = batch.last_patient_id
            if not batch.has_more:
                return

    async def _delete(self, run: SyncRunInput, batch: PushBatch) -> None:
        """The batch's tombstones deleted at the vendor, in one call (services/sync/tombstones.py)."""
        deleted = await workflow.execute_activity(
            "delete_records",
            adapter_pb2.DeleteRecordsRequest(
                config_id=run.config_id,
                entity_type=common_pb2.EntityType.Value(run.entity_type),
                external_ids=[d.external_id for d in batch.deletes],
                options=json_format.ParseDict(batch.options, registry_pb2.VendorOptions()),
                lane=run.lane,
            ),
            task_queue=f"adapter.{run.integration_type}",
            result_type=adapter_pb2.DeleteRecordsResponse,
            **VENDOR_STEP,
        )
        refs = {d.external_id: d.ref for d in batch.deletes}
        outcomes = [
            PushOutcome(
                ref=refs[r.external_id],
                external_id=r.external_id,
                success=r.success,
                error_reason=r.error_reason,
                error_message=r.error_message,
            )
            for r in deleted.results
            if r.external_id in refs
        ]
        await hub_step(
            "record_delete_results",
            DeleteResults(
                run.run_id,
                run.config_id,
                run.practice_id,
                run.integration_type,
                run.entity_type,
                outcomes,
                deleted.vendor_requests,
            ),
        )


@workflow.defn(name="ScheduledSync")
class ScheduledSyncWorkflow:
    """What a config's Temporal Schedule starts: one sync run of the entity, as a user's would be
    (its own run row and PatientSync workflow); none when one is running already (SKIP)."""

    @workflow.run
    async def run(self, request: ScheduledSyncInput) -> str:
        return await workflow.execute_activity(
            "start_scheduled_sync",
            request,
            result_type=str,
            start_to_close_timeout=timedelta(minutes=1),
            retry_policy=RetryPolicy(maximum_attempts=5),
        )


@workflow.defn(name="VerifyWebhook")
class VerifyWebhookWorkflow:
    """The vendor's adapter checks a delivery's signature and parses it (the gateway waits)."""

    @workflow.run
    async def run(self, request: WebhookInput) -> adapter_pb2.VerifyWebhookResponse:
        return await workflow.execute_activity(
            "verify_webhook",
            adapter_pb2.VerifyWebhookRequest(headers=request.headers, body=base64.b64decode(request.body_b64)),
            task_queue=f"adapter.{request.integration_type}",
            result_type=adapter_pb2.VerifyWebhookResponse,
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=RetryPolicy(maximum_attempts=3),
        )


@workflow.defn(name="Inbox")
class InboxWorkflow:
    """Drains one config's webhook inbox in batches through the pull's reconcile path: each batch's
    records are read from the vendor as they are now (get_records), so a duplicated or late event
    applies nothing old. Signalled (signal-with-start) for each delivery; ends when empty, and
    continues as new every `batches_per_execution` batches (the events wait in the database, so
    nothing is lost across it); returns how many events this workflow id drained."""

    def __init__(self) -> None:
        self._nudged = False

    @workflow.signal
    def nudge(self) -> None:
        self._nudged = True

    @workflow.run
    async def run(self, request: InboxRequest) -> int:
        drained = request.drained
        batches = 0
        while True:
            if batches >= request.batches_per_execution or workflow.info().is_continue_as_new_suggested():
                workflow.continue_as_new(dataclasses.replace(request, drained=drained))
            self._nudged = False
            take = InboxTake(request.config_id, str(workflow.uuid4()), request.batch_size)
            batch: InboxBatch = await hub_step("take_inbox_batch", take, result_type=InboxBatch)
            if not batch.event_ids:
                if self._nudged:
                    continue
                return drained
            records = adapter_pb2.FetchChangesResponse()
            missing: list[str] = []
            merged: dict[str, str] = {}
            requests = 0
            if batch.external_ids:
                found = await workflow.execute_activity(
                    "get_records",
                    adapter_pb2.GetRecordsRequest(
                        config_id=request.config_id,
                        entity_type=common_pb2.EntityType.Value(batch.entity_type),
                        external_ids=batch.external_ids,
                        options=json_format.ParseDict(batch.options, registry_pb2.VendorOptions()),
                        lane=adapter_pb2.LANE_REALTIME,
                    ),
                    task_queue=f"adapter.{request.integration_type}",
                    result_type=adapter_pb2.GetRecordsResponse,
                    **VENDOR_STEP,
                )
                records = adapter_pb2.FetchChangesResponse(records=found.records)
                # Gone at the vendor when read (a delete event, or a change deleted since): tombstones.
                missing = list(found.missing_ids)
                merged = dict(found.merged_into)
                requests = found.vendor_requests
            changed = await hub_step(
                "reconcile_pull_page",
                result_type=int,
                args=[
                    PullPage(
                        run_id=batch.run_id,
                        config_id=request.config_id,
                        practice_id=request.practice_id,
                        integration_type=request.integration_type,
                        conflict_policy=batch.conflict_policy,
                        field_policies=batch.field_policies,
                        records=[],
                        next_cursor=batch.cursor,
                        vendor_requests=requests,
                        entity_type=batch.entity_type,
                        options=batch.options,
                        move_cursor=False,
                        deleted_ids=missing,
                        merged_into=merged,
                    ),
                    records,
                ],
            )
            await hub_step("finish_inbox_batch", InboxDone(request.config_id, batch.run_id, batch.event_ids))
            if changed:
                # On to the practice's other real-time vendors now, not at their next schedule.
                await hub_step(
                    "fan_out", FanOut(request.practice_id, request.config_id, batch.entity_type), result_type=int
                )
            drained += len(batch.event_ids)
            batches += 1
