"""registry: practices, integration definitions and configs

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
        "registry_practices",
        sa.Column("practice_id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "registry_integration_definitions",
        sa.Column("integration_type", sa.String(64), primary_key=True),
        sa.Column("document", sa.JSON, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "registry_integration_configs",
        sa.Column("config_id", sa.String(36), primary_key=True),
        sa.Column("practice_id", sa.String(64), nullable=False),
        sa.Column("integration_type", sa.String(64), nullable=False),
        sa.Column("sync_direction", sa.String(32), nullable=False),
        sa.Column("sync_frequency", sa.String(32), nullable=False),
        sa.Column("conflict_policy", sa.String(32), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("enabled_entities", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint(
            "practice_id", "integration_type", name="uq_registry_integration_configs_practice_id_integration_type"
        ),
    )
    op.create_index("ix_registry_integration_configs_practice_id", "registry_integration_configs", ["practice_id"])


def downgrade() -> None:
    op.drop_table("registry_integration_configs")
    op.drop_table("registry_integration_definitions")
    op.drop_table("registry_practices")
