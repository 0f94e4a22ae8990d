"""audit: the field-mapping version a disclosure was made under

Revision ID: 0002
Revises: 0001

Existing rows get 0, which the canonical form leaves out (services/audit/domain.canonical), so their
hashes, and the chains they are in, are unchanged.
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_events") as batch:
        batch.add_column(sa.Column("mapping_version", sa.BigInteger, nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("audit_events") as batch:
        batch.drop_column("mapping_version")
