"""registry: per-field conflict policy overrides on integration configs

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
    with op.batch_alter_table("registry_integration_configs") as batch:
        batch.add_column(sa.Column("field_conflict_policies", sa.JSON, nullable=False, server_default=sa.text("'{}'")))


def downgrade() -> None:
    with op.batch_alter_table("registry_integration_configs") as batch:
        batch.drop_column("field_conflict_policies")
