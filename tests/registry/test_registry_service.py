"""The registry over real gRPC on 127.0.0.1:0, on each database backend."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import field_mask_pb2

from libs.errors import AlreadyExists, InvalidArgument, NotFound
from libs.grpc_client import call, open_channel
from libs.protos.concord.common.v1 import common_pb2
from libs.protos.concord.registry.v1 import registry_pb2 as pb
from libs.protos.concord.registry.v1 import registry_pb2_grpc
from services.registry.server import start


@pytest.fixture
async def stub(settings):  # noqa: ANN001
    service = await start(settings.model_copy(update={"vendor_base_urls": {"ghl": "http://127.0.0.1:8701"}}))
    channel = open_channel(service.address)
    yield registry_pb2_grpc.RegistryServiceStub(channel)
    await channel.close()
    await service.stop()


async def _practice_and_config(stub) -> pb.IntegrationConfig:  # noqa: ANN001
    await call(stub.CreatePractice, pb.CreatePracticeRequest(practice_id="p1", name="Harbor Clinic"))
    response = await call(
        stub.CreateIntegrationConfig,
        pb.CreateIntegrationConfigRequest(config=pb.IntegrationConfig(practice_id="p1", integration_type="ghl")),
    )
    return response.config


async def test_ghl_definition_is_seeded_and_points_at_the_sandbox(stub) -> None:  # noqa: ANN001
    response = await call(stub.GetIntegrationDefinition, pb.GetIntegrationDefinitionRequest(integration_type="ghl"))
    endpoints = response.definition.endpoints
    assert endpoints.token_url == "http://127.0.0.1:8701/oauth/token"
    assert endpoints.authorize_url == "http://127.0.0.1:8701/v2/oauth/chooselocation"
    assert response.definition.pkce_supported is False
    assert list(response.definition.capabilities) == [
        common_pb2.ENTITY_TYPE_PATIENT,
        common_pb2.ENTITY_TYPE_APPOINTMENT,
    ]


async def test_config_defaults_find_and_update(stub) -> None:  # noqa: ANN001
    config = await _practice_and_config(stub)
    assert config.sync_direction == common_pb2.SYNC_DIRECTION_BIDIRECTIONAL
    assert config.conflict_policy == common_pb2.CONFLICT_POLICY_HUB_WINS
    assert not config.active

    found = await call(
        stub.FindIntegrationConfig, pb.FindIntegrationConfigRequest(practice_id="p1", integration_type="ghl")
    )
    assert found.config.config_id == config.config_id

    changes = pb.IntegrationConfig(
        config_id=config.config_id, active=True, sync_direction=common_pb2.SYNC_DIRECTION_PUSH
    )
    mask = field_mask_pb2.FieldMask(paths=["active", "sync_direction"])
    updated = await call(
        stub.UpdateIntegrationConfig, pb.UpdateIntegrationConfigRequest(config=changes, update_mask=mask)
    )
    assert updated.config.active
    assert updated.config.sync_direction == common_pb2.SYNC_DIRECTION_PUSH
    assert updated.config.conflict_policy == common_pb2.CONFLICT_POLICY_HUB_WINS

    listed = await call(stub.ListIntegrationConfigs, pb.ListIntegrationConfigsRequest(practice_id="p1"))
    assert [c.config_id for c in listed.configs] == [config.config_id]


async def test_bad_input_gets_invalid_argument_naming_the_field(stub) -> None:  # noqa: ANN001
    with pytest.raises(InvalidArgument) as error:
        await call(stub.CreatePractice, pb.CreatePracticeRequest(practice_id="bad id!", name="x"))
    assert error.value.field == "practice_id"
    assert error.value.reason == "INVALID_PRACTICE_ID"

    config = await _practice_and_config(stub)
    mask = field_mask_pb2.FieldMask(paths=["field_conflict_policies"])
    for policies, reason in (
        ({"patient.favourite_colour": common_pb2.CONFLICT_POLICY_VENDOR_WINS}, "UNKNOWN_MERGE_FIELD"),
        ({"email": common_pb2.CONFLICT_POLICY_VENDOR_WINS}, "UNKNOWN_MERGE_FIELD"),  # no entity named
        ({"patient.email": common_pb2.CONFLICT_POLICY_UNSPECIFIED}, "INVALID_ENUM"),
    ):
        changes = pb.IntegrationConfig(config_id=config.config_id, field_conflict_policies=policies)
        with pytest.raises(InvalidArgument) as error:
            await call(
                stub.UpdateIntegrationConfig, pb.UpdateIntegrationConfigRequest(config=changes, update_mask=mask)
            )
        assert (error.value.field, error.value.reason) == ("field_conflict_policies", reason)
        assert "favourite" not in str(error.value)
    still = await call(stub.GetIntegrationConfig, pb.GetIntegrationConfigRequest(config_id=config.config_id))
    assert dict(still.config.field_conflict_policies) == {}

    # Every policy is a config's, and each field may have its own.
    policies = {
        "patient.email": common_pb2.CONFLICT_POLICY_VENDOR_WINS,
        "appointment.start": common_pb2.CONFLICT_POLICY_MANUAL_REVIEW,
    }
    changes = pb.IntegrationConfig(
        config_id=config.config_id,
        conflict_policy=common_pb2.CONFLICT_POLICY_NEWEST_WINS,
        field_conflict_policies=policies,
    )
    both = field_mask_pb2.FieldMask(paths=["conflict_policy", "field_conflict_policies"])
    await call(stub.UpdateIntegrationConfig, pb.UpdateIntegrationConfigRequest(config=changes, update_mask=both))
    now = await call(stub.GetIntegrationConfig, pb.GetIntegrationConfigRequest(config_id=config.config_id))
    assert now.config.conflict_policy == common_pb2.CONFLICT_POLICY_NEWEST_WINS
    assert dict(now.config.field_conflict_policies) == policies

    with pytest.raises(InvalidArgument) as error:
        await call(stub.ListIntegrationConfigs, pb.ListIntegrationConfigsRequest(practice_id="p1", page_token="%%%"))
    assert error.value.field == "page_token"


async def test_unknown_ids_are_not_found_and_duplicates_refused(stub) -> None:  # noqa: ANN001
    with pytest.raises(NotFound) as error:
        await call(stub.GetIntegrationConfig, pb.GetIntegrationConfigRequest(config_id="nope"))
    assert error.value.reason == "CONFIG_NOT_FOUND"
    with pytest.raises(NotFound):
        await call(
            stub.CreateIntegrationConfig,
            pb.CreateIntegrationConfigRequest(config=pb.IntegrationConfig(practice_id="ghost", integration_type="ghl")),
        )
    await _practice_and_config(stub)
    with pytest.raises(AlreadyExists):
        await call(
            stub.CreateIntegrationConfig,
            pb.CreateIntegrationConfigRequest(config=pb.IntegrationConfig(practice_id="p1", integration_type="ghl")),
        )


async def test_health_is_served(settings) -> None:  # noqa: ANN001
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    service = await start(settings)
    async with grpc.aio.insecure_channel(service.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        reply = await health.Check(health_pb2.HealthCheckRequest(service="concord.registry.v1.RegistryService"))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    await service.stop()


async def test_marketing_options_persist_through_the_mask_and_are_validated_per_vendor(stub) -> None:  # noqa: ANN001
    config = await _practice_and_config(stub)
    assert config.options == pb.VendorOptions()  # every switch off by default

    def update(marketing: pb.MarketingOptions, config_id: str = config.config_id):  # noqa: ANN202
        return call(
            stub.UpdateIntegrationConfig,
            pb.UpdateIntegrationConfigRequest(
                config=pb.IntegrationConfig(config_id=config_id, options=pb.VendorOptions(marketing=marketing)),
                update_mask=field_mask_pb2.FieldMask(paths=["options"]),
            ),
        )

    switches = pb.MarketingOptions(
        email_campaigns=True, appointment_reminders=True, reminder_workflow_id="wf-reminders"
    )
    updated = (await update(switches)).config
    assert updated.options.marketing == switches
    stored = (await call(stub.GetIntegrationConfig, pb.GetIntegrationConfigRequest(config_id=config.config_id))).config
    assert stored.options.marketing == switches
    assert stored.sync_direction == config.sync_direction  # the mask touched options only

    with pytest.raises(InvalidArgument) as missing:
        await update(pb.MarketingOptions(lead_scoring=True))
    assert missing.value.reason == "REQUIRED_FIELD_MISSING"
    assert missing.value.metadata["field"] == "options.marketing.lead_score_field"
    still = (await call(stub.GetIntegrationConfig, pb.GetIntegrationConfigRequest(config_id=config.config_id))).config
    assert still.options.marketing == switches  # a refused update changes nothing

    other = await call(
        stub.CreateIntegrationConfig,
        pb.CreateIntegrationConfigRequest(config=pb.IntegrationConfig(practice_id="p1", integration_type="salesforce")),
    )
    with pytest.raises(InvalidArgument) as unsupported:
        await update(pb.MarketingOptions(email_campaigns=True), other.config.config_id)
    assert (unsupported.value.reason, unsupported.value.metadata["field"]) == (
        "UNSUPPORTED_OPTION",
        "options.marketing",
    )


async def test_booking_time_zone_is_an_iana_zone_and_only_for_booking_vendors(stub) -> None:  # noqa: ANN001
    async def config_of(vendor: str) -> pb.IntegrationConfig:
        created = await call(
            stub.CreateIntegrationConfig,
            pb.CreateIntegrationConfigRequest(config=pb.IntegrationConfig(practice_id="p1", integration_type=vendor)),
        )
        return created.config

    def update(config_id: str, zone: str):  # noqa: ANN202
        options = pb.VendorOptions(booking=pb.BookingOptions(center_time_zone=zone))
        return call(
            stub.UpdateIntegrationConfig,
            pb.UpdateIntegrationConfigRequest(
                config=pb.IntegrationConfig(config_id=config_id, options=options),
                update_mask=field_mask_pb2.FieldMask(paths=["options"]),
            ),
        )

    await _practice_and_config(stub)
    zenoti = await config_of("zenoti")
    assert (await update(zenoti.config_id, "America/Chicago")).config.options.booking.center_time_zone == (
        "America/Chicago"
    )
    for bad in ("Mars/Olympus_Mons", "../etc/passwd", "EST5EDT;DROP"):
        with pytest.raises(InvalidArgument) as refused:
            await update(zenoti.config_id, bad)
        assert (refused.value.reason, refused.value.metadata["field"]) == (
            "INVALID_TIME_ZONE",
            "options.booking.center_time_zone",
        )
    stored = (await call(stub.GetIntegrationConfig, pb.GetIntegrationConfigRequest(config_id=zenoti.config_id))).config
    assert stored.options.booking.center_time_zone == "America/Chicago"
    salesforce = await config_of("salesforce")
    with pytest.raises(InvalidArgument) as unsupported:
        await update(salesforce.config_id, "America/Chicago")
    assert unsupported.value.reason == "UNSUPPORTED_OPTION"


async def test_a_salesforce_config_chooses_its_appointment_object_and_other_vendors_cannot(stub) -> None:  # noqa: ANN001
    ghl = await _practice_and_config(stub)
    on_events = pb.VendorOptions(
        salesforce=pb.SalesforceOptions(appointment_object=pb.SALESFORCE_APPOINTMENT_OBJECT_EVENT)
    )
    made = await call(
        stub.CreateIntegrationConfig,
        pb.CreateIntegrationConfigRequest(
            config=pb.IntegrationConfig(practice_id="p1", integration_type="salesforce", options=on_events)
        ),
    )
    stored = await call(stub.GetIntegrationConfig, pb.GetIntegrationConfigRequest(config_id=made.config.config_id))
    assert stored.config.options.salesforce.appointment_object == pb.SALESFORCE_APPOINTMENT_OBJECT_EVENT

    def update(config_id: str, options: pb.VendorOptions):  # noqa: ANN202
        return call(
            stub.UpdateIntegrationConfig,
            pb.UpdateIntegrationConfigRequest(
                config=pb.IntegrationConfig(config_id=config_id, options=options),
                update_mask=field_mask_pb2.FieldMask(paths=["options"]),
            ),
        )

    scheduler = pb.SalesforceAppointmentObject.Value("SALESFORCE_APPOINTMENT_OBJECT_SERVICE_APPOINTMENT")
    changed = (
        await update(
            made.config.config_id, pb.VendorOptions(salesforce=pb.SalesforceOptions(appointment_object=scheduler))
        )
    ).config
    assert changed.options.salesforce.appointment_object == scheduler
    with pytest.raises(InvalidArgument) as unknown:
        await update(made.config.config_id, pb.VendorOptions(salesforce=pb.SalesforceOptions(appointment_object=7)))
    assert (unknown.value.reason, unknown.value.metadata["field"]) == (
        "INVALID_ENUM",
        "options.salesforce.appointment_object",
    )
    with pytest.raises(InvalidArgument) as unsupported:
        await update(ghl.config_id, on_events)
    assert (unsupported.value.reason, unsupported.value.metadata["field"]) == (
        "UNSUPPORTED_OPTION",
        "options.salesforce",
    )
