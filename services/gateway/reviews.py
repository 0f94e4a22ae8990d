"""The manual review queue (the sync service's ListReviewItems, GetReviewItem, ResolveReviewItem):
``GET /review-items``, ``GET /review-items/{id}``, ``POST /review-items/{id}/resolve``. A listing
shows which field of which record waits, never a value; an item's own page shows that field's three
values (base, hub, vendor) and nothing else of the record; a possible duplicate shows why it was
held (which blind-index kinds agree) and the vendor record's identifying fields. Reading needs ``review.read``,
settling ``review.resolve``."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from libs.grpc_client import call
from libs.protos.concord.common.v1 import common_pb2
from libs.protos.concord.sync.v1 import sync_pb2
from services.gateway.auth import require
from services.gateway.deps import BackendsDep, CallerDep, time_or_none

router = APIRouter(tags=["review"])

STATUSES = {"open": sync_pb2.REVIEW_STATUS_OPEN, "resolved": sync_pb2.REVIEW_STATUS_RESOLVED}
CHOICES = {
    "hub": sync_pb2.REVIEW_CHOICE_HUB,
    "vendor": sync_pb2.REVIEW_CHOICE_VENDOR,
    "value": sync_pb2.REVIEW_CHOICE_VALUE,
    "same": sync_pb2.REVIEW_CHOICE_SAME,
    "different": sync_pb2.REVIEW_CHOICE_DIFFERENT,
}


class ResolveIn(BaseModel):
    # A conflict: hub, vendor or value. A possible duplicate: same (that patient) or different.
    choice: Literal["hub", "vendor", "value", "same", "different"]
    # With choice "value": what the field takes (null clears it).
    value: str | None = Field(None, max_length=2000)


def item_json(item: sync_pb2.ReviewItem) -> dict[str, Any]:
    resolution = sync_pb2.ReviewChoice.Name(item.resolution).removeprefix("REVIEW_CHOICE_").lower()
    return {
        "review_id": item.review_id,
        "kind": sync_pb2.ReviewKind.Name(item.kind).removeprefix("REVIEW_KIND_").lower(),
        "reasons": list(item.reasons),
        "config_id": item.config_id,
        "entity_type": common_pb2.EntityType.Name(item.entity_type).removeprefix("ENTITY_TYPE_").lower(),
        "record_id": item.record_id,
        "external_id": item.external_id,
        "field": item.field,
        "status": sync_pb2.ReviewStatus.Name(item.status).removeprefix("REVIEW_STATUS_").lower(),
        "run_id": item.run_id,
        "created_at": time_or_none(item, "create_time"),
        "updated_at": time_or_none(item, "update_time"),
        "resolved_at": time_or_none(item, "resolve_time"),
        "resolved_by": item.resolved_by or None,
        "resolution": None if resolution == "unspecified" else resolution,
    }


@router.get("/review-items", summary="Conflicting fields waiting for a person (oldest first)")
async def list_review_items(
    caller: CallerDep,
    backends: BackendsDep,
    status: Literal["open", "resolved"] | None = None,
    config_id: str = Query("", max_length=36),
    page_size: int = Query(50, ge=1, le=200),
    page_token: str = "",
) -> dict[str, Any]:
    require(caller, "review.read")
    listed = await call(
        backends.sync.ListReviewItems,
        sync_pb2.ListReviewItemsRequest(
            practice_id=caller.practice_id,
            config_id=config_id,
            status=STATUSES.get(status or "", 0),
            page_size=page_size,
            page_token=page_token,
        ),
    )
    return {"items": [item_json(i) for i in listed.items], "next_page_token": listed.next_page_token}


@router.get("/review-items/{review_id}", summary="One review item and its field's three values")
async def get_review_item(review_id: str, caller: CallerDep, backends: BackendsDep) -> dict[str, Any]:
    require(caller, "review.read")
    found = await call(
        backends.sync.GetReviewItem, sync_pb2.GetReviewItemRequest(practice_id=caller.practice_id, review_id=review_id)
    )
    values = found.values
    return {
        **item_json(found.item),
        "values": {
            side: getattr(values, side) if values.HasField(side) else None for side in ("base", "hub", "vendor")
        },
        "hub_modified_at": time_or_none(values, "hub_modify_time"),
        "vendor_modified_at": time_or_none(values, "vendor_modify_time"),
        "vendor_record": dict(values.vendor_record) or None,
    }


@router.post("/review-items/{review_id}/resolve", summary="Settle a field: the hub's value, the vendor's, or one given")
async def resolve_review_item(
    review_id: str, body: ResolveIn, caller: CallerDep, backends: BackendsDep
) -> dict[str, Any]:
    require(caller, "review.resolve")
    request = sync_pb2.ResolveReviewItemRequest(
        practice_id=caller.practice_id, review_id=review_id, choice=CHOICES[body.choice]
    )
    if body.choice == "value" and body.value is not None:
        request.value = body.value
    resolved = await call(backends.sync.ResolveReviewItem, request)
    return item_json(resolved.item)
