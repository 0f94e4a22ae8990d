"""Sync tables (sync_*). PHI lives only in the encrypted *_enc columns."""

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from libs.crypto import data_keys_table
from libs.db import make_metadata

metadata = make_metadata()

data_keys = data_keys_table(metadata, "sync")

# Every canonical record of a practice (FHIR Patient, Appointment, ...), encrypted whole with the
# practice's data key; entity_type says which.
records = Table(
    "sync_records",
    metadata,
    Column("record_id", String(36), primary_key=True),
    Column("entity_type", String(32), nullable=False),
    Column("practice_id", String(64), nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("resource_enc", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # A tombstone: the record was deleted (by a user, or following a vendor's delete) or merged into
    # another (merged_into). It stays, encrypted, for the record's history and retention; it is not
    # listed, read, matched or pushed, except as a delete to the vendors still linked to it.
    Column("deleted_at", DateTime(timezone=True), nullable=True),
    Column("merged_into", String(36), nullable=True),
    Index("ix_sync_records_practice_entity", "practice_id", "entity_type", "record_id"),
)

links = Table(
    "sync_links",
    metadata,
    Column("config_id", String(36), primary_key=True),
    Column("entity_type", String(32), primary_key=True),
    Column("record_id", String(36), primary_key=True),
    Column("practice_id", String(64), nullable=False),
    Column("external_id", String(128), nullable=False),
    Column("synced_version", BigInteger, nullable=False),
    # The canonical projection both sides last agreed on (the merge base), encrypted.
    Column("base_enc", LargeBinary, nullable=False),
    Column("synced_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("config_id", "entity_type", "external_id"),
)

cursors = Table(
    "sync_cursors",
    metadata,
    Column("config_id", String(36), primary_key=True),
    Column("entity_type", String(32), primary_key=True),
    Column("cursor", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# The seed's integration_sync_logs: one row per run. error_details hold ids, fields and reasons only.
sync_logs = Table(
    "sync_integration_sync_logs",
    metadata,
    Column("run_id", String(36), primary_key=True),
    Column("config_id", String(36), nullable=False, index=True),
    Column("practice_id", String(64), nullable=False, index=True),
    Column("integration_type", String(64), nullable=False),
    Column("entity_type", String(32), nullable=False),
    Column("direction", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("records_processed", Integer, nullable=False, default=0),
    Column("records_succeeded", Integer, nullable=False, default=0),
    Column("records_failed", Integer, nullable=False, default=0),
    Column("records_created", Integer, nullable=False, default=0),
    Column("records_updated", Integer, nullable=False, default=0),
    Column("vendor_requests", Integer, nullable=False, default=0),
    Column("error_details", JSON, nullable=False),
    Column("error_message", Text, nullable=False, default=""),
    Column("trace_id", String(32), nullable=False, default=""),
    Column("workflow_id", String(128), nullable=False, default=""),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("completed_at", DateTime(timezone=True), nullable=True),
    # When the run's workflow begins reading (started_at + its start delay); null before 0003.
    Column("starts_at", DateTime(timezone=True), nullable=True),
)

# Change events (Salesforce CDC) the CDC receiver accepted, by replay id per config: a redelivery
# is known, and the newest is where a resubscription resumes. No field values: ids and times only.
change_events = Table(
    "sync_change_events",
    metadata,
    Column("config_id", String(36), primary_key=True),
    Column("replay_id", String(128), primary_key=True),
    Column("entity_type", String(32), nullable=False),
    Column("accepted_at", DateTime(timezone=True), nullable=False),
    Index("ix_sync_change_events_config_accepted", "config_id", "accepted_at"),
)

# Conflicting fields no rule settled (manual_review, or newest_wins with clocks that order nothing):
# one open item per (config, entity, record, field); the hub keeps its value and the record is not
# pushed to that config until every open item of it is resolved. The three values (base, hub,
# vendor) and the sides' modification times are encrypted together; the rest of the record never
# enters the queue.
review_items = Table(
    "sync_review_items",
    metadata,
    Column("review_id", String(36), primary_key=True),
    Column("practice_id", String(64), nullable=False),
    Column("config_id", String(36), nullable=False),
    Column("entity_type", String(32), nullable=False),
    Column("record_id", String(36), nullable=False),
    Column("external_id", String(128), nullable=False),
    Column("field", String(64), nullable=False),
    Column("status", String(16), nullable=False),  # OPEN, RESOLVED
    Column("values_enc", LargeBinary, nullable=False),
    Column("run_id", String(36), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("resolved_at", DateTime(timezone=True), nullable=True),
    Column("resolved_by", String(128), nullable=False, default=""),
    Column("resolution", String(16), nullable=False, default=""),  # hub, vendor, value; same, different
    # "conflict" (a field both sides changed) or "identity" (a vendor record that may be an existing
    # patient: field is "", record_id the candidate, values_enc the parked vendor record and why).
    Column("kind", String(16), nullable=False, default="conflict"),
    # Why an identity item was opened: index kinds that agree or differ (libs/blind_index.py), no value.
    Column("reasons", JSON, nullable=False, default=list),
    Index("ix_sync_review_items_practice_status", "practice_id", "status", "created_at"),
    Index("ix_sync_review_items_record", "config_id", "entity_type", "record_id", "status"),
)

# Blind indexes of hub patients (libs/blind_index.py): keyed digests of normalised identifying
# fields, one per (record, kind); matching looks records up by digest and never decrypts one.
patient_indexes = Table(
    "sync_patient_indexes",
    metadata,
    Column("record_id", String(36), primary_key=True),
    Column("kind", String(16), primary_key=True),
    Column("practice_id", String(64), nullable=False),
    Column("digest", String(64), nullable=False),
    Index("ix_sync_patient_indexes_lookup", "practice_id", "kind", "digest"),
)

# The webhook inbox: events a vendor delivered, deduplicated by (config, the vendor's event id),
# drained in batches by InboxWorkflow(config). An event names a vendor record (its id, no PHI);
# the drain reads that record as it is now, so duplicates and reordering change nothing.
inbox = Table(
    "sync_inbox",
    metadata,
    Column("config_id", String(36), primary_key=True),
    Column("event_id", String(128), primary_key=True),
    Column("entity_type", String(32), nullable=False),
    Column("external_id", String(128), nullable=False),
    Column("deleted", Integer, nullable=False, default=0),
    Column("event_type", String(64), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("processed_at", DateTime(timezone=True), nullable=True),
    Column("run_id", String(36), nullable=False, default=""),
    Index("ix_sync_inbox_pending", "config_id", "processed_at", "received_at"),
)

# Every change of a hub record: which version, which side made it (the hub's user, a vendor's
# pull or webhook, a review), which fields (names only: no value, no PHI), which run.
record_history = Table(
    "sync_record_history",
    metadata,
    Column("history_id", String(36), primary_key=True),
    Column("practice_id", String(64), nullable=False),
    Column("entity_type", String(32), nullable=False),
    Column("record_id", String(36), nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("side", String(16), nullable=False),  # hub, vendor, review
    Column("source", String(128), nullable=False),  # the user id, or the vendor (integration type)
    Column("action", String(16), nullable=False),  # create, update
    Column("fields", JSON, nullable=False),
    Column("run_id", String(36), nullable=False, default=""),
    Column("changed_at", DateTime(timezone=True), nullable=False),
    Index("ix_sync_record_history_record", "record_id", "changed_at"),
)

# Records that cannot sync, parked with their error class while the rest of each run goes on: a
# push letter keeps its hub record out of that vendor's pushes until replayed; a pull letter keeps
# the vendor's record (encrypted) so a replay can reconcile it after a fix. One open letter per
# (config, entity, direction, record); a success of the record resolves it.
dead_letters = Table(
    "sync_dead_letters",
    metadata,
    Column("letter_id", String(36), primary_key=True),
    Column("practice_id", String(64), nullable=False),
    Column("config_id", String(36), nullable=False),
    Column("entity_type", String(32), nullable=False),
    Column("direction", String(8), nullable=False),  # push, pull
    Column("record_ref", String(128), nullable=False),  # hub record id (push), vendor id (pull)
    Column("error_class", String(64), nullable=False),
    Column("field", String(128), nullable=False, default=""),
    Column("message", Text, nullable=False, default=""),
    Column("payload_enc", LargeBinary, nullable=True),
    Column("status", String(16), nullable=False),  # open, replaying, resolved
    Column("attempts", Integer, nullable=False, default=1),
    Column("run_id", String(36), nullable=False),
    Column("first_seen_at", DateTime(timezone=True), nullable=False),
    Column("last_seen_at", DateTime(timezone=True), nullable=False),
    Column("resolved_at", DateTime(timezone=True), nullable=True),
    Index("ix_sync_dead_letters_record", "config_id", "entity_type", "direction", "record_ref", "status"),
    Index("ix_sync_dead_letters_practice", "practice_id", "status", "error_class"),
)

# Reconciliations (services/sync/reconciliation.py): one report per run comparing the vendor's whole
# listing of an entity with the links' merge bases. Counts and checksums only: no value, no PHI.
reconciliations = Table(
    "sync_reconciliations",
    metadata,
    Column("reconciliation_id", String(36), primary_key=True),
    Column("practice_id", String(64), nullable=False),
    Column("config_id", String(36), nullable=False),
    Column("entity_type", String(32), nullable=False),
    Column("run_id", String(36), nullable=False),
    Column("status", String(16), nullable=False),  # running, succeeded, failed
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("completed_at", DateTime(timezone=True), nullable=True),
    Column("hub_count", Integer, nullable=False, default=0),
    Column("vendor_count", Integer, nullable=False, default=0),
    # Sums mod 2^256 of per-record SHA-256 digests, 64 hex digits.
    Column("hub_checksum", String(64), nullable=False),
    Column("vendor_checksum", String(64), nullable=False),
    Column("matched", Integer, nullable=False, default=0),
    Column("drifted", Integer, nullable=False, default=0),
    Column("healed", Integer, nullable=False, default=0),
    Column("unlinked", Integer, nullable=False, default=0),
    Column("missing_at_vendor", Integer, nullable=False, default=0),
    Column("pending_push", Integer, nullable=False, default=0),
    Column("review_items_opened", Integer, nullable=False, default=0),
    Column("error_message", Text, nullable=False, default=""),
    Index("ix_sync_reconciliations_config", "config_id", "entity_type", "started_at"),
)

# The vendor ids a running reconciliation has seen: listed, read back by id and found, or read
# back and gone. A link none of its rows names is missing at the vendor. Dropped when it finishes.
reconciliation_seen = Table(
    "sync_reconciliation_seen",
    metadata,
    Column("reconciliation_id", String(36), primary_key=True),
    Column("external_id", String(128), primary_key=True),
    Column("state", String(8), nullable=False),  # listed, read, gone
)
