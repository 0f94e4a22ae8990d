"""Protobuf <-> mapping domain, pure functions."""

from __future__ import annotations

import json

from google.protobuf import json_format, struct_pb2

from libs.protos.concord.common.v1 import common_pb2
from libs.protos.concord.mapping.v1 import mapping_pb2 as pb
from services.mapping.domain import FieldError, HubResult, VendorResult


def entity_name(value: int) -> str:
    return common_pb2.EntityType.Name(value) if value in common_pb2.EntityType.values() else str(value)


def record_from_proto(record: struct_pb2.Struct) -> dict:
    return json_format.MessageToDict(record)


def _errors(errors: list[FieldError]) -> list[pb.FieldError]:
    return [pb.FieldError(field=e.field, reason=e.reason, message=e.message) for e in errors]


def hub_result_to_proto(result: HubResult) -> pb.HubMappingResult:
    resource_json = json.dumps(result.resource, ensure_ascii=False) if result.resource is not None else ""
    return pb.HubMappingResult(
        resource_json=resource_json, errors=_errors(result.errors), external_id=result.external_id
    )


def vendor_result_to_proto(result: VendorResult) -> pb.VendorMappingResult:
    message = pb.VendorMappingResult(errors=_errors(result.errors))
    if result.record is not None:
        message.vendor_record.update(result.record)
    return message
