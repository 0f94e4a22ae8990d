"""Protobuf <-> audit domain, pure functions."""

from __future__ import annotations

from datetime import UTC, datetime

from libs.proto_convert import timestamp
from libs.protos.concord.audit.v1 import audit_pb2 as pb
from services.audit.domain import AuditEvent, Verification


def timestamp_from_proto(
    message: pb.AuditEvent | pb.QueryRequest | pb.ListDisclosuresRequest, name: str
) -> datetime | None:
    return getattr(message, name).ToDatetime(tzinfo=UTC) if message.HasField(name) else None


def event_from_proto(message: pb.AuditEvent) -> AuditEvent:
    """What a caller may say about an event; id, position and hashes are the service's to assign."""
    return AuditEvent(
        practice_id=message.practice_id,
        action=message.action,
        timestamp=timestamp_from_proto(message, "timestamp"),
        user_id=message.user_id,
        resource=message.resource,
        patient_id=message.patient_id,
        integration_type=message.integration_type,
        data_accessed=tuple(message.data_accessed),
        success=message.success,
        ip_address=message.ip_address,
        user_agent=message.user_agent,
        correlation_id=message.correlation_id,
        mapping_version=message.mapping_version,
    )


def event_to_proto(event: AuditEvent) -> pb.AuditEvent:
    return pb.AuditEvent(
        event_id=event.event_id,
        practice_id=event.practice_id,
        timestamp=timestamp(event.timestamp) if event.timestamp else None,
        user_id=event.user_id,
        action=event.action,
        resource=event.resource,
        patient_id=event.patient_id,
        integration_type=event.integration_type,
        data_accessed=list(event.data_accessed),
        success=event.success,
        ip_address=event.ip_address,
        user_agent=event.user_agent,
        sequence=event.sequence,
        previous_hash=event.previous_hash,
        hash=event.hash,
        correlation_id=event.correlation_id,
        mapping_version=event.mapping_version,
    )


def disclosure_to_proto(event: AuditEvent) -> pb.Disclosure:
    return pb.Disclosure(
        event_id=event.event_id,
        timestamp=timestamp(event.timestamp) if event.timestamp else None,
        action=event.action,
        resource=event.resource,
        patient_id=event.patient_id,
        integration_type=event.integration_type,
        data_accessed=list(event.data_accessed),
        run_id=event.correlation_id,
        mapping_version=event.mapping_version,
        user_id=event.user_id,
        sequence=event.sequence,
    )


def verification_to_proto(result: Verification) -> pb.VerifyResponse:
    return pb.VerifyResponse(
        intact=result.intact,
        events_checked=result.events_checked,
        first_broken_sequence=result.first_broken_sequence,
        problem=result.problem,
        head_hash=result.head_hash,
    )
