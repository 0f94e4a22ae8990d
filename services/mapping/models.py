"""Mapping tables (mapping_*): per-config field mapping overrides and the config's mapping version."""

from sqlalchemy import JSON, BigInteger, Column, DateTime, String, Table

from libs.db import make_metadata

metadata = make_metadata()

# One row per overridden hub field of one entity type of one config.
field_mappings = Table(
    "mapping_field_mappings",
    metadata,
    Column("config_id", String(36), primary_key=True),
    Column("entity_type", String(64), primary_key=True),
    Column("hub_field", String(128), primary_key=True),
    Column("integration_type", String(64), nullable=False),
    Column("vendor_field", String(256), nullable=False),
    Column("transform", JSON, nullable=False),
    Column("direction", String(16), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# The config's mapping version: bumped by every change, named by results and later disclosures.
versions = Table(
    "mapping_versions",
    metadata,
    Column("config_id", String(36), primary_key=True),
    Column("version", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
