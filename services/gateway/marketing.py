"""The marketing switches of a vendor config (the seed's GHLMarketingIntegration): email and SMS
campaigns, appointment reminders, follow-up sequences, lead scoring. Stored on the registry's
IntegrationConfig.options and validated there per vendor; an unknown switch is a 422 naming it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from google.protobuf import json_format
from pydantic import BaseModel, ConfigDict, Field

from libs.protos.concord.registry.v1 import registry_pb2
from services.gateway.auth import require
from services.gateway.deps import BackendsDep, CallerDep, find_config, replace_options, resolve_vendor

router = APIRouter(tags=["marketing"])
VENDOR_ID = Field("", max_length=200)


class MarketingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")  # an unknown switch is refused, naming it

    email_campaigns: bool = False
    sms_campaigns: bool = False
    appointment_reminders: bool = False
    reminder_workflow_id: str = VENDOR_ID
    follow_up_sequences: bool = False
    follow_up_workflow_id: str = VENDOR_ID
    lead_scoring: bool = False
    lead_score_field: str = VENDOR_ID


def _marketing_json(config: registry_pb2.IntegrationConfig) -> dict[str, Any]:
    switches = json_format.MessageToDict(
        config.options.marketing, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    return {"config_id": config.config_id, **switches}


@router.get("/integrations/{slug}/marketing", summary="The vendor's marketing switches")
async def get_marketing(slug: str, caller: CallerDep, backends: BackendsDep) -> dict[str, Any]:
    require(caller, "integration.read")
    return _marketing_json(await find_config(backends, caller, await resolve_vendor(backends, slug)))


@router.put("/integrations/{slug}/marketing", summary="Replace the vendor's marketing switches")
async def put_marketing(slug: str, body: MarketingIn, caller: CallerDep, backends: BackendsDep) -> dict[str, Any]:
    require(caller, "integration.manage")
    config = await find_config(backends, caller, await resolve_vendor(backends, slug))
    switches = registry_pb2.MarketingOptions(**body.model_dump())
    return _marketing_json(await replace_options(backends, caller, config, "marketing", switches))
