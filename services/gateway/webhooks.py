"""Real-time changes vendors push to Concord. Salesforce Change Data Capture: each change event
starts an incremental pull of that entity for the config, so the change reaches the hub through the
same reconcile path as a scheduled pull (the durable webhook inbox comes with issue 5).

The events arrive from a CDC subscriber (the Salesforce sandbox's stand-in for a Pub/Sub API
client, or a relay in production) that presents a key Concord issued for the config
(``POST /integrations/salesforce/realtime``). Events of Concord's own writes are known by their
``changeOrigin`` and dropped (echo suppression)."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Request
from fastapi.responses import JSONResponse
from google.protobuf import duration_pb2, json_format
from opentelemetry import metrics

from libs.errors import FailedPrecondition, InvalidArgument, PermissionDenied, Unauthenticated
from libs.grpc_client import call
from libs.identity import Caller, set_caller
from libs.protos.concord.common.v1 import common_pb2
from libs.protos.concord.connection.v1 import connection_pb2
from libs.protos.concord.registry.v1 import registry_pb2
from libs.protos.concord.sync.v1 import sync_pb2
from services.gateway import problems
from services.gateway.auth import require
from services.gateway.deps import BackendsDep, CallerDep, SettingsDep, find_config

SALESFORCE = "salesforce"
CDC_KEY_LABEL = "salesforce-cdc"

log = logging.getLogger("concord.gateway.webhooks")
_events = metrics.get_meter("concord.gateway").create_counter(
    "concord.cdc.events", description="Salesforce change events received, by outcome"
)

router = APIRouter(tags=["webhooks"])


@router.post("/integrations/salesforce/realtime", status_code=201, summary="Turn on Change Data Capture")
async def enable_realtime(caller: CallerDep, backends: BackendsDep, settings: SettingsDep) -> dict[str, Any]:
    """Issues the key a CDC subscriber presents and says where it sends events. The subscription
    itself is made at the subscriber (a Pub/Sub API client; the sandbox's /_sandbox/cdc/subscriptions)."""
    require(caller, "integration.manage")
    config = await find_config(backends, caller, SALESFORCE)
    definition = await _cdc_definition(backends)
    created = await call(
        backends.connection.CreateInboundKey,
        connection_pb2.CreateInboundKeyRequest(config_id=config.config_id, label=CDC_KEY_LABEL),
    )
    return {
        "config_id": config.config_id,
        "key_id": created.key.key_id,
        "url": f"{settings.public_base_url}/webhooks/salesforce/cdc",
        "headers": {"X-API-Key": created.api_key},
        "channel": definition.get("channel", "/data/ChangeEvents"),
    }


async def _cdc_definition(backends: BackendsDep) -> dict[str, Any]:
    definition = (
        await call(
            backends.registry.GetIntegrationDefinition,
            registry_pb2.GetIntegrationDefinitionRequest(integration_type=SALESFORCE),
        )
    ).definition
    return json_format.MessageToDict(definition.extra).get("cdc", {})


def _header(event: Any) -> dict[str, Any]:
    header = event.get("payload", {}).get("ChangeEventHeader") if isinstance(event, dict) else None
    if not isinstance(header, dict) or not isinstance(header.get("entityName"), str):
        raise InvalidArgument(
            "the body must be a change event with payload.ChangeEventHeader",
            field="payload.ChangeEventHeader",
            reason="INVALID_CHANGE_EVENT",
        )
    return header


@router.post("/webhooks/salesforce/cdc", summary="Salesforce Change Data Capture events")
async def change_event(
    event: Annotated[dict[str, Any], Body()],
    request: Request,
    backends: BackendsDep,
    x_api_key: Annotated[str | None, Header()] = None,
) -> JSONResponse:
    if not x_api_key:
        raise Unauthenticated("send the key Concord issued in X-API-Key", reason="API_KEY_MISSING")
    key = (
        await call(
            backends.connection.AuthenticateInboundKey,
            connection_pb2.AuthenticateInboundKeyRequest(api_key=x_api_key),
        )
    ).key
    set_caller(
        Caller(
            user_id=f"salesforce-cdc:{key.key_id}",
            practice_id=key.practice_id,
            role="staff",
            ip_address=request.client.host if request.client else "",
            user_agent=request.headers.get("user-agent", ""),
            request_id=request.headers.get("x-request-id", ""),
        )
    )
    config = (
        await call(
            backends.registry.GetIntegrationConfig,
            registry_pb2.GetIntegrationConfigRequest(config_id=key.config_id),
        )
    ).config
    if config.integration_type != SALESFORCE:
        raise PermissionDenied("this key is not for Salesforce events", reason="WRONG_INTEGRATION")
    header = _header(event)
    cdc = await _cdc_definition(backends)
    origin = str(header.get("changeOrigin", ""))
    if cdc.get("call_client") and origin.endswith(f";client={cdc['call_client']}"):
        _events.add(1, {"outcome": "echo"})
        return JSONResponse({"status": "suppressed", "reason": "CONCORD_ORIGIN"}, status_code=200)
    entity = cdc.get("entities", {}).get(header["entityName"])
    if entity is None or common_pb2.EntityType.Value(entity) not in config.enabled_entities:
        _events.add(1, {"outcome": "ignored"})
        return JSONResponse({"status": "ignored", "entity": header["entityName"]}, status_code=200)
    try:
        started = await call(
            backends.sync.StartSync,
            sync_pb2.StartSyncRequest(
                practice_id=key.practice_id,
                config_id=config.config_id,
                entity_type=common_pb2.EntityType.Value(entity),
                direction=common_pb2.SYNC_DIRECTION_PULL,
                # The change is committed, but Salesforce's cursor leaves the last seconds unread.
                start_delay=duration_pb2.Duration(seconds=int(cdc.get("settle_seconds", 3))),
            ),
        )
    except FailedPrecondition as error:
        if error.reason != "SYNC_ALREADY_RUNNING":
            raise
        # The running pull may have read before this change committed: have the sender retry, so a
        # pull that starts after it is sure to see it.
        _events.add(1, {"outcome": "retry_later"})
        answer = problems.problem(
            503, "a pull of this entity is running; send the event again", request.url.path, reason=error.reason
        )
        answer.headers["Retry-After"] = "1"
        return answer
    _events.add(1, {"outcome": "pull_started"})
    return JSONResponse({"status": "pull_started", "run_id": started.run.run_id}, status_code=202)
