"""Registry tables (registry_*)."""

from sqlalchemy import JSON, Boolean, Column, DateTime, String, Table, UniqueConstraint

from libs.db import make_metadata

metadata = make_metadata()

practices = Table(
    "registry_practices",
    metadata,
    Column("practice_id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

definitions = Table(
    "registry_integration_definitions",
    metadata,
    Column("integration_type", String(64), primary_key=True),
    Column("document", JSON, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

configs = Table(
    "registry_integration_configs",
    metadata,
    Column("config_id", String(36), primary_key=True),
    Column("practice_id", String(64), nullable=False, index=True),
    Column("integration_type", String(64), nullable=False),
    Column("sync_direction", String(32), nullable=False),
    Column("sync_frequency", String(32), nullable=False),
    Column("conflict_policy", String(32), nullable=False),
    Column("active", Boolean, nullable=False),
    Column("enabled_entities", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("options", JSON, nullable=False, default=dict),
    Column("field_conflict_policies", JSON, nullable=False, default=dict),
    Column("field_allow_list", JSON, nullable=False, default=list),
    UniqueConstraint("practice_id", "integration_type"),
)

# A practice's Business Associate Agreement with a vendor: one per (practice, vendor).
agreements = Table(
    "registry_business_associate_agreements",
    metadata,
    Column("practice_id", String(64), primary_key=True),
    Column("integration_type", String(64), primary_key=True),
    Column("effective_date", String(10), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Column("recorded_by", String(200), nullable=False, default=""),
)
