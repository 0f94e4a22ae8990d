"""Minimum necessary in the registry: a config's field allow-list and the practice's Business
Associate Agreements, over real gRPC."""

from __future__ import annotations

import pytest
from google.protobuf import field_mask_pb2

from libs.errors import InvalidArgument, NotFound, PermissionDenied
from libs.grpc_client import call, open_channel
from libs.identity import Caller, acting_as
from libs.protos.concord.registry.v1 import registry_pb2 as pb
from libs.protos.concord.registry.v1 import registry_pb2_grpc
from services.registry.server import start

pytestmark = pytest.mark.no_baa


@pytest.fixture
async def stub(settings):  # noqa: ANN001
    service = await start(settings)
    channel = open_channel(service.address)
    yield registry_pb2_grpc.RegistryServiceStub(channel)
    await channel.close()
    await service.stop()


async def _config(stub) -> pb.IntegrationConfig:  # noqa: ANN001
    await call(stub.CreatePractice, pb.CreatePracticeRequest(practice_id="p1", name="Harbor Clinic"))
    created = await call(
        stub.CreateIntegrationConfig,
        pb.CreateIntegrationConfigRequest(config=pb.IntegrationConfig(practice_id="p1", integration_type="ghl")),
    )
    return created.config


async def _set_allow_list(stub, config_id: str, names: list[str]) -> pb.IntegrationConfig:  # noqa: ANN001
    response = await call(
        stub.UpdateIntegrationConfig,
        pb.UpdateIntegrationConfigRequest(
            config=pb.IntegrationConfig(config_id=config_id, field_allow_list=names),
            update_mask=field_mask_pb2.FieldMask(paths=["field_allow_list"]),
        ),
    )
    return response.config


async def test_allow_list_is_empty_by_default_and_replaced_through_the_mask(stub) -> None:  # noqa: ANN001
    config = await _config(stub)
    assert list(config.field_allow_list) == []
    updated = await _set_allow_list(stub, config.config_id, ["patient.email", "patient.given_name"])
    assert list(updated.field_allow_list) == ["patient.email", "patient.given_name"]
    again = await call(stub.GetIntegrationConfig, pb.GetIntegrationConfigRequest(config_id=config.config_id))
    assert list(again.config.field_allow_list) == ["patient.email", "patient.given_name"]
    cleared = await _set_allow_list(stub, config.config_id, [])
    assert list(cleared.field_allow_list) == []


@pytest.mark.parametrize(
    ("names", "field", "reason"),
    [
        (["patient.email", "patient.ssn"], "field_allow_list[1]", "UNKNOWN_HUB_FIELD"),
        (["email"], "field_allow_list[0]", "UNKNOWN_HUB_FIELD"),
        (["patient.email", "patient.email"], "field_allow_list[1]", "DUPLICATE_FIELD"),
        (["appointment.start"], "field_allow_list", "FHIR_FIELD_REQUIRED"),
    ],
)
async def test_bad_allow_lists_are_refused_by_field(stub, names, field, reason) -> None:  # noqa: ANN001
    config = await _config(stub)
    with pytest.raises(InvalidArgument) as error:
        await _set_allow_list(stub, config.config_id, names)
    assert (error.value.field, error.value.reason) == (field, reason)
    current = await call(stub.GetIntegrationConfig, pb.GetIntegrationConfigRequest(config_id=config.config_id))
    assert list(current.config.field_allow_list) == []


async def test_agreement_is_recorded_on_the_practice_and_shown_on_its_configs(stub) -> None:  # noqa: ANN001
    config = await _config(stub)
    assert config.baa_effective_date == ""
    with acting_as(Caller(user_id="u-admin", role="admin")):
        recorded = await call(
            stub.RecordBusinessAssociateAgreement,
            pb.RecordBusinessAssociateAgreementRequest(
                practice_id="p1", integration_type="ghl", effective_date="2024-03-01"
            ),
        )
    assert recorded.agreement.effective_date == "2024-03-01"
    assert recorded.agreement.recorded_by == "u-admin"
    practice = (await call(stub.GetPractice, pb.GetPracticeRequest(practice_id="p1"))).practice
    assert [(a.integration_type, a.effective_date) for a in practice.business_associate_agreements] == [
        ("ghl", "2024-03-01")
    ]
    read = await call(stub.GetIntegrationConfig, pb.GetIntegrationConfigRequest(config_id=config.config_id))
    assert read.config.baa_effective_date == "2024-03-01"
    listed = await call(stub.ListIntegrationConfigs, pb.ListIntegrationConfigsRequest(practice_id="p1"))
    assert [c.baa_effective_date for c in listed.configs] == ["2024-03-01"]
    # Recording again replaces the date; an update of the config keeps showing it.
    await call(
        stub.RecordBusinessAssociateAgreement,
        pb.RecordBusinessAssociateAgreementRequest(
            practice_id="p1", integration_type="ghl", effective_date="2024-04-02"
        ),
    )
    updated = await _set_allow_list(stub, config.config_id, ["patient.email"])
    assert updated.baa_effective_date == "2024-04-02"


async def test_bad_agreements_are_refused(stub) -> None:  # noqa: ANN001
    await _config(stub)
    for date, reason in (("2024-13-01", "INVALID_DATE"), ("01/03/2024", "INVALID_DATE"), ("2024-3-1", "INVALID_DATE")):
        with pytest.raises(InvalidArgument) as error:
            await call(
                stub.RecordBusinessAssociateAgreement,
                pb.RecordBusinessAssociateAgreementRequest(
                    practice_id="p1", integration_type="ghl", effective_date=date
                ),
            )
        assert (error.value.field, error.value.reason) == ("effective_date", reason)
    with pytest.raises(NotFound) as missing:
        await call(
            stub.RecordBusinessAssociateAgreement,
            pb.RecordBusinessAssociateAgreementRequest(
                practice_id="p1", integration_type="nope", effective_date="2024-03-01"
            ),
        )
    assert missing.value.reason == "DEFINITION_NOT_FOUND"
    # Another practice's user: refused (by the confinement floor, or the registry's own check).
    with (
        acting_as(Caller(user_id="u-other", practice_id="p2", role="admin")),
        pytest.raises((PermissionDenied, NotFound)),
    ):
        await call(
            stub.RecordBusinessAssociateAgreement,
            pb.RecordBusinessAssociateAgreementRequest(
                practice_id="p1", integration_type="ghl", effective_date="2024-03-01"
            ),
        )
    practice = (await call(stub.GetPractice, pb.GetPracticeRequest(practice_id="p1"))).practice
    assert list(practice.business_associate_agreements) == []
