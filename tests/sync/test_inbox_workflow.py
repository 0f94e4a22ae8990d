"""The webhook inbox workflow on a real Temporal dev server: a busy inbox continues as new every
few batches instead of growing one history without end, and no event is lost or drained twice
across it; a batch that changed the hub is fanned out to the practice's other vendors. The hub's activities are stood in for by an in-memory inbox (the workflow's
orchestration is what is under test here; tests/e2e/test_webhooks_e2e.py runs the real ones)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from temporalio import activity
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from libs.protos.concord.adapter.v1 import adapter_pb2
from services.sync.domain import FanOut, InboxBatch, InboxDone, InboxRequest, InboxTake, PullPage, inbox_workflow_id
from services.sync.workflows import InboxWorkflow


@pytest.fixture(scope="module")
async def env(temporal_binary: str) -> AsyncIterator[WorkflowEnvironment]:
    environment = await WorkflowEnvironment.start_local(dev_server_existing_path=temporal_binary, ui=False)
    yield environment
    await environment.shutdown()


class Inbox:
    """Pending events in arrival order; what each batch read and reconciled."""

    def __init__(self, events: int) -> None:
        self.pending = [f"evt-{i}" for i in range(events)]
        self.taken: dict[str, list[str]] = {}
        self.processed: list[str] = []
        self.reconciled: list[list[str]] = []
        self.fanned_out: list[FanOut] = []

    @activity.defn(name="take_inbox_batch")
    async def take(self, request: InboxTake) -> InboxBatch:
        batch = [e for e in self.pending if e not in self.processed][: request.limit]
        if not batch:
            return InboxBatch()
        self.taken[request.run_id] = batch
        return InboxBatch(run_id=request.run_id, entity_type="ENTITY_TYPE_PATIENT", event_ids=batch, external_ids=batch)

    @activity.defn(name="get_records")
    async def get_records(self, request: adapter_pb2.GetRecordsRequest) -> adapter_pb2.GetRecordsResponse:
        return adapter_pb2.GetRecordsResponse(missing_ids=list(request.external_ids), vendor_requests=1)

    @activity.defn(name="reconcile_pull_page")
    async def reconcile(self, page: PullPage, fetched: adapter_pb2.FetchChangesResponse) -> int:
        self.reconciled.append(list(page.deleted_ids))
        return 0 if len(self.reconciled) % 2 else len(page.deleted_ids)  # every other batch changes the hub

    @activity.defn(name="fan_out")
    async def fan_out(self, request: FanOut) -> int:
        self.fanned_out.append(request)
        return 1

    @activity.defn(name="finish_inbox_batch")
    async def finish(self, done: InboxDone) -> None:
        self.processed += done.event_ids


async def test_a_busy_inbox_continues_as_new_and_drains_every_event_once(env: WorkflowEnvironment) -> None:
    inbox, queue, config_id = Inbox(events=23), f"inbox-{uuid.uuid4().hex[:8]}", f"cfg-{uuid.uuid4().hex[:8]}"
    hub = Worker(
        env.client,
        task_queue=queue,
        workflows=[InboxWorkflow],
        activities=[inbox.take, inbox.reconcile, inbox.finish, inbox.fan_out],
    )
    # The vendor's reads go to its adapter's queue (this dev server is this module's own).
    vendor = Worker(env.client, task_queue="adapter.ghl", activities=[inbox.get_records])
    async with hub, vendor:
        handle = await env.client.start_workflow(
            "Inbox",
            InboxRequest(config_id, "p-1", "ghl", batch_size=4, batches_per_execution=2),
            id=inbox_workflow_id(config_id),
            task_queue=queue,
            start_signal="nudge",
        )
        drained = await handle.result()

    # Every event once, in order, in batches of at most four; the count carried across executions.
    assert drained == 23
    assert inbox.processed == inbox.pending
    assert [len(b) for b in inbox.reconciled] == [4, 4, 4, 4, 4, 3]
    # A batch that changed hub records goes on to the practice's other real-time vendors; one
    # that changed nothing starts nothing.
    assert inbox.fanned_out == [FanOut("p-1", config_id, "ENTITY_TYPE_PATIENT")] * 3
    # Six batches at two per execution: three executions continued as new, then the last one
    # (which found the inbox empty) completed.
    assert await _executions(env, config_id, handle.first_execution_run_id) == [
        "CONTINUED_AS_NEW",
        "CONTINUED_AS_NEW",
        "CONTINUED_AS_NEW",
        "COMPLETED",
    ]


async def _executions(env: WorkflowEnvironment, config_id: str, run_id: str | None) -> list[str]:
    """How each execution of the workflow id ended, first to last, followed through the
    continued-as-new event that closes each history."""
    ended = []
    while run_id:
        handle = env.client.get_workflow_handle(inbox_workflow_id(config_id), run_id=run_id)
        status = (await handle.describe()).status
        ended.append(status.name if status else "")
        run_id = None
        async for event in handle.fetch_history_events():
            if event.HasField("workflow_execution_continued_as_new_event_attributes"):
                run_id = event.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
    return ended
