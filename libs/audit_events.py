"""Audit events made on behalf of the caller of the current gRPC call: who (from the caller
identity in gRPC metadata, else the service's own system user), from where and under which request.
Services record them through the audit service's Record RPC."""

from __future__ import annotations

from typing import Any

from libs.identity import current_caller
from libs.protos.concord.audit.v1 import audit_pb2


def caller_event(
    practice_id: str, action: str, resource: str, integration_type: str, system_user: str, **fields: Any
) -> audit_pb2.AuditEvent:
    """An event by the current caller (``system_user`` when there is none); ``fields`` are the
    event's other fields (success defaults to True)."""
    caller = current_caller()
    return audit_pb2.AuditEvent(
        practice_id=practice_id,
        user_id=caller.user_id or system_user,
        action=action,
        resource=resource,
        integration_type=integration_type,
        ip_address=caller.ip_address,
        user_agent=caller.user_agent,
        correlation_id=caller.request_id,
        **{"success": True, **fields},
    )
