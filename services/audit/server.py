"""Builds the audit service: database, use cases, gRPC server."""

from __future__ import annotations

from pathlib import Path

from libs.grpc_server import ServiceBinding
from libs.protos.concord.audit.v1 import audit_pb2, audit_pb2_grpc
from libs.service import RunningService, open_database, serve_grpc
from libs.settings import Settings
from services.audit.repository import AuditRepository
from services.audit.service import AuditService
from services.audit.servicer import AuditServicer

NAME = "audit"


async def start(settings: Settings, address: str = "127.0.0.1:0") -> RunningService:
    db = await open_database(NAME, settings, Path(__file__).parent / "migrations")
    binding = ServiceBinding(
        audit_pb2.DESCRIPTOR.services_by_name["AuditService"].full_name,
        audit_pb2_grpc.add_AuditServiceServicer_to_server,
        AuditServicer(AuditService(AuditRepository(db.sessions))),
    )
    return await serve_grpc(NAME, address, [binding], [db.engine.dispose])
