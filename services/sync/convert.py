"""Protobuf <-> sync rows, pure functions."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from libs.proto_convert import timestamp
from libs.protos.concord.common.v1 import common_pb2
from libs.protos.concord.sync.v1 import sync_pb2 as pb


def patient_to_proto(resource: dict, row: Any) -> pb.Patient:
    # A row read back from the database, or the dict CreatePatient has just inserted.
    return pb.Patient(
        patient_id=_get(row, "record_id"),
        practice_id=_get(row, "practice_id"),
        resource_json=json.dumps(resource, ensure_ascii=False),
        version=_get(row, "version"),
        create_time=timestamp(_get(row, "created_at")),
        update_time=timestamp(_get(row, "updated_at")),
    )


def run_to_proto(row: Any) -> pb.SyncRun:
    return pb.SyncRun(
        **{
            name: _get(row, name)
            for name in (
                "run_id",
                "config_id",
                "practice_id",
                "integration_type",
                "records_processed",
                "records_succeeded",
                "records_failed",
                "records_created",
                "records_updated",
                "vendor_requests",
                "trace_id",
                "workflow_id",
                "error_message",
            )
        },
        entity_type=common_pb2.EntityType.Value(_get(row, "entity_type")),
        direction=common_pb2.SyncDirection.Value(_get(row, "direction")),
        status=pb.SyncRunStatus.Value(f"SYNC_RUN_STATUS_{_get(row, 'status')}"),
        errors=[pb.RecordError(**e) for e in _get(row, "error_details")],
        start_time=timestamp(_get(row, "started_at")),
        end_time=timestamp(_get(row, "completed_at")),
    )


def _get(row: Any, name: str) -> Any:
    return row[name] if isinstance(row, dict) else getattr(row, name)


def link_to_proto(row: Any) -> pb.PatientLink:
    return pb.PatientLink(
        patient_id=row.record_id,
        config_id=row.config_id,
        external_id=row.external_id,
        synced_version=row.synced_version,
        sync_time=timestamp(row.synced_at),
    )


def record_to_proto(resource: dict, row: Any) -> pb.Record:
    return pb.Record(
        record_id=_get(row, "record_id"),
        practice_id=_get(row, "practice_id"),
        entity_type=common_pb2.EntityType.Value(_get(row, "entity_type")),
        resource_json=json.dumps(resource, ensure_ascii=False),
        version=_get(row, "version"),
        create_time=timestamp(_get(row, "created_at")),
        update_time=timestamp(_get(row, "updated_at")),
    )


def review_to_proto(row: Any) -> pb.ReviewItem:
    return pb.ReviewItem(
        review_id=row.review_id,
        config_id=row.config_id,
        entity_type=common_pb2.EntityType.Value(row.entity_type),
        record_id=row.record_id,
        external_id=row.external_id,
        field=row.field,
        status=pb.ReviewStatus.Value(f"REVIEW_STATUS_{row.status}"),
        run_id=row.run_id,
        create_time=timestamp(row.created_at),
        update_time=timestamp(row.updated_at),
        resolve_time=timestamp(row.resolved_at),
        resolved_by=row.resolved_by,
        resolution=pb.ReviewChoice.Value(f"REVIEW_CHOICE_{row.resolution.upper()}") if row.resolution else 0,
        kind=pb.ReviewKind.Value(f"REVIEW_KIND_{row.kind.upper()}"),
        reasons=list(row.reasons or []),
    )


# What an identity item shows of the parked vendor record.
IDENTIFYING = ("given_name", "family_name", "birth_date", "gender", "email", "phone", "postal_code")


def review_values_to_proto(values: dict[str, Any], vendor_record: dict[str, Any] | None = None) -> pb.ReviewValues:
    message = pb.ReviewValues(
        **{side: values[side] for side in ("base", "hub", "vendor") if values.get(side) is not None}
    )
    for side, name in (("hub_modified", "hub_modify_time"), ("vendor_modified", "vendor_modify_time")):
        if values.get(side):
            getattr(message, name).FromDatetime(datetime.fromisoformat(values[side]))
    for name in IDENTIFYING:
        if (vendor_record or {}).get(name):
            message.vendor_record[name] = str(vendor_record[name])
    return message


def letter_to_proto(row: Any) -> pb.DeadLetter:
    return pb.DeadLetter(
        letter_id=row.letter_id,
        config_id=row.config_id,
        entity_type=common_pb2.EntityType.Value(row.entity_type),
        direction=row.direction,
        record_ref=row.record_ref,
        error_class=row.error_class,
        field=row.field,
        message=row.message,
        status=row.status,
        attempts=row.attempts,
        run_id=row.run_id,
        first_seen_time=timestamp(row.first_seen_at),
        last_seen_time=timestamp(row.last_seen_at),
        resolve_time=timestamp(row.resolved_at),
    )
