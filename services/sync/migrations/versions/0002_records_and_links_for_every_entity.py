"""sync: one records table and one links table for every entity type (patients move in)

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
    op.create_table(
        "sync_records",
        sa.Column("record_id", sa.String(36), primary_key=True),
        sa.Column("entity_type", sa.String(32), nullable=False),
        sa.Column("practice_id", sa.String(64), nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("resource_enc", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_sync_records_practice_entity", "sync_records", ["practice_id", "entity_type", "record_id"])
    op.create_table(
        "sync_links",
        sa.Column("config_id", sa.String(36), primary_key=True),
        sa.Column("entity_type", sa.String(32), primary_key=True),
        sa.Column("record_id", sa.String(36), primary_key=True),
        sa.Column("practice_id", sa.String(64), nullable=False),
        sa.Column("external_id", sa.String(128), nullable=False),
        sa.Column("synced_version", sa.BigInteger, nullable=False),
        sa.Column("base_enc", sa.LargeBinary, nullable=False),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint(
            "config_id", "entity_type", "external_id", name="uq_sync_links_config_id_entity_type_external_id"
        ),
    )
    op.execute(
        "INSERT INTO sync_records (record_id, entity_type, practice_id, version, resource_enc, created_at, updated_at) "
        "SELECT patient_id, 'ENTITY_TYPE_PATIENT', practice_id, version, resource_enc, created_at, updated_at FROM sync_patients"
    )
    op.execute(
        "INSERT INTO sync_links (config_id, entity_type, record_id, practice_id, external_id, synced_version, "
        "base_enc, synced_at) "
        "SELECT config_id, 'ENTITY_TYPE_PATIENT', patient_id, practice_id, external_id, synced_version, base_enc, synced_at "
        "FROM sync_patient_links"
    )
    op.drop_table("sync_patient_links")
    op.drop_table("sync_patients")


def downgrade() -> None:
    op.create_table(
        "sync_patients",
        sa.Column("patient_id", sa.String(36), primary_key=True),
        sa.Column("practice_id", sa.String(64), nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("resource_enc", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_sync_patients_practice_id", "sync_patients", ["practice_id"])
    op.create_table(
        "sync_patient_links",
        sa.Column("config_id", sa.String(36), primary_key=True),
        sa.Column("patient_id", sa.String(36), primary_key=True),
        sa.Column("practice_id", sa.String(64), nullable=False),
        sa.Column("external_id", sa.String(128), nullable=False),
        sa.Column("synced_version", sa.BigInteger, nullable=False),
        sa.Column("base_enc", sa.LargeBinary, nullable=False),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("config_id", "external_id", name="uq_sync_patient_links_config_id_external_id"),
    )
    # Only patients existed before 0002: other entities' records cannot go back and are dropped.
    op.execute(
        "INSERT INTO sync_patients (patient_id, practice_id, version, resource_enc, created_at, updated_at) "
        "SELECT record_id, practice_id, version, resource_enc, created_at, updated_at FROM sync_records "
        "WHERE entity_type = 'ENTITY_TYPE_PATIENT'"
    )
    op.execute(
        "INSERT INTO sync_patient_links (config_id, patient_id, practice_id, external_id, synced_version, "
        "base_enc, synced_at) "
        "SELECT config_id, record_id, practice_id, external_id, synced_version, base_enc, synced_at "
        "FROM sync_links WHERE entity_type = 'ENTITY_TYPE_PATIENT'"
    )
    op.drop_table("sync_links")
    op.drop_table("sync_records")
