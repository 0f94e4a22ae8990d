"""Connection tables (connection_*)."""

from sqlalchemy import JSON, Column, DateTime, LargeBinary, String, Table

from libs.crypto import data_keys_table
from libs.db import make_metadata

metadata = make_metadata()

oauth_clients = Table(
    "connection_oauth_clients",
    metadata,
    Column("integration_type", String(64), primary_key=True),
    Column("client_id", String(255), nullable=False),
    Column("encrypted_client_secret", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

connections = Table(
    "connection_connections",
    metadata,
    Column("config_id", String(36), primary_key=True),
    Column("practice_id", String(64), nullable=False, index=True),
    Column("integration_type", String(64), nullable=False),
    Column("status", String(32), nullable=False),
    Column("encrypted_access_token", LargeBinary, nullable=True),
    Column("encrypted_refresh_token", LargeBinary, nullable=True),
    Column("expires_at", DateTime(timezone=True), nullable=True, index=True),
    Column("scopes", JSON, nullable=False),
    Column("external_account_id", String(255), nullable=False),
    Column("connected_at", DateTime(timezone=True), nullable=True),
    Column("last_refresh_at", DateTime(timezone=True), nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # The registry AuthKind the connection was made with; rows from before 0002 used the code flow.
    Column("credential_kind", String(64), nullable=False, server_default="AUTH_KIND_OAUTH2_AUTHORIZATION_CODE"),
    Column("encrypted_credential", LargeBinary, nullable=True),
    Column("instance_url", String(2048), nullable=True),
)

pending_authorizations = Table(
    "connection_pending_authorizations",
    metadata,
    # SHA-256 of the state: the database never holds a state that could complete a flow.
    Column("state_hash", String(64), primary_key=True),
    Column("config_id", String(36), nullable=False, index=True),
    Column("practice_id", String(64), nullable=False),
    Column("redirect_uri", String(2048), nullable=False),
    Column("encrypted_code_verifier", LargeBinary, nullable=True),
    Column("expires_at", DateTime(timezone=True), nullable=False, index=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

data_keys = data_keys_table(metadata, "connection")

# Keys Concord issues to vendors that call its API (Zapier); SHA-256 only, the key is shown once.
inbound_keys = Table(
    "connection_inbound_keys",
    metadata,
    Column("key_id", String(36), primary_key=True),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("config_id", String(36), nullable=False, index=True),
    Column("practice_id", String(64), nullable=False),
    Column("label", String(200), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    # The last request the key authenticated, written at most once a minute (0005).
    Column("last_used_at", DateTime(timezone=True), nullable=True),
)

# REST hook subscriptions (Zapier): the target URL is a capability, so it is encrypted like a token.
hook_subscriptions = Table(
    "connection_hook_subscriptions",
    metadata,
    Column("subscription_id", String(36), primary_key=True),
    Column("config_id", String(36), nullable=False, index=True),
    Column("practice_id", String(64), nullable=False),
    Column("event", String(64), nullable=False),
    Column("encrypted_target_url", LargeBinary, nullable=False),
    Column("encrypted_signing_secret", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# OAuth 2.0 with Concord as the authorization server for Zapier (services/connection/oauth_server.py; not the vendor clients above).
# Every secret (client secret, consent ticket, code, token) is stored only as its SHA-256.
issued_oauth_clients = Table(
    "connection_issued_oauth_clients",
    metadata,
    Column("client_id", String(64), primary_key=True),
    Column("secret_hash", String(64), nullable=False),
    Column("config_id", String(36), nullable=False, index=True),
    Column("practice_id", String(64), nullable=False),
    Column("redirect_uri", String(2048), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
)

issued_oauth_grants = Table(
    "connection_issued_oauth_grants",
    metadata,
    # kind: ticket (admin consent, one use), code (one use, 10 min), access, refresh (rotating).
    Column("secret_hash", String(64), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("grant_id", String(36), nullable=False, index=True),
    Column("client_id", String(64), nullable=False, index=True),
    Column("config_id", String(36), nullable=False),
    Column("practice_id", String(64), nullable=False),
    Column("code_challenge", String(128), nullable=True),
    Column("redirect_uri", String(2048), nullable=True),
    # Indexed for the periodic purge of what can no longer be used (0005).
    Column("expires_at", DateTime(timezone=True), nullable=False, index=True),
    Column("used_at", DateTime(timezone=True), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# One row per grant (a consent spent at the authorize endpoint): what the admin lists and revokes.
# The rows above stay the truth for each secret; this one outlives its code and spent tokens.
issued_oauth_grant_details = Table(
    "connection_issued_oauth_grant_details",
    metadata,
    Column("grant_id", String(36), primary_key=True),
    Column("client_id", String(64), nullable=False, index=True),
    Column("config_id", String(36), nullable=False, index=True),
    Column("practice_id", String(64), nullable=False),
    # When the code was issued; issued_at when it was first exchanged for tokens (null before).
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("issued_at", DateTime(timezone=True), nullable=True),
    # The code's expiry, then the live refresh token's: the grant ends then unless refreshed.
    Column("expires_at", DateTime(timezone=True), nullable=False, index=True),
    Column("last_refresh_at", DateTime(timezone=True), nullable=True),
    # Written at most once a minute, by the access-token check.
    Column("last_used_at", DateTime(timezone=True), nullable=True),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
)
