"""Reconciliations (the sync service's StartReconciliation, ListReconciliations):
``POST /integrations/{slug}/{entity}/reconcile`` starts one (202, the report as started; the
permission of starting a sync run) and ``GET /integrations/{slug}/{entity}/reconciliations`` lists
the reports, newest first. A report holds counts and checksums, never a value; the records it found
missing at the vendor wait in the review queue (kind ``missing``), and its heals are its sync run
(``GET /sync-runs/{run_id}``, ``wait=true`` until the reconciliation ends)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from libs.errors import NotFound
from libs.grpc_client import call
from libs.identity import Caller
from libs.protos.concord.common.v1 import common_pb2
from libs.protos.concord.sync.v1 import sync_pb2
from services.gateway.auth import require
from services.gateway.deps import Backends, BackendsDep, CallerDep, find_config, resolve_vendor, time_or_none

router = APIRouter(tags=["reconciliation"])

# The entities' plural path segments, as their sync routes name them.
ENTITIES = {
    "patients": common_pb2.ENTITY_TYPE_PATIENT,
    "appointments": common_pb2.ENTITY_TYPE_APPOINTMENT,
    "services": common_pb2.ENTITY_TYPE_SERVICE,
    "memberships": common_pb2.ENTITY_TYPE_MEMBERSHIP,
}
# Every count of a report (its int64 fields).
COUNTS = [f.name for f in sync_pb2.Reconciliation.DESCRIPTOR.fields if f.type == f.TYPE_INT64]


async def _target(backends: Backends, caller: Caller, slug: str, entity: str) -> tuple[str, int]:
    """The practice's config of the vendor and the entity type a path names."""
    if entity not in ENTITIES:
        raise NotFound("unknown entity", reason="UNKNOWN_ENTITY")
    config = await find_config(backends, caller, await resolve_vendor(backends, slug))
    return config.config_id, ENTITIES[entity]


def report_json(report: sync_pb2.Reconciliation) -> dict[str, Any]:
    return {
        "reconciliation_id": report.reconciliation_id,
        "config_id": report.config_id,
        "entity": common_pb2.EntityType.Name(report.entity_type).removeprefix("ENTITY_TYPE_").lower(),
        "run_id": report.run_id,
        "status": sync_pb2.ReconciliationStatus.Name(report.status).removeprefix("RECONCILIATION_STATUS_").lower(),
        **{name: getattr(report, name) for name in COUNTS},
        "hub_checksum": report.hub_checksum,
        "vendor_checksum": report.vendor_checksum,
        "error_message": report.error_message or None,
        "started_at": time_or_none(report, "start_time"),
        "completed_at": time_or_none(report, "end_time"),
    }


@router.post(
    "/integrations/{slug}/{entity}/reconcile",
    status_code=202,
    summary="Compare the vendor's records with the hub's, heal drift, hold what is missing for review",
)
async def start_reconciliation(slug: str, entity: str, caller: CallerDep, backends: BackendsDep) -> dict[str, Any]:
    require(caller, "sync.start")
    config_id, entity_type = await _target(backends, caller, slug, entity)
    request = sync_pb2.StartReconciliationRequest(
        practice_id=caller.practice_id, config_id=config_id, entity_type=entity_type
    )
    started = await call(backends.sync.StartReconciliation, request)
    return report_json(started.reconciliation)


@router.get("/integrations/{slug}/{entity}/reconciliations", summary="Reconciliation reports, newest first")
async def list_reconciliations(
    slug: str, entity: str, caller: CallerDep, backends: BackendsDep, limit: int = Query(20, ge=1, le=100)
) -> dict[str, Any]:
    require(caller, "integration.read")
    config_id, entity_type = await _target(backends, caller, slug, entity)
    request = sync_pb2.ListReconciliationsRequest(
        practice_id=caller.practice_id, config_id=config_id, entity_type=entity_type, limit=limit
    )
    listed = await call(backends.sync.ListReconciliations, request)
    return {"reconciliations": [report_json(r) for r in listed.reconciliations]}
