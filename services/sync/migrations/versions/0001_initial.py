"""sync: patients, links, cursors, sync logs, data keys

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
    op.create_table(
        "sync_data_keys",
        sa.Column("key_id", sa.String(36), primary_key=True),
        sa.Column("practice_id", sa.String(64), nullable=False),
        sa.Column("kek_id", sa.String(64), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_sync_data_keys_practice_id", "sync_data_keys", ["practice_id"])
    op.create_table(
        "sync_patients",
        sa.Column("patient_id", sa.String(36), primary_key=True),
        sa.Column("practice_id", sa.String(64), nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("resource_enc", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_sync_patients_practice_id", "sync_patients", ["practice_id"])
    op.create_table(
        "sync_patient_links",
        sa.Column("config_id", sa.String(36), primary_key=True),
        sa.Column("patient_id", sa.String(36), primary_key=True),
        sa.Column("practice_id", sa.String(64), nullable=False),
        sa.Column("external_id", sa.String(128), nullable=False),
        sa.Column("synced_version", sa.BigInteger, nullable=False),
        sa.Column("base_enc", sa.LargeBinary, nullable=False),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("config_id", "external_id", name="uq_sync_patient_links_config_id_external_id"),
    )
    op.create_table(
        "sync_cursors",
        sa.Column("config_id", sa.String(36), primary_key=True),
        sa.Column("entity_type", sa.String(32), primary_key=True),
        sa.Column("cursor", sa.Text, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "sync_integration_sync_logs",
        sa.Column("run_id", sa.String(36), primary_key=True),
        sa.Column("config_id", sa.String(36), nullable=False),
        sa.Column("practice_id", sa.String(64), nullable=False),
        sa.Column("integration_type", sa.String(64), nullable=False),
        sa.Column("entity_type", sa.String(32), nullable=False),
        sa.Column("direction", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("records_processed", sa.Integer, nullable=False),
        sa.Column("records_succeeded", sa.Integer, nullable=False),
        sa.Column("records_failed", sa.Integer, nullable=False),
        sa.Column("records_created", sa.Integer, nullable=False),
        sa.Column("records_updated", sa.Integer, nullable=False),
        sa.Column("vendor_requests", sa.Integer, nullable=False),
        sa.Column("error_details", sa.JSON, nullable=False),
        sa.Column("error_message", sa.Text, nullable=False),
        sa.Column("trace_id", sa.String(32), nullable=False),
        sa.Column("workflow_id", sa.String(128), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_sync_integration_sync_logs_config_id", "sync_integration_sync_logs", ["config_id"])
    op.create_index("ix_sync_integration_sync_logs_practice_id", "sync_integration_sync_logs", ["practice_id"])


def downgrade() -> None:
    op.drop_table("sync_integration_sync_logs")
    op.drop_table("sync_cursors")
    op.drop_table("sync_patient_links")
    op.drop_table("sync_patients")
    op.drop_table("sync_data_keys")
