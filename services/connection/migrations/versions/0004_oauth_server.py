"""connection: OAuth 2.0 clients and grants with Concord as the authorization server (Zapier)

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
        "connection_issued_oauth_clients",
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("config_id", sa.String(36), nullable=False),
        sa.Column("practice_id", sa.String(64), nullable=False),
        sa.Column("redirect_uri", sa.String(2048), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("client_id", name=op.f("pk_connection_issued_oauth_clients")),
    )
    op.create_index(
        op.f("ix_connection_issued_oauth_clients_config_id"), "connection_issued_oauth_clients", ["config_id"]
    )
    op.create_table(
        "connection_issued_oauth_grants",
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("grant_id", sa.String(36), nullable=False),
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("config_id", sa.String(36), nullable=False),
        sa.Column("practice_id", sa.String(64), nullable=False),
        sa.Column("code_challenge", sa.String(128), nullable=True),
        sa.Column("redirect_uri", sa.String(2048), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("secret_hash", name=op.f("pk_connection_issued_oauth_grants")),
    )
    op.create_index(op.f("ix_connection_issued_oauth_grants_grant_id"), "connection_issued_oauth_grants", ["grant_id"])
    op.create_index(
        op.f("ix_connection_issued_oauth_grants_client_id"), "connection_issued_oauth_grants", ["client_id"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_connection_issued_oauth_grants_client_id"), table_name="connection_issued_oauth_grants")
    op.drop_index(op.f("ix_connection_issued_oauth_grants_grant_id"), table_name="connection_issued_oauth_grants")
    op.drop_table("connection_issued_oauth_grants")
    op.drop_index(op.f("ix_connection_issued_oauth_clients_config_id"), table_name="connection_issued_oauth_clients")
    op.drop_table("connection_issued_oauth_clients")
