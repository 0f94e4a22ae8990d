"""The API Zapier calls (services/adapters/zapier/README.md): REST hook subscribe / unsubscribe,
perform-list samples, actions, and the admin endpoints that issue Zapier's API keys.

Zapier is not a JWT user: it presents the key Concord issued (``X-API-Key``), and the connection
service says which practice and config the key belongs to. The request then runs as a caller of
that practice with the narrow ``staff`` role, so every service's practice check still applies."""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Query, Request, Response
from google.protobuf import struct_pb2
from pydantic import BaseModel, Field

from libs import minimum_necessary
from libs.errors import InvalidArgument, Unauthenticated
from libs.grpc_client import call
from libs.identity import Caller, set_caller
from libs.protos.concord.common.v1 import common_pb2
from libs.protos.concord.connection.v1 import connection_pb2
from libs.protos.concord.mapping.v1 import mapping_pb2
from libs.protos.concord.sync.v1 import sync_pb2
from services.gateway.auth import require
from services.gateway.deps import (
    Backends,
    BackendsDep,
    CallerDep,
    config_for,
    find_config,
    find_config_or_none,
    time_or_none,
)

ZAPIER = "zapier"
ZAPIER_ROLE = "staff"
SAMPLE_SIZE = 50

router = APIRouter(tags=["zapier"])


async def authenticate_zapier(
    request: Request,
    backends: BackendsDep,
    x_api_key: Annotated[str | None, Header()] = None,
    authorization: Annotated[str | None, Header()] = None,
) -> Caller:
    """The API key Concord issued (X-API-Key) or an access token of Concord's OAuth server
    (``Authorization: Bearer``, services/gateway/zapier_oauth.py)."""
    if x_api_key:
        key = (
            await call(
                backends.connection.AuthenticateInboundKey,
                connection_pb2.AuthenticateInboundKeyRequest(api_key=x_api_key),
            )
        ).key
        user_id, practice_id, config_id = f"zapier:{key.key_id}", key.practice_id, key.config_id
    elif authorization and authorization[:7].lower() == "bearer ":
        bearer = await call(
            backends.connection.AuthenticateIssuedAccessToken,
            connection_pb2.AuthenticateIssuedAccessTokenRequest(access_token=authorization[7:].strip()),
        )
        user_id, practice_id, config_id = f"zapier-oauth:{bearer.client_id}", bearer.practice_id, bearer.config_id
    else:
        raise Unauthenticated(
            "send the API key Concord issued in X-API-Key or an OAuth access token as Bearer",
            reason="API_KEY_MISSING",
        )
    caller = Caller(
        user_id=user_id,
        practice_id=practice_id,
        role=ZAPIER_ROLE,
        ip_address=request.client.host if request.client else "",
        user_agent=request.headers.get("user-agent", ""),
        request_id=request.headers.get("x-request-id") or uuid.uuid4().hex,
    )
    set_caller(caller)
    request.state.zapier_config_id = config_id
    return caller


ZapierDep = Annotated[Caller, Depends(authenticate_zapier)]


def _config_id(request: Request) -> str:
    return request.state.zapier_config_id


class KeyIn(BaseModel):
    label: str = Field("zapier", min_length=1, max_length=200)


class HookIn(BaseModel):
    target_url: str = Field(min_length=8, max_length=2048)
    event: str = Field(min_length=1, max_length=64)


# --- admin: the keys Zapier uses ------------------------------------------------------------------


@router.post("/integrations/zapier/keys", status_code=201, summary="Issue an API key for Zapier (shown once)")
async def create_key(caller: CallerDep, backends: BackendsDep, body: KeyIn | None = None) -> dict[str, Any]:
    require(caller, "integration.manage")
    config = await config_for(backends, caller, ZAPIER)
    created = await call(
        backends.connection.CreateInboundKey,
        connection_pb2.CreateInboundKeyRequest(config_id=config.config_id, label=(body or KeyIn()).label),
    )
    return {"key_id": created.key.key_id, "api_key": created.api_key, "config_id": config.config_id}


