"""The REST API for the frontend (FastAPI, OpenAPI at /docs). It only translates: every rule
lives in a service behind it."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, FastAPI, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from google.protobuf import field_mask_pb2
from joserfc.jwk import KeySet
from pydantic import BaseModel, ConfigDict, Field

from libs.errors import InvalidArgument, NotFound
from libs.grpc_client import call
from libs.identity import Caller
from libs.protos.concord.audit.v1 import audit_pb2
from libs.protos.concord.common.v1 import common_pb2
from libs.protos.concord.connection.v1 import connection_pb2
from libs.protos.concord.registry.v1 import registry_pb2
from libs.protos.concord.sync.v1 import sync_pb2
from libs.settings import Settings
from services.gateway import (
    audit,
    availability,
    catalog,
    dead_letters,
    mappings,
    marketing,
    memberships,
    messaging,
    minimum_necessary,
    offboarding,
    problems,
    reconciliations,
    reviews,
    salesforce,
    webhooks,
    zapier,
    zapier_oauth,
)
from services.gateway.access import patient_view, replacement_for
from services.gateway.auth import TokenVerifier, access_level, require
from services.gateway.deps import (
    ENUM_PREFIX,
    Backends,
    CallerDep,
    authenticate,
    enum_in,
    enum_out,
    resolve_vendor,
    run_json,
    start_sync_run,
    time_or_none,
)
from services.gateway.deps import config_for as _config_for
from services.gateway.deps import find_config as _find_config

# Areas of the API that live in modules of their own; each is an APIRouter built on deps.
ROUTERS: list[APIRouter] = [
    audit.router,
    availability.router,
    catalog.router,
    memberships.router,
    mappings.router,
    messaging.router,
    marketing.router,
    zapier.router,
    reviews.router,
    reconciliations.router,
    dead_letters.router,
    webhooks.router,
    salesforce.router,
    zapier_oauth.router,
    minimum_necessary.router,
    offboarding.router,
]


class PracticeIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)


class CredentialsIn(BaseModel):
    """Credentials for vendors connected without a browser; secrets are stored encrypted and
    never echoed."""

    kind: Literal["password", "jwt_bearer", "api_key", "client_assertion"]
    username: str | None = Field(None, max_length=200)
    password: str | None = Field(None, max_length=500)
    security_token: str | None = Field(None, max_length=200)
    private_key_pem: str | None = Field(None, max_length=20_000)
    key_id: str | None = Field(None, max_length=200)
    algorithm: Literal["RS384", "ES384", "RS256"] | None = None
    scopes: list[str] = Field(default_factory=list, max_length=50)
    api_key: str | None = Field(None, max_length=500)
    account_id: str | None = Field(None, max_length=200)


class SyncRequest(BaseModel):
    direction: Literal["push", "pull", "bidirectional"] | None = None


class SyncSettingsIn(BaseModel):
    sync_direction: Literal["push", "pull", "bidirectional"] | None = None
    sync_frequency: Literal["real_time", "hourly", "daily", "manual"] | None = None
    conflict_policy: Literal["hub_wins", "vendor_wins", "newest_wins", "manual_review"] | None = None
    active: bool | None = None
    # "<entity>.<field>" -> policy, replacing the config's whole map ({} clears it).
    field_conflict_policies: dict[str, Literal["hub_wins", "vendor_wins", "newest_wins", "manual_review"]] | None = (
        Field(None, max_length=200)
    )


class MergeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # The survivor's id.
    into: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9-]+$")


def _patient_json(patient: sync_pb2.Patient, caller: Caller) -> dict[str, Any]:
    # Shaped by the caller's data access level (services/gateway/access.py).
    return patient_view(json.loads(patient.resource_json), caller)


def _schedules_json(schedules: Any) -> list[dict[str, Any]]:
    return [
        {
            "entity": common_pb2.EntityType.Name(s.entity_type).removeprefix("ENTITY_TYPE_").lower(),
            "every_seconds": s.every.seconds,
            "next_run_at": time_or_none(s, "next_run_time"),
        }
        for s in schedules
    ]


def create_app(settings: Settings, backends: Backends, keys: KeySet) -> FastAPI:
    app = FastAPI(
        title="Concord gateway",
        version="0.1.0",
        description="Keeps a practice's patients in agreement with its vendors, under HIPAA.",
    )
    app.state.verifier = TokenVerifier.from_settings(settings, keys)
    app.state.backends = backends
    app.state.settings = settings

    def token_first(request: Request) -> None:
        route = request.scope.get("route")
        if route is not None and any(dep.call is authenticate for dep in route.dependant.dependencies):
            app.state.verifier.verify(request.headers.get("authorization"))

    problems.install(app, authenticate_first=token_first)

    async def vendor(slug: str) -> str:
        return await resolve_vendor(backends, slug)

    async def config_for(caller: Caller, integration_type: str) -> registry_pb2.IntegrationConfig:
        return await _config_for(backends, caller, integration_type)

    async def find_config(caller: Caller, integration_type: str) -> registry_pb2.IntegrationConfig:
        return await _find_config(backends, caller, integration_type)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/practice", status_code=201, summary="Register the caller's practice")
    async def create_practice(body: PracticeIn, caller: CallerDep) -> dict[str, str]:
        require(caller, "practice.manage")
        response = await call(
            backends.registry.CreatePractice,
            registry_pb2.CreatePracticeRequest(practice_id=caller.practice_id, name=body.name),
        )
        return {"practice_id": response.practice.practice_id, "name": response.practice.name}

    @app.get("/integrations/{slug}/authorize", summary="Begin connecting a vendor (OAuth 2.0)")
    async def authorize(slug: str, caller: CallerDep) -> dict[str, str]:
        require(caller, "integration.manage")
        config = await config_for(caller, await vendor(slug))
        redirect_uri = f"{settings.public_base_url}/integrations/{slug}/callback"
        started = await call(
            backends.connection.StartAuthorization,
            connection_pb2.StartAuthorizationRequest(config_id=config.config_id, redirect_uri=redirect_uri),
        )
        return {"authorization_url": started.authorization_url, "state": started.state, "config_id": config.config_id}

    @app.post("/integrations/{slug}/connect", summary="Connect a vendor without a browser (credentials)")
    async def connect(slug: str, body: CredentialsIn, caller: CallerDep) -> dict[str, Any]:
        require(caller, "integration.manage")
        config = await config_for(caller, await vendor(slug))
        request = connection_pb2.ConnectWithCredentialsRequest(
            config_id=config.config_id, external_account_id=body.account_id or ""
        )
        if body.kind == "password":
            request.password.CopyFrom(
                connection_pb2.PasswordGrant(
                    username=body.username or "", password=body.password or "", security_token=body.security_token or ""
                )
            )
        elif body.kind == "jwt_bearer":
            request.jwt_bearer.CopyFrom(
                connection_pb2.JwtBearerGrant(username=body.username or "", private_key_pem=body.private_key_pem or "")
            )
        elif body.kind == "api_key":
            request.api_key.CopyFrom(connection_pb2.ApiKeyCredential(api_key=body.api_key or ""))
        else:
            request.client_assertion.CopyFrom(
                connection_pb2.ClientAssertionGrant(
                    private_key_pem=body.private_key_pem or "",
                    key_id=body.key_id or "",
                    algorithm=body.algorithm or "RS384",
                    scopes=body.scopes,
                )
            )
        response = await call(backends.connection.ConnectWithCredentials, request)
        return {"status": "connected", "config_id": response.connection.config_id}

    @app.get("/integrations/{slug}/callback", summary="The vendor's OAuth redirect target")
    async def callback(slug: str, state: str = Query(min_length=1), code: str = Query(min_length=1)) -> dict[str, Any]:
        await vendor(slug)
        response = await call(
            backends.connection.CompleteAuthorization,
            connection_pb2.CompleteAuthorizationRequest(state=state, code=code),
        )
        return {"status": "connected", "config_id": response.connection.config_id}

    @app.get("/integrations/{slug}/status", summary="Connection and sync status")
    async def status(slug: str, caller: CallerDep) -> dict[str, Any]:
        require(caller, "integration.read")
        integration_type = await vendor(slug)
        try:
            config = await find_config(caller, integration_type)
        except NotFound:
            return {"integration": slug, "configured": False, "connected": False}
        connection = (
            await call(
                backends.connection.GetConnection, connection_pb2.GetConnectionRequest(config_id=config.config_id)
            )
        ).connection
        status_name = connection_pb2.ConnectionStatus.Name(connection.status).removeprefix("CONNECTION_STATUS_").lower()
        return {
            "integration": slug,
            "configured": True,
            "config_id": config.config_id,
            "active": config.active,
            "connected": connection.status == connection_pb2.CONNECTION_STATUS_CONNECTED,
            "connection_status": status_name,
            "account_id": connection.external_account_id,
            "access_token_expires_at": connection.access_token_expire_time.ToJsonString()
            if connection.HasField("access_token_expire_time")
            else None,
            "sync_direction": enum_out("sync_direction", config.sync_direction),
            "sync_frequency": enum_out("sync_frequency", config.sync_frequency),
            "conflict_policy": enum_out("conflict_policy", config.conflict_policy),
            "field_conflict_policies": {
                key: enum_out("conflict_policy", value) for key, value in sorted(config.field_conflict_policies.items())
            },
        }

    @app.post("/integrations/{slug}/refresh", summary="Refresh the vendor access token now")
    async def refresh(slug: str, caller: CallerDep) -> dict[str, Any]:
        require(caller, "integration.manage")
        config = await find_config(caller, await vendor(slug))
        token = await call(
            backends.connection.GetAccessToken,
            connection_pb2.GetAccessTokenRequest(config_id=config.config_id, force_refresh=True),
        )
        # The token itself never leaves the services.
        return {
            "status": "refreshed",
            "expires_at": token.expire_time.ToJsonString() if token.HasField("expire_time") else None,
        }

    @app.post("/integrations/{slug}/disconnect", summary="Disconnect a vendor and destroy its tokens")
    async def disconnect(slug: str, caller: CallerDep) -> dict[str, Any]:
        require(caller, "integration.manage")
        config = await find_config(caller, await vendor(slug))
        response = await call(
            backends.connection.Disconnect, connection_pb2.DisconnectRequest(config_id=config.config_id)
        )
        return {"status": "disconnected", "revoked_at_vendor": response.revoked_at_vendor}

    async def start_run(slug: str, caller: Caller, body: SyncRequest | None, entity_type: int) -> dict[str, Any]:
        return await start_sync_run(backends, caller, slug, entity_type, body.direction if body else None)

    @app.post("/integrations/{slug}/patients/sync", status_code=202, summary="Start a patient sync run")
    async def start_sync(slug: str, caller: CallerDep, body: SyncRequest | None = None) -> dict[str, Any]:
        return await start_run(slug, caller, body, common_pb2.ENTITY_TYPE_PATIENT)

    @app.post("/integrations/{slug}/appointments/sync", status_code=202, summary="Start an appointment sync run")
    async def start_appointment_sync(slug: str, caller: CallerDep, body: SyncRequest | None = None) -> dict[str, Any]:
        return await start_run(slug, caller, body, common_pb2.ENTITY_TYPE_APPOINTMENT)

    @app.get("/integrations/{slug}/patients/status", summary="Recent patient sync runs")
    async def sync_status(
        slug: str, caller: CallerDep, page_size: int = Query(20, ge=1, le=100), page_token: str = ""
    ) -> dict[str, Any]:
        require(caller, "integration.read")
        config = await find_config(caller, await vendor(slug))
        response = await call(
            backends.sync.ListSyncRuns,
            sync_pb2.ListSyncRunsRequest(
                practice_id=caller.practice_id, config_id=config.config_id, page_size=page_size, page_token=page_token
            ),
        )
        return {"runs": [run_json(r) for r in response.runs], "next_page_token": response.next_page_token}

    @app.post("/integrations/{slug}/patients/sync-settings", summary="Change how a vendor syncs")
    async def sync_settings(slug: str, body: SyncSettingsIn, caller: CallerDep) -> dict[str, Any]:
        require(caller, "integration.manage")
        config = await find_config(caller, await vendor(slug))
        changes = registry_pb2.IntegrationConfig(config_id=config.config_id, practice_id=caller.practice_id)
        mask = []
        for kind in ENUM_PREFIX:
            value = getattr(body, kind)
            if value is not None:
                setattr(changes, kind, enum_in(kind, value))
                mask.append(kind)
        if body.active is not None:
            changes.active = body.active
            mask.append("active")
        if body.field_conflict_policies is not None:
            for key, value in body.field_conflict_policies.items():
                changes.field_conflict_policies[key] = enum_in("conflict_policy", value)
            mask.append("field_conflict_policies")
        if not mask:
            raise InvalidArgument("name at least one setting to change", field="body", reason="EMPTY_UPDATE")
        updated = (
            await call(
                backends.registry.UpdateIntegrationConfig,
                registry_pb2.UpdateIntegrationConfigRequest(
                    config=changes, update_mask=field_mask_pb2.FieldMask(paths=mask)
                ),
            )
        ).config
        # The frequency (or active) decides the config's Temporal Schedules: made to match now.
        applied = await call(
            backends.sync.ApplySchedules,
            sync_pb2.ApplySchedulesRequest(practice_id=caller.practice_id, config_id=updated.config_id),
        )
        return {
            "config_id": updated.config_id,
            "schedules": _schedules_json(applied.schedules),
            # The daily reconciliation of each entity (services/gateway/reconciliations.py), manual configs too.
            "reconciliation_schedules": _schedules_json(applied.reconciliation_schedules),
            "active": updated.active,
            "sync_direction": enum_out("sync_direction", updated.sync_direction),
            "sync_frequency": enum_out("sync_frequency", updated.sync_frequency),
            "conflict_policy": enum_out("conflict_policy", updated.conflict_policy),
            "field_conflict_policies": {
                key: enum_out("conflict_policy", value)
                for key, value in sorted(updated.field_conflict_policies.items())
            },
        }

    @app.get("/sync-runs/{run_id}", summary="One sync run; wait=true blocks until it ends")
    async def get_run(run_id: str, caller: CallerDep, wait: bool = False) -> dict[str, Any]:
        require(caller, "integration.read")
        if wait:
            request = sync_pb2.WaitSyncRunRequest(practice_id=caller.practice_id, run_id=run_id)
            run = (await call(backends.sync.WaitSyncRun, request, deadline=600)).run
        else:
            request = sync_pb2.GetSyncRunRequest(practice_id=caller.practice_id, run_id=run_id)
            run = (await call(backends.sync.GetSyncRun, request)).run
        return run_json(run)

    @app.get("/audit/verify", summary="Verify the practice's audit hash chain")
    async def verify_audit(caller: CallerDep) -> dict[str, Any]:
        require(caller, "practice.manage")
        result = await call(backends.audit.Verify, audit_pb2.VerifyRequest(practice_id=caller.practice_id))
        return {
            "intact": result.intact,
            "events_checked": result.events_checked,
            "first_broken_sequence": result.first_broken_sequence,
            "problem": result.problem,
            "head_hash": result.head_hash,
        }

    @app.post("/patients", status_code=201, summary="Create a patient (FHIR R4 Patient)")
    async def create_patient(
        resource: Annotated[dict[str, Any], Body()], caller: CallerDep, response: Response
    ) -> dict[str, Any]:
        require(caller, "patient.write")
        created = await call(
            backends.sync.CreatePatient,
            sync_pb2.CreatePatientRequest(practice_id=caller.practice_id, resource_json=json.dumps(resource)),
        )
        response.headers["Location"] = f"/patients/{created.patient.patient_id}"
        response.headers["ETag"] = f'W/"{created.patient.version}"'
        return _patient_json(created.patient, caller)

    @app.post("/patients/import", status_code=201, summary="Import the Patients of a FHIR Bundle")
    async def import_patients(bundle: Annotated[dict[str, Any], Body()], caller: CallerDep) -> dict[str, Any]:
        require(caller, "patient.write")
        try:
            imported = await call(
                backends.sync.ImportPatients,
                sync_pb2.ImportPatientsRequest(practice_id=caller.practice_id, bundle_json=json.dumps(bundle)),
            )
        except InvalidArgument as error:
            if error.field != "bundle_json":
                raise
            # Here the bundle is the request body itself.
            raise InvalidArgument(error.message, field="body", reason=error.reason) from None
        return {"patient_ids": list(imported.patient_ids), "count": len(imported.patient_ids)}

    @app.get("/patients", summary="List the practice's patients")
    async def list_patients(
        caller: CallerDep, page_size: int = Query(50, ge=1, le=500), page_token: str = ""
    ) -> dict[str, Any]:
        require(caller, "patient.read")
        listed = await call(
            backends.sync.ListPatients,
            sync_pb2.ListPatientsRequest(practice_id=caller.practice_id, page_size=page_size, page_token=page_token),
        )
        return {
            "patients": [_patient_json(p, caller) for p in listed.patients],
            "next_page_token": listed.next_page_token,
        }

    @app.post("/appointments", status_code=201, summary="Create an appointment (FHIR R4 Appointment)")
    async def create_appointment(
        resource: Annotated[dict[str, Any], Body()], caller: CallerDep, response: Response
    ) -> dict[str, Any]:
        require(caller, "patient.write")
        created = await call(
            backends.sync.CreateRecord,
            sync_pb2.CreateRecordRequest(
                practice_id=caller.practice_id,
                entity_type=common_pb2.ENTITY_TYPE_APPOINTMENT,
                resource_json=json.dumps(resource),
            ),
        )
        response.headers["Location"] = f"/appointments/{created.record.record_id}"
        return json.loads(created.record.resource_json)

    @app.get("/appointments", summary="List the practice's appointments")
    async def list_appointments(
        caller: CallerDep, page_size: int = Query(50, ge=1, le=500), page_token: str = ""
    ) -> dict[str, Any]:
        require(caller, "patient.read")
        listed = await call(
            backends.sync.ListRecords,
            sync_pb2.ListRecordsRequest(
                practice_id=caller.practice_id,
                entity_type=common_pb2.ENTITY_TYPE_APPOINTMENT,
                page_size=page_size,
                page_token=page_token,
            ),
        )
        return {
            "appointments": [json.loads(r.resource_json) for r in listed.records],
            "next_page_token": listed.next_page_token,
        }

    @app.get("/appointments/{appointment_id}", summary="Read an appointment")
    async def get_appointment(appointment_id: str, caller: CallerDep) -> dict[str, Any]:
        require(caller, "patient.read")
        found = await call(
            backends.sync.GetRecord,
            sync_pb2.GetRecordRequest(
                practice_id=caller.practice_id,
                entity_type=common_pb2.ENTITY_TYPE_APPOINTMENT,
                record_id=appointment_id,
            ),
        )
        return json.loads(found.record.resource_json)

    @app.get("/patients/{patient_id}", summary="Read a patient", response_model=dict[str, Any])
    async def get_patient(patient_id: str, caller: CallerDep) -> Response:
        require(caller, "patient.read")
        found = await call(
            backends.sync.GetPatient, sync_pb2.GetPatientRequest(practice_id=caller.practice_id, patient_id=patient_id)
        )
        headers = {"ETag": f'W/"{found.patient.version}"'}
        if access_level(caller) == "full":
            # The whole resource, which the sync service sends as JSON already: passed on as it
            # came rather than parsed, validated and encoded again (the busiest route's JSON cost).
            return Response(found.patient.resource_json, media_type="application/json", headers=headers)
        return JSONResponse(_patient_json(found.patient, caller), headers=headers)

    @app.get("/patients/{patient_id}/history", summary="Every change of a patient: side, fields, run")
    async def patient_history(
        patient_id: str, caller: CallerDep, page_size: int = Query(100, ge=1, le=500)
    ) -> dict[str, Any]:
        require(caller, "patient.read")
        found = await call(
            backends.sync.GetRecordHistory,
            sync_pb2.GetRecordHistoryRequest(
                practice_id=caller.practice_id,
                entity_type=common_pb2.ENTITY_TYPE_PATIENT,
                record_id=patient_id,
                page_size=page_size,
            ),
        )
        return {
            "changes": [
                {
                    "version": c.version,
                    "side": c.side,
                    "source": c.source,
                    "action": c.action,
                    "fields": list(c.fields),
                    "run_id": c.run_id or None,
                    "changed_at": time_or_none(c, "change_time"),
                }
                for c in found.changes
            ]
        }

    @app.put("/patients/{patient_id}", summary="Replace a patient; If-Match guards against lost updates")
    async def update_patient(
        patient_id: str,
        resource: Annotated[dict[str, Any], Body()],
        caller: CallerDep,
        response: Response,
        if_match: Annotated[str | None, Header()] = None,
    ) -> dict[str, Any]:
        require(caller, "patient.write")
        expected = 0  # no header, or "*" (RFC 9110 13.1.1: any current version)
        if if_match and if_match.strip() != "*":
            digits = if_match.strip().removeprefix("W/").strip('"')
            # Versions start at 1: W/"0" would otherwise read as "no check" and overwrite blindly.
            if not digits.isdigit() or int(digits) < 1:
                raise InvalidArgument("If-Match must be an ETag from this API", field="If-Match", reason="INVALID_ETAG")
            expected = int(digits)
        resource, expected = await replacement_for(backends, caller, patient_id, resource, expected)
        updated = await call(
            backends.sync.UpdatePatient,
            sync_pb2.UpdatePatientRequest(
                practice_id=caller.practice_id,
                patient_id=patient_id,
                resource_json=json.dumps(resource),
                expected_version=expected,
            ),
        )
        response.headers["ETag"] = f'W/"{updated.patient.version}"'
        return _patient_json(updated.patient, caller)

    @app.delete("/patients/{patient_id}", status_code=204, summary="Delete a patient (everywhere it is synced)")
    async def delete_patient(patient_id: str, caller: CallerDep) -> Response:
        """The patient becomes a tombstone: no longer listed or read here, deleted at each linked
        vendor that can delete on its next push (the others keep their record, unlinked)."""
        require(caller, "patient.delete")
        await call(
            backends.sync.DeleteRecord,
            sync_pb2.DeleteRecordRequest(practice_id=caller.practice_id, record_id=patient_id),
        )
        return Response(status_code=204)

    @app.post("/patients/{patient_id}/merge", summary="Merge a duplicate patient into another")
    async def merge_patient(patient_id: str, body: MergeIn, caller: CallerDep, response: Response) -> dict[str, Any]:
        """``patient_id`` is merged into ``into``, whose values stand; its vendor links move to the
        survivor where the survivor has none (those vendors' records get the survivor's values on
        the next push); where both were linked, the duplicate's vendor copy is deleted."""
        require(caller, "patient.delete")
        merged = await call(
            backends.sync.MergePatients,
            sync_pb2.MergePatientsRequest(
                practice_id=caller.practice_id, patient_id=patient_id, into_patient_id=body.into
            ),
        )
        response.headers["ETag"] = f'W/"{merged.patient.version}"'
        return _patient_json(merged.patient, caller)

    @app.delete("/appointments/{appointment_id}", status_code=204, summary="Delete (not cancel) an appointment")
    async def delete_appointment(appointment_id: str, caller: CallerDep) -> Response:
        require(caller, "appointment.book")
        await call(
            backends.sync.DeleteRecord,
            sync_pb2.DeleteRecordRequest(
                practice_id=caller.practice_id,
                entity_type=common_pb2.ENTITY_TYPE_APPOINTMENT,
                record_id=appointment_id,
            ),
        )
        return Response(status_code=204)

    for router in ROUTERS:
        app.include_router(router)
    return app
