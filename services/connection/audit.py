"""Audit events of changes to the credentials Concord issues to Zapier, recorded through the audit
service's Record RPC.

A key, an OAuth client or a grant decides who may read and write the practice's patients through
the Zapier API, so issuing or ending one leaves an event in the practice's hash chain: action
``credential.create`` / ``credential.consent`` / ``credential.revoke``, resource
``InboundKey/<id>``, ``IssuedOAuthClient/<client id>`` or ``IssuedOAuthGrant/<grant id>`` (ids
Concord made, never a secret), who did it and from where (the caller identity in gRPC metadata).
Callers record the event inside the change's transaction, before it commits: a change the audit
service did not take is rolled back, so none goes unaudited. A grant ended by a replayed code or
refresh token is recorded after its revocation commits (``system:connection``): ending a grant
that may be stolen must not wait for the audit service.
"""

from __future__ import annotations

from libs.audit_events import caller_event
from libs.grpc_client import call
from libs.protos.concord.audit.v1 import audit_pb2, audit_pb2_grpc

CREATE = "credential.create"
CONSENT = "credential.consent"
REVOKE = "credential.revoke"
# Every credential of a practice made unreadable at offboarding (its data keys destroyed).
SHRED = "credential.shred"
SYSTEM_USER = "system:connection"


class CredentialAudit:
    def __init__(self, audit: audit_pb2_grpc.AuditServiceStub) -> None:
        self._audit = audit

    async def record(
        self, action: str, resource: str, practice_id: str, integration_type: str, *, by_system: bool = False
    ) -> None:
        event = caller_event(practice_id, action, resource, integration_type, SYSTEM_USER)
        if by_system:
            event.user_id = SYSTEM_USER
        await call(self._audit.Record, audit_pb2.RecordRequest(events=[event]))


async def audited(
    audit: CredentialAudit | None, action: str, resource: str, practice_id: str, integration_type: str
) -> None:
    """Records the event when the service has an audit channel (every running service does; unit
    tests of the stores alone pass none)."""
    if audit is not None:
        await audit.record(action, resource, practice_id, integration_type)
