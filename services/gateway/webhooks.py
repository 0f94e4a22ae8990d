"""Real-time changes vendors push to Concord. Salesforce Change Data Capture: each change event
starts an incremental pull of that entity for the config, so the change reaches the hub through the
same reconcile path as a scheduled pull (the durable webhook inbox comes with issue 5).

The events arrive from a CDC subscriber (the Salesforce sandbox's stand-in for a Pub/Sub API
client, or a relay in production) that presents a key Concord issued for the config
(``POST /integrations/salesforce/realtime``). Events of Concord's own writes are known by their
``changeOrigin`` and dropped (echo suppression).

Every event accepted is recorded by its replay id in the sync service (per config), so a
redelivered one starts nothing, and a subscriber that (re)connects asks where to resume
(``GET /webhooks/salesforce/cdc/replay``: Pub/Sub's ReplayPreset CUSTOM after the last accepted
replay id, LATEST when there is none). When Salesforce no longer holds that replay id (its 72-hour
retention passed), the subscriber says so (``POST /webhooks/salesforce/cdc/resync``) and Concord
pulls each entity in full instead."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Request
from fastapi.responses import JSONResponse
from google.protobuf import duration_pb2, json_format, timestamp_pb2
from opentelemetry import metrics
from pydantic import BaseModel, ConfigDict, Field

from libs.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied, Unauthenticated
from libs.grpc_client import call
from libs.identity import Caller, set_caller
from libs.protos.concord.common.v1 import common_pb2
from libs.protos.concord.connection.v1 import connection_pb2
from libs.protos.concord.registry.v1 import registry_pb2
from libs.protos.concord.sync.v1 import sync_pb2
from libs.webhooks import ZENOTI_GUEST_EVENTS
from services.gateway import problems
from services.gateway.auth import require
from services.gateway.deps import BackendsDep, CallerDep, SettingsDep, find_config

SALESFORCE = "salesforce"
CDC_KEY_LABEL = "salesforce-cdc"
APPOINTMENT_OBJECT_PREFIX = "SALESFORCE_APPOINTMENT_OBJECT_"
# A replay id is opaque (Pub/Sub: bytes, base64 in JSON; CometD: a number).
MAX_REPLAY_ID = 128

log = logging.getLogger("concord.gateway.webhooks")
_events = metrics.get_meter("concord.gateway").create_counter(
    "concord.cdc.events", description="Salesforce change events received, by outcome"
)

_webhooks = metrics.get_meter("concord.gateway").create_counter(
    "concord.webhooks", description="Vendor webhook deliveries accepted, by vendor"
)

router = APIRouter(tags=["webhooks"])


@router.post("/integrations/salesforce/realtime", status_code=201, summary="Turn on Change Data Capture")
async def enable_realtime(caller: CallerDep, backends: BackendsDep, settings: SettingsDep) -> dict[str, Any]:
    """Issues the key a CDC subscriber presents and says where it sends events and asks where to
    resume. The subscription itself is made at the subscriber (a Pub/Sub API client; the sandbox's
    /_sandbox/cdc/subscriptions)."""
    require(caller, "integration.manage")
    config = await find_config(backends, caller, SALESFORCE)
    # Events start pulls, which need the org's connection; and a key issued to a config that has
    # none would stand in for it (the connection service connects inbound-only configs by key).
    connection = (
        await call(backends.connection.GetConnection, connection_pb2.GetConnectionRequest(config_id=config.config_id))
    ).connection
    if connection.status != connection_pb2.CONNECTION_STATUS_CONNECTED:
        raise FailedPrecondition("connect Salesforce before turning on Change Data Capture", reason="NOT_CONNECTED")
    definition = await _cdc_definition(backends)
    created = await call(
        backends.connection.CreateInboundKey,
        connection_pb2.CreateInboundKeyRequest(config_id=config.config_id, label=CDC_KEY_LABEL),
    )
    base = f"{settings.public_base_url}/webhooks/salesforce/cdc"
    return {
        "config_id": config.config_id,
        "key_id": created.key.key_id,
        "url": base,
        "headers": {"X-API-Key": created.api_key},
        "channel": definition.get("channel", "/data/ChangeEvents"),
        "replay_url": f"{base}/replay",
        "resync_url": f"{base}/resync",
    }


async def _definition(backends: BackendsDep) -> dict[str, Any]:
    definition = (
        await call(
            backends.registry.GetIntegrationDefinition,
            registry_pb2.GetIntegrationDefinitionRequest(integration_type=SALESFORCE),
        )
    ).definition
    return json_format.MessageToDict(definition.extra)


async def _cdc_definition(backends: BackendsDep) -> dict[str, Any]:
    return (await _definition(backends)).get("cdc", {})


async def _subscriber(
    request: Request, backends: BackendsDep, api_key: str | None
) -> tuple[connection_pb2.InboundKey, registry_pb2.IntegrationConfig]:
    """The CDC subscriber's key and the Salesforce config it was issued for; binds the caller."""
    if not api_key:
        raise Unauthenticated("send the key Concord issued in X-API-Key", reason="API_KEY_MISSING")
    key = (
        await call(
            backends.connection.AuthenticateInboundKey,
            connection_pb2.AuthenticateInboundKeyRequest(api_key=api_key),
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
    return key, config


def _header(event: Any) -> dict[str, Any]:
    header = event.get("payload", {}).get("ChangeEventHeader") if isinstance(event, dict) else None
    if not isinstance(header, dict) or not isinstance(header.get("entityName"), str):
        raise InvalidArgument(
            "the body must be a change event with payload.ChangeEventHeader",
            field="payload.ChangeEventHeader",
            reason="INVALID_CHANGE_EVENT",
        )
    return header


def _deleted_ids(header: dict[str, Any]) -> list[str]:
    """The records a DELETE (or GAP_DELETE) change event names: they reach the hub as tombstones
    through the config's inbox, since a pull never sees a deleted record."""
    if header.get("changeType") not in ("DELETE", "GAP_DELETE"):
        return []
    ids = header.get("recordIds")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) and 0 < len(i) <= 64 for i in ids):
        raise InvalidArgument(
            "a delete event names its records in ChangeEventHeader.recordIds",
            field="payload.ChangeEventHeader.recordIds",
            reason="INVALID_CHANGE_EVENT",
        )
    return ids


