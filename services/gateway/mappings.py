"""Field mappings of the practice's config for a vendor: list the effective mappings, replace or
drop the overrides, preview what a sample record becomes. The rules live in the mapping service
(docs/ARCHITECTURE.md, "Field mappings"); this module only translates."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from google.protobuf import json_format
from pydantic import BaseModel, Field

from libs.errors import NotFound
from libs.grpc_client import call
from libs.protos.concord.common.v1 import common_pb2
from libs.protos.concord.mapping.v1 import mapping_pb2 as pb
from services.gateway.auth import require
from services.gateway.deps import BackendsDep, CallerDep, find_config, resolve_vendor

router = APIRouter(tags=["mappings"])

Entity = Literal["patient", "appointment"]
Direction = Literal["to_hub", "to_vendor", "both", "none"]
ENTITIES = {"patient": common_pb2.ENTITY_TYPE_PATIENT, "appointment": common_pb2.ENTITY_TYPE_APPOINTMENT}
DIRECTIONS = {
    "to_hub": pb.MAPPING_DIRECTION_TO_HUB,
    "to_vendor": pb.MAPPING_DIRECTION_TO_VENDOR,
    "both": pb.MAPPING_DIRECTION_BOTH,
    "none": pb.MAPPING_DIRECTION_NONE,
}
DIRECTION_NAMES = {value: name for name, value in DIRECTIONS.items()}
SOURCES = {pb.MAPPING_SOURCE_DEFAULT: "default", pb.MAPPING_SOURCE_OVERRIDE: "override"}


class TransformIn(BaseModel):
    name: str = Field("identity", min_length=1, max_length=64)
    params: dict[str, Any] = Field(default_factory=dict)


class FieldMappingIn(BaseModel):
    hub_field: str = Field(min_length=1, max_length=128)
    vendor_field: str = Field("", max_length=256)
    transform: TransformIn = Field(default_factory=TransformIn)
    direction: Direction = "both"


class MappingsIn(BaseModel):
    entity: Entity = "patient"
    overrides: list[FieldMappingIn] = Field(max_length=200)
    # When set, the change is refused (409) unless the config is still at this mapping version.
    expected_version: int = Field(0, ge=0)


class PreviewIn(BaseModel):
    entity: Entity = "patient"
    direction: Literal["to_hub", "to_vendor"]
    # to_hub: a vendor record; to_vendor: a FHIR R4 resource.
    record: dict[str, Any]


def _mapping_json(message: pb.FieldMapping) -> dict[str, Any]:
    return {
        "hub_field": message.hub_field,
        "vendor_field": message.vendor_field,
        "transform": {"name": message.transform.name, "params": json_format.MessageToDict(message.transform.params)},
        "direction": DIRECTION_NAMES.get(message.direction, "none"),
        "source": SOURCES.get(message.source, "default"),
    }


def _mapping_proto(entity: int, mapping: FieldMappingIn) -> pb.FieldMapping:
    message = pb.FieldMapping(
        entity_type=entity,
        hub_field=mapping.hub_field,
        vendor_field=mapping.vendor_field,
        transform=pb.Transform(name=mapping.transform.name),
        direction=DIRECTIONS[mapping.direction],
    )
    message.transform.params.update(mapping.transform.params)
    return message


async def _config(backends: BackendsDep, caller: CallerDep, slug: str) -> tuple[str, str]:
    integration_type = await resolve_vendor(backends, slug)
    return integration_type, (await find_config(backends, caller, integration_type)).config_id


@router.get("/integrations/{slug}/mappings", summary="The config's effective field mappings")
async def list_mappings(
    slug: str,
    caller: CallerDep,
    backends: BackendsDep,
    entity: Entity = "patient",
    page_size: Annotated[int, Query(ge=1, le=500)] = 100,
    page_token: str = "",
) -> dict[str, Any]:
    require(caller, "mapping.read")
    integration_type, config_id = await _config(backends, caller, slug)
    response = await call(
        backends.mapping.ListFieldMappings,
        pb.ListFieldMappingsRequest(
            config_id=config_id,
            integration_type=integration_type,
            entity_type=ENTITIES[entity],
            page_size=page_size,
            page_token=page_token,
        ),
    )
    return {
        "config_id": config_id,
        "entity": entity,
        "mapping_version": response.mapping_version,
        "mappings": [_mapping_json(m) for m in response.field_mappings],
        "next_page_token": response.next_page_token,
    }


@router.put("/integrations/{slug}/mappings", summary="Replace the config's field mapping overrides")
async def replace_mappings(slug: str, body: MappingsIn, caller: CallerDep, backends: BackendsDep) -> dict[str, Any]:
    require(caller, "mapping.manage")
    integration_type, config_id = await _config(backends, caller, slug)
    entity = ENTITIES[body.entity]
    response = await call(
        backends.mapping.ReplaceFieldMappings,
        pb.ReplaceFieldMappingsRequest(
            config_id=config_id,
            integration_type=integration_type,
            entity_type=entity,
            overrides=[_mapping_proto(entity, m) for m in body.overrides],
            expected_version=body.expected_version,
        ),
    )
    return {
        "config_id": config_id,
        "entity": body.entity,
        "mapping_version": response.mapping_version,
        "mappings": [_mapping_json(m) for m in response.field_mappings],
    }


@router.delete("/integrations/{slug}/mappings", summary="Drop one override: the field falls back to the default")
async def delete_mapping(
    slug: str,
    caller: CallerDep,
    backends: BackendsDep,
    hub_field: Annotated[str, Query(min_length=1, max_length=128)],
    entity: Entity = "patient",
) -> dict[str, Any]:
    require(caller, "mapping.manage")
    integration_type, config_id = await _config(backends, caller, slug)
    response = await call(
        backends.mapping.DeleteFieldMapping,
        pb.DeleteFieldMappingRequest(
            config_id=config_id, integration_type=integration_type, entity_type=ENTITIES[entity], hub_field=hub_field
        ),
    )
    return {"config_id": config_id, "entity": entity, "mapping_version": response.mapping_version}


@router.post("/integrations/{slug}/mappings/preview", summary="What a sample record becomes (nothing is stored)")
async def preview_mapping(slug: str, body: PreviewIn, caller: CallerDep, backends: BackendsDep) -> dict[str, Any]:
    require(caller, "mapping.read")
    integration_type = await resolve_vendor(backends, slug)
    try:
        config_id = (await find_config(backends, caller, integration_type)).config_id
    except NotFound:
        config_id = ""  # no config yet: the vendor defaults
    request = pb.PreviewMappingRequest(
        config_id=config_id,
        integration_type=integration_type,
        entity_type=ENTITIES[body.entity],
        direction=DIRECTIONS[body.direction],
    )
    if body.direction == "to_hub":
        request.vendor_record.update(body.record)
    else:
        request.resource_json = json.dumps(body.record)
    response = await call(backends.mapping.PreviewMapping, request)
    result: dict[str, Any] = {
        "config_id": config_id or None,
        "mapping_version": response.mapping_version,
        "errors": [{"field": e.field, "reason": e.reason, "message": e.message} for e in response.errors],
    }
    if body.direction == "to_hub":
        result["resource"] = json.loads(response.resource_json) if response.resource_json else None
    else:
        has_record = response.HasField("vendor_record")
        result["record"] = json_format.MessageToDict(response.vendor_record) if has_record else None
    return result
