"""sync: dead letters

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sync_dead_letters",
        sa.Column("letter_id", sa.String(36), primary_key=True),
        sa.Column("practice_id", sa.String(64), nullable=False),
        sa.Column("config_id", sa.String(36), nullable=False),
        sa.Column("entity_type", sa.String(32), nullable=False),
        sa.Column("direction", sa.String(8), nullable=False),
        sa.Column("record_ref", sa.String(128), nullable=False),
        sa.Column("error_class", sa.String(64), nullable=False),
        sa.Column("field", sa.String(128), nullable=False, server_default=""),
        sa.Column("message", sa.Text, nullable=False, server_default=""),
        sa.Column("payload_enc", sa.LargeBinary, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="1"),
        sa.Column("run_id", sa.String(36), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index(
        "ix_sync_dead_letters_record",
        "sync_dead_letters",
        ["config_id", "entity_type", "direction", "record_ref", "status"],
    )
    op.create_index("ix_sync_dead_letters_practice", "sync_dead_letters", ["practice_id", "status", "error_class"])


def downgrade() -> None:
    op.drop_index("ix_sync_dead_letters_practice", table_name="sync_dead_letters")
    op.drop_index("ix_sync_dead_letters_record", table_name="sync_dead_letters")
    op.drop_table("sync_dead_letters")
