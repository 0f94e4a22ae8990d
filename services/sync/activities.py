"""The sync service's own activities: thin wrappers over the use cases, run on task queue "sync"."""

from __future__ import annotations

from temporalio import activity
from temporalio.exceptions import ApplicationError

from libs.errors import ConcordError, InvalidArgument, NotFound
from libs.protos.concord.adapter.v1 import adapter_pb2
from services.sync.domain import (
    CursorRequest,
    DeleteResults,
    FanOut,
    FinishRun,
    InboxBatch,
    InboxDone,
    InboxTake,
    PullPage,
    PushBatch,
    PushBatchRequest,
    PushResults,
    ScheduledSyncInput,
)
from services.sync.service import SyncService


def _permanent(error: ConcordError) -> ApplicationError:
    return ApplicationError(error.reason, type=type(error).__name__, non_retryable=True)


class SyncActivities:
    def __init__(self, service: SyncService) -> None:
        self._service = service

    @activity.defn(name="load_cursor")
    async def load_cursor(self, request: CursorRequest) -> str:
        return await self._service.load_cursor(request)

    @activity.defn(name="reconcile_pull_page")
    async def reconcile_pull_page(self, page: PullPage, fetched: adapter_pb2.FetchChangesResponse | None = None) -> int:
        try:
            return await self._service.reconcile_pull_page(page, fetched)
        except (InvalidArgument, NotFound) as error:
            raise _permanent(error) from None

    @activity.defn(name="prepare_push_batch")
    async def prepare_push_batch(self, request: PushBatchRequest) -> PushBatch:
        try:
            return await self._service.prepare_push_batch(request)
        except (InvalidArgument, NotFound) as error:
            raise _permanent(error) from None

    @activity.defn(name="record_push_results")
    async def record_push_results(self, results: PushResults) -> None:
        await self._service.record_push_results(results)

    @activity.defn(name="record_delete_results")
    async def record_delete_results(self, results: DeleteResults) -> None:
        await self._service.record_delete_results(results)

    @activity.defn(name="finish_run")
    async def finish_run(self, request: FinishRun) -> None:
        await self._service.finish_run(request)

    @activity.defn(name="start_scheduled_sync")
    async def start_scheduled_sync(self, request: ScheduledSyncInput) -> str:
        return await self._service.start_scheduled_sync(request)

    @activity.defn(name="take_inbox_batch")
    async def take_inbox_batch(self, request: InboxTake) -> InboxBatch:
        return await self._service.take_inbox_batch(request)

    @activity.defn(name="fan_out")
    async def fan_out(self, request: FanOut) -> int:
        return await self._service.fan_out(request)

    @activity.defn(name="finish_inbox_batch")
    async def finish_inbox_batch(self, request: InboxDone) -> None:
        await self._service.finish_inbox_batch(request)

    def all(self) -> list:
        return [
            self.take_inbox_batch,
            self.finish_inbox_batch,
            self.fan_out,
            self.start_scheduled_sync,
            self.load_cursor,
            self.reconcile_pull_page,
            self.prepare_push_batch,
            self.record_push_results,
            self.record_delete_results,
            self.finish_run,
        ]
