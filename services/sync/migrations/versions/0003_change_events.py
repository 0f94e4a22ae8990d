"""sync: change events accepted per config (CDC replay position and dedupe), run start times

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sync_change_events",
        sa.Column("config_id", sa.String(36), primary_key=True),
        sa.Column("replay_id", sa.String(128), primary_key=True),
        sa.Column("entity_type", sa.String(32), nullable=False),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_sync_change_events_config_accepted", "sync_change_events", ["config_id", "accepted_at"])
    with op.batch_alter_table("sync_integration_sync_logs") as batch:
        batch.add_column(sa.Column("starts_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sync_integration_sync_logs") as batch:
        batch.drop_column("starts_at")
    op.drop_index("ix_sync_change_events_config_accepted", table_name="sync_change_events")
    op.drop_table("sync_change_events")