@router.get("/integrations/zapier/keys", summary="The practice's Zapier API keys (never a key)")
async def list_keys(
    caller: CallerDep, backends: BackendsDep, page_size: int = Query(50, ge=1, le=500), page_token: str = ""
) -> dict[str, Any]:
    require(caller, "integration.manage")
    config = await find_config_or_none(backends, caller, ZAPIER)
    if config is None:
        return {"keys": [], "next_page_token": ""}
    listed = await call(
        backends.connection.ListInboundKeys,
        connection_pb2.ListInboundKeysRequest(config_id=config.config_id, page_size=page_size, page_token=page_token),
    )
    return {
        "keys": [
            {
                "id": k.key_id,
                "label": k.label,
                "created_at": time_or_none(k, "create_time"),
                "last_used_at": time_or_none(k, "last_use_time"),
            }
            for k in listed.keys
        ],
        "next_page_token": listed.next_page_token,
    }


@router.delete("/integrations/zapier/keys/{key_id}", status_code=204, summary="Revoke a Zapier API key")
async def revoke_key(key_id: str, caller: CallerDep, backends: BackendsDep) -> Response:
    require(caller, "integration.manage")
    config = await find_config(backends, caller, ZAPIER)
    await call(
        backends.connection.RevokeInboundKey,
        connection_pb2.RevokeInboundKeyRequest(config_id=config.config_id, key_id=key_id),
    )
    return Response(status_code=204)


# --- what Zapier calls ------------------------------------------------------------------------------


@router.get("/zapier/me", summary="Zapier's auth test")
async def me(caller: ZapierDep, request: Request) -> dict[str, str]:
    return {"practice_id": caller.practice_id, "config_id": _config_id(request)}


@router.post("/zapier/hooks", status_code=201, summary="Subscribe a REST hook (a Zap was turned on)")
async def subscribe(body: HookIn, caller: ZapierDep, request: Request, backends: BackendsDep) -> dict[str, Any]:
    require(caller, "patient.read")
    created = await call(
        backends.connection.CreateHookSubscription,
        connection_pb2.CreateHookSubscriptionRequest(
            config_id=_config_id(request), event=body.event.replace("_", "."), target_url=body.target_url
        ),
    )
    subscription = created.subscription
    # The signing secret is Zapier's to keep in subscribeData; a Zap step can check deliveries with it.
    return {
        "id": subscription.subscription_id,
        "event": subscription.event,
        "signing_secret": subscription.signing_secret,
    }


@router.delete("/zapier/hooks/{subscription_id}", summary="Unsubscribe a REST hook (a Zap was turned off)")
async def unsubscribe(subscription_id: str, caller: ZapierDep, request: Request, backends: BackendsDep) -> dict:
    await call(
        backends.connection.DeleteHookSubscription,
        connection_pb2.DeleteHookSubscriptionRequest(config_id=_config_id(request), subscription_id=subscription_id),
    )
    return {"status": "unsubscribed"}


async def _recent(backends: Backends, caller: Caller, entity_type: int) -> list[tuple[dict, Any]]:
    listed = await call(
        backends.sync.ListRecords,
        sync_pb2.ListRecordsRequest(practice_id=caller.practice_id, entity_type=entity_type, page_size=500),
    )
    records = [(json.loads(r.resource_json), r) for r in listed.records]
    records.sort(key=lambda pair: (pair[1].update_time.ToDatetime(), pair[1].record_id), reverse=True)
    return records[:SAMPLE_SIZE]


@router.get("/zapier/patients", summary="perform-list: recent patients, newest first")
async def recent_patients(caller: ZapierDep, request: Request, backends: BackendsDep) -> list[dict[str, Any]]:
    require(caller, "patient.read")
    recent = await _recent(backends, caller, common_pb2.ENTITY_TYPE_PATIENT)
    if not recent:
        return []
    mapped = await call(
        backends.mapping.MapToVendor,
        mapping_pb2.MapToVendorRequest(
            integration_type=ZAPIER,
            config_id=_config_id(request),
            entity_type=common_pb2.ENTITY_TYPE_PATIENT,
            resource_jsons=[row.resource_json for _, row in recent],
        ),
    )
    samples = []
    for (_, row), result in zip(recent, mapped.results, strict=True):
        if result.errors or result.withheld:  # withheld: minimum necessary (no BAA with Zapier yet)
            continue
        record = dict(result.vendor_record.items())
        # One id per version: Zapier's dedupe then triggers once for each new or changed patient.
        samples.append({"id": f"{row.record_id}:{row.version}", "event": "patient.updated", **record})
    return samples


async def _appointment_fields(backends: Backends, request: Request) -> frozenset[str] | None:
    """Minimum necessary for samples not mapped through MapToVendor: the appointment fields the
    Zapier config may send (libs/minimum_necessary.py); None when nothing restricts them."""
    policy = await minimum_necessary.config_policy(backends.registry, _config_id(request))
    return policy.allowed(minimum_necessary.APPOINTMENT)


