"""connection: inbound API keys and REST hook subscriptions (Zapier)

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
        "connection_inbound_keys",
        sa.Column("key_id", sa.String(36), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("config_id", sa.String(36), nullable=False),
        sa.Column("practice_id", sa.String(64), nullable=False),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("key_id", name=op.f("pk_connection_inbound_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_connection_inbound_keys_key_hash")),
    )
    op.create_index(op.f("ix_connection_inbound_keys_config_id"), "connection_inbound_keys", ["config_id"])
    op.create_table(
        "connection_hook_subscriptions",
        sa.Column("subscription_id", sa.String(36), nullable=False),
        sa.Column("config_id", sa.String(36), nullable=False),
        sa.Column("practice_id", sa.String(64), nullable=False),
        sa.Column("event", sa.String(64), nullable=False),
        sa.Column("encrypted_target_url", sa.LargeBinary, nullable=False),
        sa.Column("encrypted_signing_secret", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("subscription_id", name=op.f("pk_connection_hook_subscriptions")),
    )
    op.create_index(op.f("ix_connection_hook_subscriptions_config_id"), "connection_hook_subscriptions", ["config_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_connection_hook_subscriptions_config_id"), table_name="connection_hook_subscriptions")
    op.drop_table("connection_hook_subscriptions")
    op.drop_index(op.f("ix_connection_inbound_keys_config_id"), table_name="connection_inbound_keys")
    op.drop_table("connection_inbound_keys")
