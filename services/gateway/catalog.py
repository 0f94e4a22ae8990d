"""The hub's service catalog (FHIR R4 HealthcareService, libs/fhir_service.py) and its syncs:
``GET /services``, ``GET /services/{id}``, ``POST /integrations/{slug}/services/sync``.
Roles as for appointments; catalog items name no patient."""

from __future__ import annotations

import json
from typing import Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel

from libs.grpc_client import call
from libs.identity import Caller
from libs.protos.concord.common.v1 import common_pb2
from libs.protos.concord.sync.v1 import sync_pb2
from services.gateway.auth import require
from services.gateway.deps import Backends, BackendsDep, CallerDep, enum_in, find_config, resolve_vendor, run_json

SERVICE = common_pb2.ENTITY_TYPE_SERVICE
router = APIRouter(tags=["catalog"])


class CatalogSyncRequest(BaseModel):
    direction: Literal["push", "pull", "bidirectional"] | None = None


async def list_of(
    caller: Caller, backends: Backends, entity_type: int, key: str, page_size: int, page_token: str
) -> dict[str, Any]:
    """A page of the practice's canonical records of one entity type (shared by catalog and memberships)."""
    require(caller, "patient.read")
    listed = await call(
        backends.sync.ListRecords,
        sync_pb2.ListRecordsRequest(
            practice_id=caller.practice_id, entity_type=entity_type, page_size=page_size, page_token=page_token
        ),
    )
    return {key: [json.loads(r.resource_json) for r in listed.records], "next_page_token": listed.next_page_token}


async def one_of(caller: Caller, backends: Backends, entity_type: int, record_id: str) -> dict[str, Any]:
    require(caller, "patient.read")
    found = await call(
        backends.sync.GetRecord,
        sync_pb2.GetRecordRequest(practice_id=caller.practice_id, entity_type=entity_type, record_id=record_id),
    )
    return json.loads(found.record.resource_json)


async def start_sync_of(
    slug: str, caller: Caller, backends: Backends, entity_type: int, body: CatalogSyncRequest | None
) -> dict[str, Any]:
    require(caller, "sync.start")
    config = await find_config(backends, caller, await resolve_vendor(backends, slug))
    direction = enum_in("sync_direction", body.direction) if body and body.direction else 0
    response = await call(
        backends.sync.StartSync,
        sync_pb2.StartSyncRequest(
            practice_id=caller.practice_id, config_id=config.config_id, entity_type=entity_type, direction=direction
        ),
    )
    return run_json(response.run)


@router.get("/services", summary="List the practice's service catalog")
async def list_services(
    caller: CallerDep, backends: BackendsDep, page_size: int = Query(50, ge=1, le=500), page_token: str = ""
) -> dict[str, Any]:
    return await list_of(caller, backends, SERVICE, "services", page_size, page_token)


@router.get("/services/{service_id}", summary="Read a catalog item")
async def get_service(service_id: str, caller: CallerDep, backends: BackendsDep) -> dict[str, Any]:
    return await one_of(caller, backends, SERVICE, service_id)


@router.post("/integrations/{slug}/services/sync", status_code=202, summary="Start a service catalog sync run")
async def start_service_sync(
    slug: str, caller: CallerDep, backends: BackendsDep, body: CatalogSyncRequest | None = None
) -> dict[str, Any]:
    return await start_sync_of(slug, caller, backends, SERVICE, body)
