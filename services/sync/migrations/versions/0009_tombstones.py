"""sync: tombstones (deleted and merged records)

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sync_records") as batch:
        batch.add_column(sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("merged_into", sa.String(36), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sync_records") as batch:
        batch.drop_column("merged_into")
        batch.drop_column("deleted_at")
