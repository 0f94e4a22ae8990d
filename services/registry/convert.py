"""Protobuf <-> registry domain, pure functions."""

from __future__ import annotations

from google.protobuf import json_format

from libs.proto_convert import enum_name, timestamp
from libs.protos.concord.common.v1 import common_pb2
from libs.protos.concord.registry.v1 import registry_pb2
from services.registry.domain import BusinessAssociateAgreement, IntegrationConfig, Practice


def practice_to_proto(practice: Practice) -> registry_pb2.Practice:
    return registry_pb2.Practice(
        practice_id=practice.practice_id,
        name=practice.name,
        create_time=timestamp(practice.created_at),
        business_associate_agreements=[agreement_to_proto(a) for a in practice.agreements],
    )


def agreement_to_proto(agreement: BusinessAssociateAgreement) -> registry_pb2.BusinessAssociateAgreement:
    return registry_pb2.BusinessAssociateAgreement(
        integration_type=agreement.integration_type,
        effective_date=agreement.effective_date,
        record_time=timestamp(agreement.recorded_at),
        recorded_by=agreement.recorded_by,
    )


def definition_to_proto(document: dict) -> registry_pb2.IntegrationDefinition:
    return json_format.ParseDict(document, registry_pb2.IntegrationDefinition(), ignore_unknown_fields=False)


def definition_from_proto(message: registry_pb2.IntegrationDefinition) -> dict:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def config_from_proto(message: registry_pb2.IntegrationConfig) -> IntegrationConfig:
    return IntegrationConfig(
        config_id=message.config_id,
        practice_id=message.practice_id,
        integration_type=message.integration_type,
        sync_direction=enum_name(common_pb2.SyncDirection, message.sync_direction),
        sync_frequency=enum_name(common_pb2.SyncFrequency, message.sync_frequency),
        conflict_policy=enum_name(common_pb2.ConflictPolicy, message.conflict_policy),
        active=message.active,
        enabled_entities=[common_pb2.EntityType.Name(e) for e in message.enabled_entities],
        options=json_format.MessageToDict(message.options, preserving_proto_field_name=True),
        field_conflict_policies={
            key: enum_name(common_pb2.ConflictPolicy, value) for key, value in message.field_conflict_policies.items()
        },
        field_allow_list=list(message.field_allow_list),
    )


def config_to_proto(config: IntegrationConfig) -> registry_pb2.IntegrationConfig:
    return registry_pb2.IntegrationConfig(
        config_id=config.config_id,
        practice_id=config.practice_id,
        integration_type=config.integration_type,
        sync_direction=common_pb2.SyncDirection.Value(config.sync_direction),
        sync_frequency=common_pb2.SyncFrequency.Value(config.sync_frequency),
        conflict_policy=common_pb2.ConflictPolicy.Value(config.conflict_policy),
        active=config.active,
        enabled_entities=[common_pb2.EntityType.Value(e) for e in config.enabled_entities],
        options=json_format.ParseDict(config.options or {}, registry_pb2.VendorOptions(), ignore_unknown_fields=True),
        create_time=timestamp(config.created_at),
        update_time=timestamp(config.updated_at),
        field_conflict_policies={
            key: common_pb2.ConflictPolicy.Value(value) for key, value in config.field_conflict_policies.items()
        },
        field_allow_list=list(config.field_allow_list or []),
        baa_effective_date=config.baa_effective_date,
    )
