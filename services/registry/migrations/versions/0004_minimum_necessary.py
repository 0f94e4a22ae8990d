"""registry: field allow-lists on integration configs; practices' Business Associate Agreements

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
    with op.batch_alter_table("registry_integration_configs") as batch:
        batch.add_column(sa.Column("field_allow_list", sa.JSON, nullable=False, server_default=sa.text("'[]'")))
    op.create_table(
        "registry_business_associate_agreements",
        sa.Column("practice_id", sa.String(64), primary_key=True),
        sa.Column("integration_type", sa.String(64), primary_key=True),
        sa.Column("effective_date", sa.String(10), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_by", sa.String(200), nullable=False, server_default=""),
    )


def downgrade() -> None:
    op.drop_table("registry_business_associate_agreements")
    with op.batch_alter_table("registry_integration_configs") as batch:
        batch.drop_column("field_allow_list")
