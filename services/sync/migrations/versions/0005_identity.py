"""sync: blind indexes of hub patients, and review items for possible duplicates

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sync_patient_indexes",
        sa.Column("record_id", sa.String(36), primary_key=True),
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("practice_id", sa.String(64), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
    )
    op.create_index("ix_sync_patient_indexes_lookup", "sync_patient_indexes", ["practice_id", "kind", "digest"])
    with op.batch_alter_table("sync_review_items") as batch:
        batch.add_column(sa.Column("kind", sa.String(16), nullable=False, server_default="conflict"))
        batch.add_column(sa.Column("reasons", sa.JSON, nullable=False, server_default=sa.text("'[]'")))


def downgrade() -> None:
    with op.batch_alter_table("sync_review_items") as batch:
        batch.drop_column("reasons")
        batch.drop_column("kind")
    op.drop_index("ix_sync_patient_indexes_lookup", table_name="sync_patient_indexes")
    op.drop_table("sync_patient_indexes")
