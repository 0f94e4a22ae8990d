"""Audit events of mapping changes, recorded through the audit service's Record RPC.

A change of a config's field mappings decides what later disclosures send to a vendor, so each
ReplaceFieldMappings and DeleteFieldMapping leaves one event in the practice's hash chain:
action ``mapping.change``, resource ``IntegrationConfig/<id>/_history/<mapping version>`` (the
version the change made; without ``/_history`` when it failed), the vendor, the canonical fields
whose mapping changed (``patient.phone``: names, never values, and never a field name the caller
made up), who made it and from where (the caller identity in gRPC metadata), success or not.
"""

from __future__ import annotations

from collections.abc import Iterable

from libs.audit_events import caller_event
from libs.grpc_client import call
from libs.protos.concord.audit.v1 import audit_pb2, audit_pb2_grpc
from services.mapping.configs import ConfigRef
from services.mapping.rules import ENTITIES

ACTION = "mapping.change"
SYSTEM_USER = "system:mapping"


def changed_fields(entity_type: str, hub_fields: Iterable[str]) -> list[str]:
    """``<entity>.<hub field>`` for the canonical fields among ``hub_fields``, sorted; others dropped
    (a hub field the caller sent may be anything, a patient's name included)."""
    entity = ENTITIES.get(entity_type)
    known = set(hub_fields) & set(entity.fields if entity else ())
    prefix = entity_type.removeprefix("ENTITY_TYPE_").lower()
    return [f"{prefix}.{name}" for name in sorted(known)]


class MappingAudit:
    def __init__(self, audit: audit_pb2_grpc.AuditServiceStub) -> None:
        self._audit = audit

    async def record(self, config: ConfigRef, fields: list[str], *, version: int = 0, success: bool) -> None:
        resource = f"IntegrationConfig/{config.config_id}"
        event = caller_event(
            config.practice_id,
            ACTION,
            f"{resource}/_history/{version}" if success else resource,
            config.integration_type,
            SYSTEM_USER,
            data_accessed=fields,
            success=success,
        )
        await call(self._audit.Record, audit_pb2.RecordRequest(events=[event]))
