"""A Salesforce config's appointment object chooses its appointment mapper, over real gRPC: the
batch RPCs take the options the sync run gave the adapter, the field-mapping RPCs read the config's
options from the registry."""

from __future__ import annotations

import json

from google.protobuf import struct_pb2

from libs import fhir_appointment as fa
from libs.grpc_client import call
from libs.protos.concord.common.v1 import common_pb2
from libs.protos.concord.mapping.v1 import mapping_pb2 as pb
from libs.protos.concord.registry.v1 import registry_pb2 as rpb
from services.mapping.mappers.salesforce_events import EVENT_ID_SYSTEM
from tests.mapping.conftest import MappingStack

APPOINTMENT = common_pb2.ENTITY_TYPE_APPOINTMENT
ACCOUNT = "001000000000001AAA"
ON_EVENTS = rpb.VendorOptions(
    salesforce=rpb.SalesforceOptions(appointment_object=rpb.SALESFORCE_APPOINTMENT_OBJECT_EVENT)
)
EVENT = {
    "Id": "00U000000000001AAA",
    "WhatId": ACCOUNT,
    "StartDateTime": "2026-03-02T14:00:00.000+0000",
    "EndDateTime": "2026-03-02T14:45:00.000+0000",
    "Subject": "Annual physical",
}
HUB = {
    "resourceType": "Appointment",
    "id": "hub-appt-1",
    "status": "booked",
    "start": "2026-03-02T14:00:00Z",
    "end": "2026-03-02T14:45:00Z",
    "participant": [{"actor": fa.external_actor(ACCOUNT), "status": "accepted"}],
}


def _struct(record: dict) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(record)
    return message


async def test_the_options_in_the_request_choose_the_event_or_the_service_appointment_mapper(stub) -> None:  # noqa: ANN001
    def to_hub(options: rpb.VendorOptions | None) -> pb.MapToHubRequest:
        return pb.MapToHubRequest(
            integration_type="salesforce", entity_type=APPOINTMENT, vendor_records=[_struct(EVENT)], options=options
        )

    [as_event] = (await call(stub.MapToHub, to_hub(ON_EVENTS))).results
    [as_scheduler] = (await call(stub.MapToHub, to_hub(None))).results

    assert not as_event.errors
    assert {i["system"] for i in json.loads(as_event.resource_json)["identifier"]} >= {EVENT_ID_SYSTEM}
    # The same record through ServiceAppointment's mapper is not an appointment it can read.
    assert as_scheduler.errors and {e.field for e in as_scheduler.errors} >= {"ParentRecordId"}
    for options, written, absent in (
        (ON_EVENTS, "StartDateTime", "SchedStartTime"),
        (None, "SchedStartTime", "StartDateTime"),
    ):
        [result] = (
            await call(
                stub.MapToVendor,
                pb.MapToVendorRequest(
                    integration_type="salesforce",
                    entity_type=APPOINTMENT,
                    resource_jsons=[json.dumps(HUB)],
                    options=options,
                ),
            )
        ).results
        record = dict(result.vendor_record)
        assert written in record and absent not in record


async def test_field_mappings_of_a_config_follow_its_appointment_object_in_the_registry(
    mapping: MappingStack,
) -> None:
    async def config(practice_id: str, options: rpb.VendorOptions | None) -> str:
        """A practice has one config per vendor: each object is another practice's choice."""
        await call(mapping.registry.CreatePractice, rpb.CreatePracticeRequest(practice_id=practice_id, name="Clinic"))
        made = await call(
            mapping.registry.CreateIntegrationConfig,
            rpb.CreateIntegrationConfigRequest(
                config=rpb.IntegrationConfig(practice_id=practice_id, integration_type="salesforce", options=options)
            ),
        )
        return made.config.config_id

    async def vendor_fields(config_id: str) -> set[str]:
        listed = await call(
            mapping.stub.ListFieldMappings,
            pb.ListFieldMappingsRequest(config_id=config_id, integration_type="salesforce", entity_type=APPOINTMENT),
        )
        return {m.vendor_field for m in listed.field_mappings}

    on_events, on_scheduler = await config("p-calendar", ON_EVENTS), await config("p-scheduler", None)

    assert await vendor_fields(on_events) == {"StartDateTime", "EndDateTime", "Subject", "Description"}
    assert await vendor_fields(on_scheduler) == {"Status", "SchedStartTime", "SchedEndTime", "Subject", "Description"}
    preview = await call(
        mapping.stub.PreviewMapping,
        pb.PreviewMappingRequest(
            config_id=on_events,
            integration_type="salesforce",
            entity_type=APPOINTMENT,
            direction=pb.MAPPING_DIRECTION_TO_VENDOR,
            resource_json=json.dumps(HUB),
        ),
    )
    assert not preview.errors and "StartDateTime" in dict(preview.vendor_record)
