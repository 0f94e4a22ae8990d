"""Mapping gRPC servicer: protobuf in, use case, protobuf out."""

from __future__ import annotations

from libs.paging import decode_token, next_token, page_size
from libs.proto_convert import required
from libs.protos.concord.mapping.v1 import mapping_pb2 as pb
from libs.protos.concord.mapping.v1 import mapping_pb2_grpc
from services.mapping import convert
from services.mapping.domain import HubResult
from services.mapping.service import MappingService


class MappingServicer(mapping_pb2_grpc.MappingServiceServicer):
    def __init__(self, service: MappingService) -> None:
        self._service = service

    async def MapToHub(self, request: pb.MapToHubRequest, context) -> pb.MapToHubResponse:  # noqa: ANN001
        results, version = await self._service.map_to_hub_versioned(
            required(request.integration_type, "integration_type"),
            convert.entity_name(request.entity_type),
            [convert.record_from_proto(record) for record in request.vendor_records],
            request.config_id,
            convert.options_from_proto(request.options),
        )
        return pb.MapToHubResponse(results=[convert.hub_result_to_proto(r) for r in results], mapping_version=version)

    async def MapToVendor(self, request: pb.MapToVendorRequest, context) -> pb.MapToVendorResponse:  # noqa: ANN001
        results, version = await self._service.map_to_vendor_versioned(
            required(request.integration_type, "integration_type"),
            convert.entity_name(request.entity_type),
            list(request.resource_jsons),
            request.config_id,
            convert.options_from_proto(request.options),
        )
        return pb.MapToVendorResponse(
            results=[convert.vendor_result_to_proto(r) for r in results], mapping_version=version
        )

    async def ListFieldMappings(self, request: pb.ListFieldMappingsRequest, context) -> pb.ListFieldMappingsResponse:  # noqa: ANN001
        limit = page_size(request.page_size)
        after = decode_token(request.page_token)
        rules, version = await self._service.list_field_mappings(
            required(request.config_id, "config_id"),
            required(request.integration_type, "integration_type"),
            convert.entity_name(request.entity_type),
        )
        page = [rule for rule in rules if rule.hub_field > after][:limit]
        return pb.ListFieldMappingsResponse(
            field_mappings=[convert.rule_to_proto(rule) for rule in page],
            next_page_token=next_token([rule.hub_field for rule in page], limit),
            mapping_version=version,
        )

    async def ReplaceFieldMappings(  # noqa: N802
        self,
        request: pb.ReplaceFieldMappingsRequest,
        context,  # noqa: ANN001
    ) -> pb.ReplaceFieldMappingsResponse:
        entity_type = convert.entity_name(request.entity_type)
        overrides = [convert.rule_from_proto(message, entity_type) for message in request.overrides]
        rules, version = await self._service.replace_field_mappings(
            required(request.config_id, "config_id"),
            required(request.integration_type, "integration_type"),
            entity_type,
            overrides,
            request.expected_version,
        )
        return pb.ReplaceFieldMappingsResponse(
            field_mappings=[convert.rule_to_proto(rule) for rule in rules], mapping_version=version
        )

    async def DeleteFieldMapping(self, request: pb.DeleteFieldMappingRequest, context) -> pb.DeleteFieldMappingResponse:  # noqa: ANN001
        version = await self._service.delete_field_mapping(
            required(request.config_id, "config_id"),
            required(request.integration_type, "integration_type"),
            convert.entity_name(request.entity_type),
            request.hub_field,
        )
        return pb.DeleteFieldMappingResponse(mapping_version=version)

    async def PreviewMapping(self, request: pb.PreviewMappingRequest, context) -> pb.PreviewMappingResponse:  # noqa: ANN001
        direction = convert.direction_name(request.direction)
        sample: dict | str
        if direction == "to_hub":
            if not request.HasField("vendor_record"):
                required("", "vendor_record")
            sample = convert.record_from_proto(request.vendor_record)
        else:
            sample = required(request.resource_json, "resource_json")
        result, version = await self._service.preview(
            request.config_id,
            required(request.integration_type, "integration_type"),
            convert.entity_name(request.entity_type),
            direction,
            sample,
        )
        if isinstance(result, HubResult):
            hub = convert.hub_result_to_proto(result)
            return pb.PreviewMappingResponse(
                resource_json=hub.resource_json, errors=hub.errors, mapping_version=version
            )
        vendor = convert.vendor_result_to_proto(result)
        response = pb.PreviewMappingResponse(errors=vendor.errors, mapping_version=version)
        if vendor.HasField("vendor_record"):
            response.vendor_record.CopyFrom(vendor.vendor_record)
        return response
