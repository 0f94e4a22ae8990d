"""Minimum necessary (HIPAA): a config's field allow-list and the practice's Business Associate
Agreement with the vendor, admins only (``integration.manage``). The registry validates and
stores both; the mapping service enforces them where hub records become vendor payloads
(libs/minimum_necessary.py). Bad input is RFC 9457 problem JSON naming the field, never a value."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from google.protobuf import field_mask_pb2
from pydantic import BaseModel, Field

from libs.grpc_client import call
from libs.protos.concord.registry.v1 import registry_pb2
from services.gateway.auth import require
from services.gateway.deps import BackendsDep, CallerDep, find_config, resolve_vendor

router = APIRouter(tags=["minimum necessary"])


class AllowListIn(BaseModel):
    # Canonical hub fields "<entity>.<field>", e.g. patient.email; empty = every mapped field.
    fields: list[str] = Field(max_length=200)


class AgreementIn(BaseModel):
    # YYYY-MM-DD: the day the practice's BAA with the vendor takes effect.
    effective_date: str = Field(max_length=32)


def _allow_list_json(config: registry_pb2.IntegrationConfig) -> dict[str, Any]:
    return {
        "config_id": config.config_id,
        "fields": list(config.field_allow_list),
        "baa_effective_date": config.baa_effective_date or None,
    }


@router.get("/integrations/{slug}/field-allow-list", summary="The fields that may leave for the vendor")
async def get_allow_list(slug: str, caller: CallerDep, backends: BackendsDep) -> dict[str, Any]:
    require(caller, "integration.manage")
    config = await find_config(backends, caller, await resolve_vendor(backends, slug))
    return _allow_list_json(config)


@router.put("/integrations/{slug}/field-allow-list", summary="Replace the fields that may leave for the vendor")
async def put_allow_list(slug: str, body: AllowListIn, caller: CallerDep, backends: BackendsDep) -> dict[str, Any]:
    require(caller, "integration.manage")
    config = await find_config(backends, caller, await resolve_vendor(backends, slug))
    response = await call(
        backends.registry.UpdateIntegrationConfig,
        registry_pb2.UpdateIntegrationConfigRequest(
            config=registry_pb2.IntegrationConfig(
                config_id=config.config_id, practice_id=caller.practice_id, field_allow_list=body.fields
            ),
            update_mask=field_mask_pb2.FieldMask(paths=["field_allow_list"]),
        ),
    )
    return _allow_list_json(response.config)


@router.put("/integrations/{slug}/baa", summary="Record the practice's Business Associate Agreement with the vendor")
async def put_agreement(slug: str, body: AgreementIn, caller: CallerDep, backends: BackendsDep) -> dict[str, Any]:
    require(caller, "integration.manage")
    integration_type = await resolve_vendor(backends, slug)
    response = await call(
        backends.registry.RecordBusinessAssociateAgreement,
        registry_pb2.RecordBusinessAssociateAgreementRequest(
            practice_id=caller.practice_id, integration_type=integration_type, effective_date=body.effective_date
        ),
    )
    agreement = response.agreement
    return {
        "integration_type": agreement.integration_type,
        "effective_date": agreement.effective_date,
        "recorded_by": agreement.recorded_by,
        "record_time": agreement.record_time.ToDatetime().isoformat() + "Z",
    }
