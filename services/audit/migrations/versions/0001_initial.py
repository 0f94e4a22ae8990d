"""audit: the hash-chained audit_events table

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Append-only by code; production should also REVOKE UPDATE, DELETE, TRUNCATE (HIPAA hardening issue).
    op.create_table(
        "audit_events",
        sa.Column("event_id", sa.String(36), primary_key=True),
        sa.Column("practice_id", sa.String(64), nullable=False),
        sa.Column("sequence", sa.BigInteger, nullable=False),
        sa.Column("timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("resource", sa.String(256), nullable=False),
        sa.Column("patient_id", sa.String(64), nullable=False),
        sa.Column("integration_type", sa.String(64), nullable=False),
        sa.Column("data_accessed", sa.JSON, nullable=False),
        sa.Column("success", sa.Boolean, nullable=False),
        sa.Column("ip_address", sa.String(64), nullable=False),
        sa.Column("user_agent", sa.String(1024), nullable=False),
        sa.Column("correlation_id", sa.String(128), nullable=False),
        sa.Column("previous_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.UniqueConstraint("practice_id", "sequence", name="uq_audit_events_practice_id_sequence"),
    )
    op.create_index("ix_audit_events_practice_id_patient_id", "audit_events", ["practice_id", "patient_id", "sequence"])
    op.create_index("ix_audit_events_practice_id_user_id", "audit_events", ["practice_id", "user_id", "sequence"])
    op.create_index("ix_audit_events_practice_id_timestamp", "audit_events", ["practice_id", "timestamp"])


def downgrade() -> None:
    op.drop_index("ix_audit_events_practice_id_timestamp", table_name="audit_events")
    op.drop_index("ix_audit_events_practice_id_user_id", table_name="audit_events")
    op.drop_index("ix_audit_events_practice_id_patient_id", table_name="audit_events")
    op.drop_table("audit_events")
