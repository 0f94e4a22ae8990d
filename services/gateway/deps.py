"""What every gateway router shares: the gRPC backends, the authenticated caller, the vendor slug
and the practice's config for it. Routers take them as FastAPI dependencies, so an area of the API
is one module with an ``APIRouter`` that ``create_app`` includes."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from google.protobuf import field_mask_pb2
from google.protobuf.message import Message

from libs.errors import NotFound, PermissionDenied
from libs.grpc_client import call
from libs.identity import Caller, set_caller
from libs.protos.concord.audit.v1 import audit_pb2_grpc
from libs.protos.concord.common.v1 import common_pb2
from libs.protos.concord.connection.v1 import connection_pb2_grpc
from libs.protos.concord.mapping.v1 import mapping_pb2_grpc
from libs.protos.concord.registry.v1 import registry_pb2, registry_pb2_grpc
from libs.protos.concord.sync.v1 import sync_pb2, sync_pb2_grpc
from libs.settings import Settings
from services.gateway.auth import access_level, caller_from_claims, require

# The seed's URLs say "hl" for GoHighLevel; the registry calls it "ghl". Every other integration
# type in the registry is its own slug.
VENDOR_ALIASES = {"hl": "ghl"}
SLUG = re.compile(r"^[a-z][a-z0-9_-]{1,31}$")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass
class Backends:
    registry: registry_pb2_grpc.RegistryServiceStub
    connection: connection_pb2_grpc.ConnectionServiceStub
    sync: sync_pb2_grpc.SyncServiceStub
    audit: audit_pb2_grpc.AuditServiceStub
    mapping: mapping_pb2_grpc.MappingServiceStub


ENUM_PREFIX = {
    "sync_direction": ("SYNC_DIRECTION_", common_pb2.SyncDirection),
    "sync_frequency": ("SYNC_FREQUENCY_", common_pb2.SyncFrequency),
    "conflict_policy": ("CONFLICT_POLICY_", common_pb2.ConflictPolicy),
}


def enum_in(kind: str, value: str) -> int:
    prefix, enum = ENUM_PREFIX[kind]
    return enum.Value(prefix + value.upper())


def enum_out(kind: str, value: int) -> str:
    prefix, enum = ENUM_PREFIX[kind]
    return enum.Name(value).removeprefix(prefix).lower()


def time_or_none(message: Message, field: str) -> str | None:
    """A Timestamp field as RFC 3339 JSON, or None when unset (never the epoch)."""
    return getattr(message, field).ToJsonString() if message.HasField(field) else None


def run_json(run: sync_pb2.SyncRun) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "config_id": run.config_id,
        "integration_type": run.integration_type,
        "direction": enum_out("sync_direction", run.direction),
        "status": sync_pb2.SyncRunStatus.Name(run.status).removeprefix("SYNC_RUN_STATUS_").lower(),
        "records_processed": run.records_processed,
        "records_succeeded": run.records_succeeded,
        "records_failed": run.records_failed,
        "records_created": run.records_created,
        "records_updated": run.records_updated,
        "vendor_requests": run.vendor_requests,
        "errors": [{"record": e.record_ref, "field": e.field, "reason": e.reason} for e in run.errors],
        "error_message": run.error_message,
        "trace_id": run.trace_id,
        "started_at": time_or_none(run, "start_time"),
        "completed_at": time_or_none(run, "end_time"),
    }


async def authenticate(request: Request, authorization: Annotated[str | None, Header()] = None) -> Caller:
    """Verifies the bearer JWT and binds the caller for every gRPC call this request makes. A
    read_only caller is refused any unsafe method here, whatever permission the route asks."""
    claims = await request.app.state.verifier.verify_async(authorization)
    caller = caller_from_claims(
        claims,
        request.client.host if request.client else "",
        request.headers.get("user-agent", ""),
        request.headers.get("x-request-id") or uuid.uuid4().hex,
    )
    set_caller(caller)
    if access_level(caller) == "read_only" and request.method not in SAFE_METHODS:
        raise PermissionDenied("read-only access may not change anything", reason="READ_ONLY_ACCESS")
    return caller


def backends_of(request: Request) -> Backends:
    return request.app.state.backends


def settings_of(request: Request) -> Settings:
    return request.app.state.settings


CallerDep = Annotated[Caller, Depends(authenticate)]
BackendsDep = Annotated[Backends, Depends(backends_of)]
SettingsDep = Annotated[Settings, Depends(settings_of)]


async def resolve_vendor(backends: Backends, slug: str) -> str:
    """The registry's integration type for a URL slug; unknown slugs are 404 UNKNOWN_INTEGRATION."""
    integration_type = VENDOR_ALIASES.get(slug, slug)
    if not SLUG.match(integration_type):
        raise NotFound("unknown integration", reason="UNKNOWN_INTEGRATION")
    try:
        await call(
            backends.registry.GetIntegrationDefinition,
            registry_pb2.GetIntegrationDefinitionRequest(integration_type=integration_type),
        )
    except NotFound:
        raise NotFound("unknown integration", reason="UNKNOWN_INTEGRATION") from None
    return integration_type