def _replay_id(event: dict[str, Any]) -> str:
    value = (event.get("event") or {}).get("replayId") if isinstance(event.get("event"), dict) else None
    if isinstance(value, bool) or not isinstance(value, int | str) or not 0 < len(str(value)) <= MAX_REPLAY_ID:
        raise InvalidArgument(
            "the change event carries no event.replayId", field="event.replayId", reason="INVALID_CHANGE_EVENT"
        )
    return str(value)


def _commit_time(header: dict[str, Any]) -> timestamp_pb2.Timestamp | None:
    millis = header.get("commitTimestamp")
    if isinstance(millis, bool) or not isinstance(millis, int) or millis <= 0:
        return None
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(datetime.fromtimestamp(millis / 1000, UTC))
    return stamp


def _entity(extra: dict[str, Any], config: registry_pb2.IntegrationConfig, sobject: str) -> int:
    """The hub entity a change to ``sobject`` is for this config, or 0 (ignored): an appointment
    object counts only when it is the config's choice (extra.appointment_objects)."""
    entity = extra.get("cdc", {}).get("entities", {}).get(sobject)
    if entity is None or common_pb2.EntityType.Value(entity) not in config.enabled_entities:
        return 0
    objects = extra.get("appointment_objects") or {}
    if sobject in objects.values():
        choice = registry_pb2.SalesforceAppointmentObject.Name(config.options.salesforce.appointment_object)
        chosen = objects.get(choice.removeprefix(APPOINTMENT_OBJECT_PREFIX), objects.get("SERVICE_APPOINTMENT"))
        if sobject != chosen:
            return 0
    return common_pb2.EntityType.Value(entity)


def _settle(cdc: dict[str, Any]) -> duration_pb2.Duration:
    # A change is committed when its event is sent, but Salesforce's cursor leaves the last seconds unread.
    return duration_pb2.Duration(seconds=int(cdc.get("settle_seconds", 3)))


def _retry_later(request: Request, reason: str, what: str) -> JSONResponse:
    # The running pull may have read before this change committed: have the sender retry, so a
    # pull that starts after it is sure to see it.
    answer = problems.problem(
        503, f"a pull of this entity is running; send the {what} again", problems.instance_of(request), reason=reason
    )
    answer.headers["Retry-After"] = "1"
    return answer


