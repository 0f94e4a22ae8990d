"""mapping: per-config field mapping overrides and mapping versions

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
        "mapping_field_mappings",
        sa.Column("config_id", sa.String(36), primary_key=True),
        sa.Column("entity_type", sa.String(64), primary_key=True),
        sa.Column("hub_field", sa.String(128), primary_key=True),
        sa.Column("integration_type", sa.String(64), nullable=False),
        sa.Column("vendor_field", sa.String(256), nullable=False),
        sa.Column("transform", sa.JSON, nullable=False),
        sa.Column("direction", sa.String(16), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "mapping_versions",
        sa.Column("config_id", sa.String(36), primary_key=True),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("mapping_versions")
    op.drop_table("mapping_field_mappings")
