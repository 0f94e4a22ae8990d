"""connection: credential kind, encrypted credential and instance URL per connection

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("connection_connections") as batch:
        batch.add_column(
            sa.Column(
                "credential_kind",
                sa.String(64),
                nullable=False,
                server_default="AUTH_KIND_OAUTH2_AUTHORIZATION_CODE",
            )
        )
        batch.add_column(sa.Column("encrypted_credential", sa.LargeBinary, nullable=True))
        batch.add_column(sa.Column("instance_url", sa.String(2048), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("connection_connections") as batch:
        batch.drop_column("instance_url")
        batch.drop_column("encrypted_credential")
        batch.drop_column("credential_kind")
