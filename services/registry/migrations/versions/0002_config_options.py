"""registry: per-vendor options on integration configs (the marketing switches)

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
    with op.batch_alter_table("registry_integration_configs") as batch:
        batch.add_column(sa.Column("options", sa.JSON, nullable=False, server_default=sa.text("'{}'")))


def downgrade() -> None:
    with op.batch_alter_table("registry_integration_configs") as batch:
        batch.drop_column("options")
