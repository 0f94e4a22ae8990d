"""What every GoHighLevel entity module (contacts, appointments) shares: the resource contract
the adapter dispatches to, and the rules for pages, writes and errors."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, TypeVar

from temporalio.exceptions import ApplicationError

from libs.protos.concord.adapter.v1 import adapter_pb2 as pb
from services.adapters.common import without_values
from services.adapters.ghl.client import GhlClient, GhlError

# GHL has no batch write for contacts or appointments: one request per record, several in flight, all paced.
WRITE_CONCURRENCY = 10
Job = TypeVar("Job")


class Resource(Protocol):
    """One entity type at GHL; the adapter picks it by the request's entity_type."""

    async def fetch(self, client: GhlClient, request: pb.FetchChangesRequest) -> pb.FetchChangesResponse: ...

    async def upsert(self, client: GhlClient, request: pb.UpsertBatchRequest) -> pb.UpsertBatchResponse: ...


def malformed(what: str) -> ApplicationError:
    # Retryable: a vendor glitch; returning the page (or a cursor built from it) would lose records.
    return ApplicationError(f"malformed page: {what}", type="VendorMalformedPage")


def bad_cursor() -> ApplicationError:
    return ApplicationError("not a GoHighLevel cursor", type="InvalidArgument", non_retryable=True)


def refused(item: pb.UpsertItem, error: GhlError, record: dict, reason: str = "") -> pb.UpsertResult:
    """One record GHL refused; the rest of the batch goes on."""
    return pb.UpsertResult(
        ref=item.ref,
        success=False,
        error_reason=reason or error.reason,
        error_message=without_values(error.message, record),
    )


async def write_all(jobs: Sequence[Job], write: Callable[[Job], Awaitable[pb.UpsertResult]]) -> list[pb.UpsertResult]:
    """Runs one write per job, WRITE_CONCURRENCY at a time; results in request order."""
    gate = asyncio.Semaphore(WRITE_CONCURRENCY)

    async def gated(job: Job) -> pb.UpsertResult:
        async with gate:
            return await write(job)

    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(gated(job)) for job in jobs]
    except ExceptionGroup as failures:
        # The activity fails as the first failure itself, so a non-retryable one stays so;
        # otherwise Temporal retries the batch, which every write path makes safe.
        permanent = [e for e in failures.exceptions if isinstance(e, ApplicationError) and e.non_retryable]
        raise (permanent or failures.exceptions)[0] from None
    return [task.result() for task in tasks]
