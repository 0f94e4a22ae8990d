"""connection: OAuth clients, connections, pending authorizations, data keys

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
        "connection_oauth_clients",
        sa.Column("integration_type", sa.String(64), primary_key=True),
        sa.Column("client_id", sa.String(255), nullable=False),
        sa.Column("encrypted_client_secret", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "connection_connections",
        sa.Column("config_id", sa.String(36), primary_key=True),
        sa.Column("practice_id", sa.String(64), nullable=False),
        sa.Column("integration_type", sa.String(64), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("encrypted_access_token", sa.LargeBinary, nullable=True),
        sa.Column("encrypted_refresh_token", sa.LargeBinary, nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("scopes", sa.JSON, nullable=False),
        sa.Column("external_account_id", sa.String(255), nullable=False),
        sa.Column("connected_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_refresh_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_connection_connections_practice_id", "connection_connections", ["practice_id"])
    op.create_index("ix_connection_connections_expires_at", "connection_connections", ["expires_at"])
    op.create_table(
        "connection_pending_authorizations",
        sa.Column("state_hash", sa.String(64), primary_key=True),
        sa.Column("config_id", sa.String(36), nullable=False),
        sa.Column("practice_id", sa.String(64), nullable=False),
        sa.Column("redirect_uri", sa.String(2048), nullable=False),
        sa.Column("encrypted_code_verifier", sa.LargeBinary, nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ix_connection_pending_authorizations_config_id", "connection_pending_authorizations", ["config_id"]
    )
    op.create_index(
        "ix_connection_pending_authorizations_expires_at", "connection_pending_authorizations", ["expires_at"]
    )
    op.create_table(
        "connection_data_keys",
        sa.Column("key_id", sa.String(36), primary_key=True),
        sa.Column("practice_id", sa.String(64), nullable=False),
        sa.Column("kek_id", sa.String(64), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_connection_data_keys_practice_id", "connection_data_keys", ["practice_id"])


def downgrade() -> None:
    op.drop_table("connection_data_keys")
    op.drop_table("connection_pending_authorizations")
    op.drop_table("connection_connections")
    op.drop_table("connection_oauth_clients")
