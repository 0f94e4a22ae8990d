"""Offboarding a practice: ``POST /practice/offboard`` (admins; the body repeats the practice id,
since this cannot be undone). Every config of the practice is made inactive (its schedules go) and
disconnected (tokens revoked at the vendor while they can still be read); then the connection and
sync services destroy the practice's data keys (crypto-shredding, ``EnvelopeCipher.shred``): no
credential, record, history entry, merge base or review item of the practice can be read again,
and its blind indexes are deleted. The audit chain stays (it holds field names and ids, never
values) and records each step."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from google.protobuf import field_mask_pb2
from pydantic import BaseModel, ConfigDict, Field

from libs.errors import InvalidArgument
from libs.grpc_client import call
from libs.protos.concord.connection.v1 import connection_pb2
from libs.protos.concord.registry.v1 import registry_pb2
from libs.protos.concord.sync.v1 import sync_pb2
from services.gateway.auth import require
from services.gateway.deps import BackendsDep, CallerDep

router = APIRouter(tags=["practice"])


class OffboardIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # The practice's id, typed again: a confirmation that this practice is the one to destroy.
    confirm: str = Field(min_length=1, max_length=64)


@router.post("/practice/offboard", summary="Offboard the practice: disconnect every vendor, crypto-shred its data")
async def offboard(body: OffboardIn, caller: CallerDep, backends: BackendsDep) -> dict[str, Any]:
    require(caller, "practice.manage")
    if body.confirm != caller.practice_id:
        raise InvalidArgument("confirm must be the practice's id", field="confirm", reason="CONFIRMATION_MISMATCH")
    configs, token = [], ""
    while True:
        page = await call(
            backends.registry.ListIntegrationConfigs,
            registry_pb2.ListIntegrationConfigsRequest(practice_id=caller.practice_id, page_size=100, page_token=token),
        )
        configs.extend(page.configs)
        token = page.next_page_token
        if not token:
            break
    revoked = 0
    for config in configs:
        if config.active:
            await call(
                backends.registry.UpdateIntegrationConfig,
                registry_pb2.UpdateIntegrationConfigRequest(
                    config=registry_pb2.IntegrationConfig(
                        config_id=config.config_id, practice_id=caller.practice_id, active=False
                    ),
                    update_mask=field_mask_pb2.FieldMask(paths=["active"]),
                ),
            )
        await call(
            backends.sync.ApplySchedules,
            sync_pb2.ApplySchedulesRequest(practice_id=caller.practice_id, config_id=config.config_id),
        )
        disconnected = await call(
            backends.connection.Disconnect, connection_pb2.DisconnectRequest(config_id=config.config_id)
        )
        revoked += int(disconnected.revoked_at_vendor)
    credentials = await call(
        backends.connection.ShredPractice, connection_pb2.ShredPracticeRequest(practice_id=caller.practice_id)
    )
    records = await call(backends.sync.ShredPractice, sync_pb2.ShredPracticeRequest(practice_id=caller.practice_id))
    return {
        "configs_deactivated": len(configs),
        "tokens_revoked_at_vendor": revoked,
        "data_keys_destroyed": credentials.keys_destroyed + records.keys_destroyed,
        "blind_indexes_deleted": records.indexes_deleted,
    }
