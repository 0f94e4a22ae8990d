"""Audit gRPC servicer: protobuf in, use case, protobuf out."""

from __future__ import annotations

from libs.errors import InvalidArgument
from libs.paging import decode_token, next_token, page_size
from libs.proto_convert import required
from libs.protos.concord.audit.v1 import audit_pb2 as pb
from libs.protos.concord.audit.v1 import audit_pb2_grpc
from services.audit import convert
from services.audit.domain import EventFilter
from services.audit.service import AuditService


def _after_sequence(token: str) -> int:
    """Page tokens hold the last sequence returned."""
    last = decode_token(token)
    if not last:
        return 0
    if not last.isdigit():
        raise InvalidArgument("page_token is not valid", field="page_token", reason="INVALID_PAGE_TOKEN")
    return int(last)


class AuditServicer(audit_pb2_grpc.AuditServiceServicer):
    def __init__(self, service: AuditService) -> None:
        self._service = service

    async def Record(self, request: pb.RecordRequest, context) -> pb.RecordResponse:  # noqa: ANN001
        events = await self._service.record([convert.event_from_proto(e) for e in request.events])
        return pb.RecordResponse(events=[convert.event_to_proto(e) for e in events])

    async def Query(self, request: pb.QueryRequest, context) -> pb.QueryResponse:  # noqa: ANN001
        where = EventFilter(
            practice_id=required(request.practice_id, "practice_id"),
            patient_id=request.patient_id,
            user_id=request.user_id,
            action=request.action,
            start_time=convert.timestamp_from_proto(request, "start_time"),
            end_time=convert.timestamp_from_proto(request, "end_time"),
        )
        limit = page_size(request.page_size)
        events = await self._service.query(where, _after_sequence(request.page_token), limit)
        return pb.QueryResponse(
            events=[convert.event_to_proto(e) for e in events],
            next_page_token=next_token([str(e.sequence) for e in events], limit),
        )

    async def Verify(self, request: pb.VerifyRequest, context) -> pb.VerifyResponse:  # noqa: ANN001
        result = await self._service.verify(required(request.practice_id, "practice_id"))
        return convert.verification_to_proto(result)

    async def ListDisclosures(self, request: pb.ListDisclosuresRequest, context) -> pb.ListDisclosuresResponse:  # noqa: ANN001
        where = EventFilter(
            practice_id=required(request.practice_id, "practice_id"),
            patient_id=required(request.patient_id, "patient_id"),
            start_time=convert.timestamp_from_proto(request, "start_time"),
            end_time=convert.timestamp_from_proto(request, "end_time"),
        )
        limit = page_size(request.page_size)
        events = await self._service.list_disclosures(where, _after_sequence(request.page_token), limit)
        return pb.ListDisclosuresResponse(
            disclosures=[convert.disclosure_to_proto(e) for e in events],
            next_page_token=next_token([str(e.sequence) for e in events], limit),
        )
