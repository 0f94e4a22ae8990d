"""sync: the webhook inbox

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sync_inbox",
        sa.Column("config_id", sa.String(36), primary_key=True),
        sa.Column("event_id", sa.String(128), primary_key=True),
        sa.Column("entity_type", sa.String(32), nullable=False),
        sa.Column("external_id", sa.String(128), nullable=False),
        sa.Column("deleted", sa.Integer, nullable=False, server_default="0"),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("run_id", sa.String(36), nullable=False, server_default=""),
    )
    op.create_index("ix_sync_inbox_pending", "sync_inbox", ["config_id", "processed_at", "received_at"])


def downgrade() -> None:
    op.drop_index("ix_sync_inbox_pending", table_name="sync_inbox")
    op.drop_table("sync_inbox")
