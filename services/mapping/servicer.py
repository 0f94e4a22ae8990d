"""Mapping gRPC servicer: protobuf in, use case, protobuf out."""

from __future__ import annotations

from libs.proto_convert import required
from libs.protos.concord.mapping.v1 import mapping_pb2 as pb
from libs.protos.concord.mapping.v1 import mapping_pb2_grpc
from services.mapping import convert
from services.mapping.service import MappingService


class MappingServicer(mapping_pb2_grpc.MappingServiceServicer):
    def __init__(self, service: MappingService) -> None:
        self._service = service

    async def MapToHub(self, request: pb.MapToHubRequest, context) -> pb.MapToHubResponse:  # noqa: ANN001
        results = await self._service.map_to_hub(
            required(request.integration_type, "integration_type"),
            convert.entity_name(request.entity_type),
            [convert.record_from_proto(record) for record in request.vendor_records],
        )
        return pb.MapToHubResponse(results=[convert.hub_result_to_proto(r) for r in results])

    async def MapToVendor(self, request: pb.MapToVendorRequest, context) -> pb.MapToVendorResponse:  # noqa: ANN001
        results = await self._service.map_to_vendor(
            required(request.integration_type, "integration_type"),
            convert.entity_name(request.entity_type),
            list(request.resource_jsons),
        )
        return pb.MapToVendorResponse(results=[convert.vendor_result_to_proto(r) for r in results])
