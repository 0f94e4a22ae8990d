"""The hub's memberships (FHIR R4 Coverage, libs/fhir_membership.py) and their syncs:
``GET /memberships``, ``GET /memberships/{id}``, ``POST /integrations/{slug}/memberships/sync``.
A membership names its patient (PHI): read with ``patient.read``; the handlers are catalog.py's."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from libs.protos.concord.common.v1 import common_pb2
from services.gateway.catalog import CatalogSyncRequest, list_of, one_of, start_sync_of
from services.gateway.deps import BackendsDep, CallerDep

MEMBERSHIP = common_pb2.ENTITY_TYPE_MEMBERSHIP
router = APIRouter(tags=["memberships"])


@router.get("/memberships", summary="List the practice's memberships")
async def list_memberships(
    caller: CallerDep, backends: BackendsDep, page_size: int = Query(50, ge=1, le=500), page_token: str = ""
) -> dict[str, Any]:
    return await list_of(caller, backends, MEMBERSHIP, "memberships", page_size, page_token)


@router.get("/memberships/{membership_id}", summary="Read a membership")
async def get_membership(membership_id: str, caller: CallerDep, backends: BackendsDep) -> dict[str, Any]:
    return await one_of(caller, backends, MEMBERSHIP, membership_id)


@router.post("/integrations/{slug}/memberships/sync", status_code=202, summary="Start a membership sync run")
async def start_membership_sync(
    slug: str, caller: CallerDep, backends: BackendsDep, body: CatalogSyncRequest | None = None
) -> dict[str, Any]:
    return await start_sync_of(slug, caller, backends, MEMBERSHIP, body)
