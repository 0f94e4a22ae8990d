"""The hub's service catalog (FHIR R4 HealthcareService, libs/fhir_service.py) and its syncs:
``GET /services``, ``GET /services/{id}``, ``POST /integrations/{slug}/services/sync``.
Roles as for appointments; catalog items name no patient."""

from __future__ import annotations

import json
from typing import Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel

from libs.grpc_client import call
from libs.protos.concord.common.v1 import common_pb2
from libs.protos.concord.sync.v1 import sync_pb2
from services.gateway.auth import require
from services.gateway.deps import BackendsDep, CallerDep, start_sync_run

SERVICE = common_pb2.ENTITY_TYPE_SERVICE


class CatalogSyncRequest(BaseModel):
    direction: Literal["push", "pull", "bidirectional"] | None = None


def records_router(entity_type: int, plural: str, tag: str, what: str, summary: str) -> APIRouter:
    """``GET /{plural}``, ``GET /{plural}/{id}`` and ``POST /integrations/{slug}/{plural}/sync`` for the
    canonical records of one entity type (the catalog here, memberships.py)."""
    router = APIRouter(tags=[tag])

    @router.get(f"/{plural}", summary=f"List the practice's {summary}")
    async def list_records(
        caller: CallerDep, backends: BackendsDep, page_size: int = Query(50, ge=1, le=500), page_token: str = ""
    ) -> dict[str, Any]:
        require(caller, "patient.read")
        listed = await call(
            backends.sync.ListRecords,
            sync_pb2.ListRecordsRequest(
                practice_id=caller.practice_id, entity_type=entity_type, page_size=page_size, page_token=page_token
            ),
        )
        return {
            plural: [json.loads(r.resource_json) for r in listed.records],
            "next_page_token": listed.next_page_token,
        }

    @router.get(f"/{plural}/{{record_id}}", summary=f"Read {what}")
    async def get_record(record_id: str, caller: CallerDep, backends: BackendsDep) -> dict[str, Any]:
        require(caller, "patient.read")
        found = await call(
            backends.sync.GetRecord,
            sync_pb2.GetRecordRequest(practice_id=caller.practice_id, entity_type=entity_type, record_id=record_id),
        )
        return json.loads(found.record.resource_json)

    @router.post(f"/integrations/{{slug}}/{plural}/sync", status_code=202, summary=f"Start a {summary} sync run")
    async def start_records_sync(
        slug: str, caller: CallerDep, backends: BackendsDep, body: CatalogSyncRequest | None = None
    ) -> dict[str, Any]:
        return await start_sync_run(backends, caller, slug, entity_type, body.direction if body else None)

    return router


router = records_router(SERVICE, "services", "catalog", "a catalog item", "service catalog")
