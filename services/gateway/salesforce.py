"""A Salesforce config's appointment object: Salesforce Scheduler's ServiceAppointment (the
default) or Lightning calendar Events, for practices that book in the calendar. Stored on the
registry's IntegrationConfig.options.salesforce and validated there against the definition.

The choice is made before the config's first appointment sync: the links and the read cursor of a
config's appointments belong to one object, so switching afterwards would leave links naming
records of the other (and the adapter refuses the other object's cursor). A change once an
appointment run exists is refused with 409 APPOINTMENTS_ALREADY_SYNCED; the same choice again is
accepted."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict

from libs.errors import FailedPrecondition
from libs.grpc_client import call
from libs.protos.concord.common.v1 import common_pb2
from libs.protos.concord.registry.v1 import registry_pb2
from libs.protos.concord.sync.v1 import sync_pb2
from services.gateway.auth import require
from services.gateway.deps import Backends, BackendsDep, CallerDep, config_for, find_config, replace_options

SALESFORCE = "salesforce"
OBJECTS = {
    "service_appointment": registry_pb2.SALESFORCE_APPOINTMENT_OBJECT_SERVICE_APPOINTMENT,
    "event": registry_pb2.SALESFORCE_APPOINTMENT_OBJECT_EVENT,
}

router = APIRouter(tags=["salesforce"])


class AppointmentObjectIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    appointment_object: Literal["service_appointment", "event"]


def _chosen(config: registry_pb2.IntegrationConfig) -> int:
    value = config.options.salesforce.appointment_object
    return value or registry_pb2.SALESFORCE_APPOINTMENT_OBJECT_SERVICE_APPOINTMENT


def _json(config: registry_pb2.IntegrationConfig) -> dict[str, Any]:
    name = next(name for name, value in OBJECTS.items() if value == _chosen(config))
    return {"config_id": config.config_id, "appointment_object": name}


async def _appointments_synced(backends: Backends, config: registry_pb2.IntegrationConfig) -> bool:
    """Whether any appointment run (pull, push, change event) of the config exists."""
    token = ""
    while True:
        page = await call(
            backends.sync.ListSyncRuns,
            sync_pb2.ListSyncRunsRequest(
                practice_id=config.practice_id, config_id=config.config_id, page_size=100, page_token=token
            ),
        )
        if any(run.entity_type == common_pb2.ENTITY_TYPE_APPOINTMENT for run in page.runs):
            return True
        token = page.next_page_token
        if not token:
            return False


@router.get("/integrations/salesforce/appointment-object", summary="Which sObject the practice's appointments are")
async def get_appointment_object(caller: CallerDep, backends: BackendsDep) -> dict[str, Any]:
    require(caller, "integration.read")
    return _json(await find_config(backends, caller, SALESFORCE))


@router.put("/integrations/salesforce/appointment-object", summary="Choose ServiceAppointment or calendar Events")
async def put_appointment_object(body: AppointmentObjectIn, caller: CallerDep, backends: BackendsDep) -> dict[str, Any]:
    require(caller, "integration.manage")
    config = await config_for(backends, caller, SALESFORCE)
    wanted = OBJECTS[body.appointment_object]
    if wanted == _chosen(config):
        return _json(config)
    if await _appointments_synced(backends, config):
        raise FailedPrecondition(
            "this config's appointments were already synced with the other object: its links and cursor name it",
            reason="APPOINTMENTS_ALREADY_SYNCED",
        )
    chosen = registry_pb2.SalesforceOptions()
    chosen.CopyFrom(config.options.salesforce)
    chosen.appointment_object = wanted
    return _json(await replace_options(backends, caller, config, "salesforce", chosen))
