"""Protobuf <-> mapping domain, pure functions."""

from __future__ import annotations

import json

from google.protobuf import json_format, struct_pb2

from libs.errors import InvalidArgument
from libs.protos.concord.common.v1 import common_pb2
from libs.protos.concord.mapping.v1 import mapping_pb2 as pb
from libs.protos.concord.registry.v1 import registry_pb2
from services.mapping.domain import FieldError, HubResult, VendorResult
from services.mapping.rules import FieldRule


def entity_name(value: int) -> str:
    return common_pb2.EntityType.Name(value) if value in common_pb2.EntityType.values() else str(value)


def record_from_proto(record: struct_pb2.Struct) -> dict:
    return json_format.MessageToDict(record)


def options_from_proto(options: registry_pb2.VendorOptions) -> dict:
    """VendorOptions as the JSON the registry stores (proto field names, enum names)."""
    return json_format.MessageToDict(options, preserving_proto_field_name=True)


def _errors(errors: list[FieldError]) -> list[pb.FieldError]:
    return [pb.FieldError(field=e.field, reason=e.reason, message=e.message) for e in errors]


def hub_result_to_proto(result: HubResult) -> pb.HubMappingResult:
    resource_json = json.dumps(result.resource, ensure_ascii=False) if result.resource is not None else ""
    message = pb.HubMappingResult(
        resource_json=resource_json, errors=_errors(result.errors), external_id=result.external_id
    )
    if result.modified_at is not None:
        message.modified_time.FromDatetime(result.modified_at)
    return message


def vendor_result_to_proto(result: VendorResult) -> pb.VendorMappingResult:
    message = pb.VendorMappingResult(
        errors=_errors(result.errors),
        withheld_fields=list(result.withheld_fields),
        withheld=result.withheld,
        disclosed_fields=list(result.disclosed_fields),
    )
    if result.record is not None:
        message.vendor_record.update(result.record)
    return message


_DIRECTIONS = {
    pb.MAPPING_DIRECTION_TO_HUB: "to_hub",
    pb.MAPPING_DIRECTION_TO_VENDOR: "to_vendor",
    pb.MAPPING_DIRECTION_BOTH: "both",
    pb.MAPPING_DIRECTION_NONE: "none",
}
_DIRECTION_ENUMS = {name: value for value, name in _DIRECTIONS.items()}
_SOURCES = {"default": pb.MAPPING_SOURCE_DEFAULT, "override": pb.MAPPING_SOURCE_OVERRIDE}


def direction_name(value: int, field: str = "direction") -> str:
    name = _DIRECTIONS.get(value)
    if name is None:
        raise InvalidArgument(f"{field} must be set", field=field, reason="INVALID_DIRECTION")
    return name


def rule_from_proto(message: pb.FieldMapping, entity_type: str) -> FieldRule:
    """An override as sent; an unset direction stays "" for rules.validate to refuse, naming the
    override (after the config is found, so the refused change is audited)."""
    return FieldRule(
        entity_type,
        message.hub_field,
        message.vendor_field,
        message.transform.name or "identity",
        json_format.MessageToDict(message.transform.params),
        _DIRECTIONS.get(message.direction, ""),
        "override",
    )


def rule_to_proto(rule: FieldRule) -> pb.FieldMapping:
    message = pb.FieldMapping(
        entity_type=common_pb2.EntityType.Value(rule.entity_type),
        hub_field=rule.hub_field,
        vendor_field=rule.vendor_field,
        transform=pb.Transform(name=rule.transform),
        direction=_DIRECTION_ENUMS[rule.direction],
        source=_SOURCES[rule.source],
    )
    message.transform.params.update(rule.params)
    return message
