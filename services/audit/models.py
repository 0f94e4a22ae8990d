"""Audit tables (audit_*).

audit_events is append-only: the code never issues UPDATE or DELETE on it. Production PostgreSQL
should also REVOKE UPDATE, DELETE, TRUNCATE ON audit_events from the service's role (left for the
HIPAA hardening issue); Verify detects any change made anyway.
"""

from sqlalchemy import JSON, BigInteger, Boolean, Column, DateTime, Index, String, Table, UniqueConstraint

from libs.db import make_metadata

metadata = make_metadata()

events = Table(
    "audit_events",
    metadata,
    Column("event_id", String(36), primary_key=True),
    Column("practice_id", String(64), nullable=False),
    Column("sequence", BigInteger, nullable=False),
    Column("timestamp", DateTime(timezone=True), nullable=False),
    Column("user_id", String(128), nullable=False),
    Column("action", String(64), nullable=False),
    Column("resource", String(256), nullable=False),
    Column("patient_id", String(64), nullable=False),
    Column("integration_type", String(64), nullable=False),
    Column("data_accessed", JSON, nullable=False),
    Column("success", Boolean, nullable=False),
    Column("ip_address", String(64), nullable=False),
    Column("user_agent", String(1024), nullable=False),
    Column("correlation_id", String(128), nullable=False),
    # The field-mapping version a disclosure was made under; 0 for every other event (0002).
    Column("mapping_version", BigInteger, nullable=False, server_default="0"),
    Column("previous_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    # One event per position: a second writer racing for the same head fails here and retries.
    UniqueConstraint("practice_id", "sequence"),
    # Trailing sequence lets filtered queries page in sequence order straight from the index.
    Index("ix_audit_events_practice_id_patient_id", "practice_id", "patient_id", "sequence"),
    Index("ix_audit_events_practice_id_user_id", "practice_id", "user_id", "sequence"),
    Index("ix_audit_events_practice_id_timestamp", "practice_id", "timestamp"),
)
