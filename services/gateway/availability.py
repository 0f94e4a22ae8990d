"""Provider availability at a booking vendor (Zenoti): when a hub service can be booked for a hub
patient, with a provider (the vendor's id, as in appointments' Practitioner participants) or any.
Nothing is reserved: booking is creating a hub appointment at one of these times and pushing it."""

from __future__ import annotations

from datetime import UTC, date
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from libs.grpc_client import call
from libs.protos.concord.registry.v1 import registry_pb2
from libs.protos.concord.sync.v1 import sync_pb2
from services.gateway.auth import require
from services.gateway.deps import BackendsDep, CallerDep, find_config, replace_options, resolve_vendor

router = APIRouter(tags=["appointments"])


class BookingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    center_time_zone: str = Field(min_length=1, max_length=64, description="IANA zone, e.g. America/New_York")


def _booking_json(config: registry_pb2.IntegrationConfig) -> dict[str, Any]:
    return {"config_id": config.config_id, "center_time_zone": config.options.booking.center_time_zone or None}


@router.get("/integrations/{slug}/booking", summary="The booking settings of a vendor (its center's time zone)")
async def get_booking(slug: str, caller: CallerDep, backends: BackendsDep) -> dict[str, Any]:
    require(caller, "integration.read")
    return _booking_json(await find_config(backends, caller, await resolve_vendor(backends, slug)))


@router.put("/integrations/{slug}/booking", summary="Set the booking settings (validated by the registry)")
async def put_booking(slug: str, body: BookingIn, caller: CallerDep, backends: BackendsDep) -> dict[str, Any]:
    require(caller, "integration.manage")
    config = await find_config(backends, caller, await resolve_vendor(backends, slug))
    booking = registry_pb2.BookingOptions(center_time_zone=body.center_time_zone)
    return _booking_json(await replace_options(backends, caller, config, "booking", booking))


Id = Annotated[str, Query(min_length=1, max_length=64)]


@router.get("/integrations/{slug}/availability", summary="Free times to book a service for a patient")
async def availability(
    slug: str,
    caller: CallerDep,
    backends: BackendsDep,
    patient_id: Id,
    service_id: Id,
    day: Annotated[date, Query(alias="date", description="first day, YYYY-MM-DD on the location's calendar")],
    provider_id: Annotated[str, Query(max_length=64)] = "",
    days: Annotated[int, Query(ge=1, le=7)] = 1,
) -> dict[str, Any]:
    require(caller, "appointment.book")
    config = await find_config(backends, caller, await resolve_vendor(backends, slug))
    response = await call(
        backends.sync.GetAvailability,
        sync_pb2.GetAvailabilityRequest(
            practice_id=caller.practice_id,
            config_id=config.config_id,
            patient_id=patient_id,
            service_id=service_id,
            provider_id=provider_id,
            date=day.isoformat(),
            days=days,
        ),
        deadline=180,
    )
    return {
        "patient_id": patient_id,
        "service_id": service_id,
        "provider_id": provider_id or None,
        "slots": [
            {
                "start": slot.start.ToDatetime(tzinfo=UTC).isoformat().replace("+00:00", "Z"),
                "local_start": slot.local_start,
            }
            for slot in response.slots
        ],
    }
