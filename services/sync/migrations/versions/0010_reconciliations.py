"""sync: reconciliations (reports) and the vendor ids a running one has seen

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

COUNTS = (
    "hub_count",
    "vendor_count",
    "matched",
    "drifted",
    "healed",
    "unlinked",
    "missing_at_vendor",
    "pending_push",
    "review_items_opened",
)


def upgrade() -> None:
    op.create_table(
        "sync_reconciliations",
        sa.Column("reconciliation_id", sa.String(36), primary_key=True),
        sa.Column("practice_id", sa.String(64), nullable=False),
        sa.Column("config_id", sa.String(36), nullable=False),
        sa.Column("entity_type", sa.String(32), nullable=False),
        sa.Column("run_id", sa.String(36), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("hub_checksum", sa.String(64), nullable=False),
        sa.Column("vendor_checksum", sa.String(64), nullable=False),
        *(sa.Column(name, sa.Integer, nullable=False, server_default="0") for name in COUNTS),
        sa.Column("error_message", sa.Text, nullable=False, server_default=""),
    )
    op.create_index(
        "ix_sync_reconciliations_config", "sync_reconciliations", ["config_id", "entity_type", "started_at"]
    )
    op.create_table(
        "sync_reconciliation_seen",
        sa.Column("reconciliation_id", sa.String(36), primary_key=True),
        sa.Column("external_id", sa.String(128), primary_key=True),
        sa.Column("state", sa.String(8), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("sync_reconciliation_seen")
    op.drop_index("ix_sync_reconciliations_config", table_name="sync_reconciliations")
    op.drop_table("sync_reconciliations")