@router.post("/webhooks/salesforce/cdc", summary="Salesforce Change Data Capture events")
async def change_event(
    event: Annotated[dict[str, Any], Body()],
    request: Request,
    backends: BackendsDep,
    x_api_key: Annotated[str | None, Header()] = None,
) -> JSONResponse:
    key, config = await _subscriber(request, backends, x_api_key)
    header = _header(event)
    replay_id = _replay_id(event)
    extra = await _definition(backends)
    cdc = extra.get("cdc", {})
    origin = str(header.get("changeOrigin", ""))
    echo = bool(cdc.get("call_client")) and origin.endswith(f";client={cdc['call_client']}")
    entity = 0 if echo else _entity(extra, config, header["entityName"])
    accept = sync_pb2.AcceptChangeEventRequest(
        practice_id=key.practice_id,
        config_id=config.config_id,
        replay_id=replay_id,
        entity_type=entity,
        commit_time=_commit_time(header),
        settle=_settle(cdc),
        deleted_ids=_deleted_ids(header) if entity else [],
    )
    try:
        accepted = await call(backends.sync.AcceptChangeEvent, accept)
    except FailedPrecondition as error:
        if error.reason != "SYNC_ALREADY_RUNNING":
            raise
        _events.add(1, {"outcome": "retry_later"})
        return _retry_later(request, error.reason, "event")
    outcome = sync_pb2.ChangeEventOutcome.Name(accepted.outcome).removeprefix("CHANGE_EVENT_OUTCOME_").lower()
    if outcome == "duplicate":
        _events.add(1, {"outcome": "duplicate"})
        return JSONResponse({"status": "duplicate", "replay_id": replay_id}, status_code=200)
    if echo:
        _events.add(1, {"outcome": "echo"})
        return JSONResponse({"status": "suppressed", "reason": "CONCORD_ORIGIN"}, status_code=200)
    if not entity:
        _events.add(1, {"outcome": "ignored"})
        return JSONResponse({"status": "ignored", "entity": header["entityName"]}, status_code=200)
    _events.add(1, {"outcome": outcome})
    return JSONResponse({"status": outcome, "run_id": accepted.run.run_id or None}, status_code=202)


@router.get("/webhooks/salesforce/cdc/replay", summary="Where a CDC subscription resumes")
async def replay_position(
    request: Request, backends: BackendsDep, x_api_key: Annotated[str | None, Header()] = None
) -> dict[str, Any]:
    """Pub/Sub's Subscribe start for this config: CUSTOM after the last replay id Concord accepted,
    or LATEST when it has none (first subscription, or after a resync)."""
    key, config = await _subscriber(request, backends, x_api_key)
    position = await call(
        backends.sync.GetChangeEventPosition,
        sync_pb2.GetChangeEventPositionRequest(practice_id=key.practice_id, config_id=config.config_id),
    )
    channel = (await _cdc_definition(backends)).get("channel", "/data/ChangeEvents")
    if not position.replay_id:
        return {"channel": channel, "replay_preset": "LATEST"}
    return {"channel": channel, "replay_preset": "CUSTOM", "replay_id": position.replay_id}


class ResyncIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # What Salesforce answered the subscription with, e.g.
    # sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted (not PHI; logged).
    error_code: str = Field("", max_length=200, pattern=r"^[A-Za-z0-9._-]*$")