@router.get("/zapier/appointments", summary="perform-list: recent appointments, newest first")
async def recent_appointments(caller: ZapierDep, request: Request, backends: BackendsDep) -> list[dict[str, Any]]:
    require(caller, "patient.read")
    allowed = await _appointment_fields(backends, request)
    if allowed is not None and "patient" not in allowed:
        return []  # an appointment of nobody is no sample; nothing withheld is named by value
    samples = []
    for resource, row in await _recent(backends, caller, common_pb2.ENTITY_TYPE_APPOINTMENT):
        patient = next(
            (
                p["actor"]["reference"].removeprefix("Patient/")
                for p in resource.get("participant", [])
                if str((p.get("actor") or {}).get("reference", "")).startswith("Patient/")
            ),
            None,
        )
        status = resource.get("status")
        samples.append(
            {
                "id": f"{row.record_id}:{row.version}",
                "event": "appointment.cancelled" if status == "cancelled" else "appointment.booked",
                "appointment_id": row.record_id,
                "patient_id": patient,
                "status": status,
                "start": resource.get("start"),
                "end": resource.get("end"),
                "updated_at": (resource.get("meta") or {}).get("lastUpdated"),
            }
        )
        if allowed is not None:
            for name in ("status", "start", "end"):
                if name not in allowed:
                    samples[-1][name] = None
    return samples


async def _apply(
    backends: Backends, caller: Caller, request: Request, entity_type: int, record: dict[str, Any]
) -> sync_pb2.ApplyVendorRecordsResponse:
    message = struct_pb2.Struct()
    try:
        message.update(record)
    except (ValueError, TypeError):
        raise InvalidArgument("the body must be a JSON object of fields", field="body", reason="INVALID_BODY") from None
    return await call(
        backends.sync.ApplyVendorRecords,
        sync_pb2.ApplyVendorRecordsRequest(
            practice_id=caller.practice_id, config_id=_config_id(request), entity_type=entity_type, records=[message]
        ),
    )


def _outcome(applied: sync_pb2.ApplyVendorRecordsResponse, response: Response, id_name: str) -> dict[str, Any]:
    record = applied.records[0]
    if record.review_id:  # it may be an existing patient: a person decides (GET /review-items/{id})
        response.status_code = 202
        return {"status": "held_for_review", "review_id": record.review_id, "external_id": record.external_id}
    if not record.record_id:
        error = applied.run.errors[0] if applied.run.errors else None
        raise InvalidArgument(
            error.message if error else "the record could not be applied",
            field=error.field if error else "body",
            reason=error.reason if error else "RECORD_REJECTED",
        )
    response.status_code = 201 if record.created else 200
    return {id_name: record.record_id, "external_id": record.external_id, "created": record.created}


def _action(entity_type: int, id_name: str):  # noqa: ANN202
    async def act(
        record: Annotated[dict[str, Any], Body()],
        caller: ZapierDep,
        request: Request,
        response: Response,
        backends: BackendsDep,
    ) -> dict[str, Any]:
        require(caller, "patient.write")
        return _outcome(await _apply(backends, caller, request, entity_type, record), response, id_name)

    return act


router.post("/zapier/patients", summary="Action: create or update a patient (matched on external_id)")(
    _action(common_pb2.ENTITY_TYPE_PATIENT, "patient_id")
)
router.post("/zapier/appointments", summary="Action: book an appointment for a patient Zapier knows")(
    _action(common_pb2.ENTITY_TYPE_APPOINTMENT, "appointment_id")
)


@router.get("/zapier/hooks", summary="The practice's REST hook subscriptions (no URLs)", include_in_schema=True)
async def list_hooks(
    caller: CallerDep, backends: BackendsDep, page_size: int = Query(50, ge=1, le=500), page_token: str = ""
) -> dict[str, Any]:
    require(caller, "integration.read")
    config = await find_config_or_none(backends, caller, ZAPIER)
    if config is None:
        return {"subscriptions": [], "next_page_token": ""}
    listed = await call(
        backends.connection.ListHookSubscriptions,
        connection_pb2.ListHookSubscriptionsRequest(
            config_id=config.config_id, page_size=page_size, page_token=page_token
        ),
    )
    return {
        "subscriptions": [
            {"id": s.subscription_id, "event": s.event, "created_at": s.create_time.ToJsonString()}
            for s in listed.subscriptions
        ],
        "next_page_token": listed.next_page_token,
    }
