"""sync: the manual review queue (conflicting fields held for a person to settle)

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sync_review_items",
        sa.Column("review_id", sa.String(36), primary_key=True),
        sa.Column("practice_id", sa.String(64), nullable=False),
        sa.Column("config_id", sa.String(36), nullable=False),
        sa.Column("entity_type", sa.String(32), nullable=False),
        sa.Column("record_id", sa.String(36), nullable=False),
        sa.Column("external_id", sa.String(128), nullable=False),
        sa.Column("field", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("values_enc", sa.LargeBinary, nullable=False),
        sa.Column("run_id", sa.String(36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_by", sa.String(128), nullable=False, server_default=""),
        sa.Column("resolution", sa.String(16), nullable=False, server_default=""),
    )
    op.create_index(
        "ix_sync_review_items_practice_status", "sync_review_items", ["practice_id", "status", "created_at"]
    )
    op.create_index(
        "ix_sync_review_items_record", "sync_review_items", ["config_id", "entity_type", "record_id", "status"]
    )


def downgrade() -> None:
    op.drop_index("ix_sync_review_items_record", table_name="sync_review_items")
    op.drop_index("ix_sync_review_items_practice_status", table_name="sync_review_items")
    op.drop_table("sync_review_items")