async def find_config(backends: Backends, caller: Caller, integration_type: str) -> registry_pb2.IntegrationConfig:
    response = await call(
        backends.registry.FindIntegrationConfig,
        registry_pb2.FindIntegrationConfigRequest(practice_id=caller.practice_id, integration_type=integration_type),
    )
    return response.config


async def find_config_or_none(
    backends: Backends, caller: Caller, integration_type: str
) -> registry_pb2.IntegrationConfig | None:
    """The practice's config for the vendor, None when it has none (its lists are then empty)."""
    try:
        return await find_config(backends, caller, integration_type)
    except NotFound:
        return None


async def config_for(backends: Backends, caller: Caller, integration_type: str) -> registry_pb2.IntegrationConfig:
    """The practice's config for the vendor, made (active, defaults) on first connection."""
    try:
        return await find_config(backends, caller, integration_type)
    except NotFound:
        request = registry_pb2.CreateIntegrationConfigRequest(
            config=registry_pb2.IntegrationConfig(
                practice_id=caller.practice_id, integration_type=integration_type, active=True
            )
        )
        return (await call(backends.registry.CreateIntegrationConfig, request)).config


async def replace_options(
    backends: Backends, caller: Caller, config: registry_pb2.IntegrationConfig, group: str, value: Any
) -> registry_pb2.IntegrationConfig:
    """Replaces one group of the config's vendor options (``marketing``, ``booking``), keeping the
    others: the registry's update mask replaces ``options`` whole."""
    options = registry_pb2.VendorOptions()
    options.CopyFrom(config.options)
    getattr(options, group).CopyFrom(value)
    changes = registry_pb2.IntegrationConfig(
        config_id=config.config_id, practice_id=caller.practice_id, options=options
    )
    request = registry_pb2.UpdateIntegrationConfigRequest(
        config=changes, update_mask=field_mask_pb2.FieldMask(paths=["options"])
    )
    return (await call(backends.registry.UpdateIntegrationConfig, request)).config


async def start_sync_run(
    backends: Backends, caller: Caller, slug: str, entity_type: int, direction: str | None
) -> dict[str, Any]:
    """``POST /integrations/{slug}/{entity}/sync``: a run of one entity with the vendor's config,
    in the direction asked (else the config's)."""
    require(caller, "sync.start")
    config = await find_config(backends, caller, await resolve_vendor(backends, slug))
    response = await call(
        backends.sync.StartSync,
        sync_pb2.StartSyncRequest(
            practice_id=caller.practice_id,
            config_id=config.config_id,
            entity_type=entity_type,
            direction=enum_in("sync_direction", direction) if direction else 0,
        ),
    )
    return run_json(response.run)