@router.post("/webhooks/salesforce/cdc/resync", status_code=202, summary="The subscriber lost its replay position")
async def resync(
    request: Request,
    backends: BackendsDep,
    body: ResyncIn | None = None,
    x_api_key: Annotated[str | None, Header()] = None,
) -> Any:
    """Salesforce no longer holds the replay id Concord gave (older than its retention): the changes
    since cannot be replayed, so each entity the config receives events for is pulled in full and
    the position forgotten. Send it before resubscribing at LATEST: the full pulls begin once the
    settle window has passed, so they read every change committed until the new subscription."""
    key, config = await _subscriber(request, backends, x_api_key)
    cdc = await _cdc_definition(backends)
    entities = sorted({common_pb2.EntityType.Value(e) for e in cdc.get("entities", {}).values()})
    wanted = [e for e in entities if e in config.enabled_entities]
    log.info(
        "a CDC subscriber of config %s could not resume (%s): full pulls of %d entities",
        config.config_id,
        (body.error_code if body else "") or "unspecified",
        len(wanted),
    )
    try:
        started = await call(
            backends.sync.ResyncChangeEvents,
            sync_pb2.ResyncChangeEventsRequest(
                practice_id=key.practice_id,
                config_id=config.config_id,
                entity_types=wanted,
                settle=_settle(cdc),
            ),
        )
    except FailedPrecondition as error:
        if error.reason != "SYNC_ALREADY_RUNNING":
            raise
        return _retry_later(request, error.reason, "resync")
    _events.add(1, {"outcome": "resync"})
    return {"status": "full_pull_started", "replay_preset": "LATEST", "run_ids": [r.run_id for r in started.runs]}


ZENOTI = "zenoti"


@router.post("/integrations/zenoti/webhooks", summary="Where and how Zenoti sends this practice's webhooks")
async def zenoti_webhook_setup(caller: CallerDep, backends: BackendsDep, settings: SettingsDep) -> dict[str, Any]:
    """What to enter where the practice registers Concord's webhook in Zenoti: the URL (it names
    the config) and the signing secret (Concord's own, derived: asking again gives the same one).
    Events reach the hub while the config's patients sync in real time."""
    require(caller, "integration.manage")
    config = await find_config(backends, caller, ZENOTI)
    secret = await call(
        backends.sync.GetWebhookSecret,
        sync_pb2.GetWebhookSecretRequest(practice_id=caller.practice_id, config_id=config.config_id),
    )
    return {
        "config_id": config.config_id,
        "url": f"{settings.public_base_url}/webhooks/zenoti/{config.config_id}",
        "secret": secret.secret,
        "signature_header": "X-Zenoti-Signature",
        "events": sorted(ZENOTI_GUEST_EVENTS),
    }


@router.post("/webhooks/zenoti/{config_id}", summary="A Zenoti webhook delivery (signed with the config's secret)")
async def zenoti_webhook(config_id: str, request: Request, backends: BackendsDep) -> dict[str, Any]:
    """No bearer token: the signature with the config's secret is the authentication (401 when it
    does not verify, or the URL names no Zenoti config: the same answer)."""
    return await _accept(request, backends, ZENOTI, config_id[:64])


# Vendors whose webhooks Concord takes (their adapter has verify_webhook), by the slug in the URL.
SIGNED_WEBHOOKS = {"ghl": "ghl"}
MAX_WEBHOOK_BODY = 256 * 1024


@router.post("/webhooks/{vendor}", summary="A vendor's signed webhook delivery (GoHighLevel)")
async def vendor_webhook(vendor: str, request: Request, backends: BackendsDep) -> dict[str, Any]:
    """No bearer token: the vendor's signature is the authentication, checked by its adapter. A
    delivery that does not verify is 401; one that does is 200 with what became of its events (a
    redelivery is counted as a duplicate and changes nothing), so the vendor stops retrying."""
    integration_type = SIGNED_WEBHOOKS.get(vendor)
    if integration_type is None:
        raise NotFound("Concord takes no webhooks from that vendor", reason="UNKNOWN_WEBHOOK_VENDOR")
    return await _accept(request, backends, integration_type)


async def _accept(
    request: Request, backends: BackendsDep, integration_type: str, config_id: str = ""
) -> dict[str, Any]:
    body = await request.body()
    if len(body) > MAX_WEBHOOK_BODY:
        raise InvalidArgument("the delivery is too large", field="body", reason="BODY_TOO_LARGE")
    headers = {name.lower(): value for name, value in request.headers.items()}
    accepted = await call(
        backends.sync.AcceptWebhook,
        sync_pb2.AcceptWebhookRequest(
            integration_type=integration_type, headers=headers, body=body, config_id=config_id
        ),
    )
    _webhooks.add(1, {"vendor": integration_type, "outcome": "accepted"})
    return {
        "events": accepted.events,
        "accepted": accepted.accepted,
        "duplicates": accepted.duplicates,
        "ignored": accepted.ignored,
    }
