"""connection: one row per issued OAuth grant (listed and revoked by an admin), last use of keys,
and an index the periodic purge of expired secrets reads

Grants issued before this revision get their row from their secrets: a grant with refresh tokens
was issued when its first one was (the code row may be gone), ends when its newest one expires, and
is revoked when none is left unspent; a grant with only a code gets a row that ends with the code.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_DETAILS = "connection_issued_oauth_grant_details"
_GRANTS = "connection_issued_oauth_grants"


def upgrade() -> None:
    op.create_table(
        _DETAILS,
        sa.Column("grant_id", sa.String(36), nullable=False),
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("config_id", sa.String(36), nullable=False),
        sa.Column("practice_id", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_refresh_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("grant_id", name=op.f(f"pk_{_DETAILS}")),
    )
    op.create_index(op.f(f"ix_{_DETAILS}_client_id"), _DETAILS, ["client_id"])
    op.create_index(op.f(f"ix_{_DETAILS}_config_id"), _DETAILS, ["config_id"])
    op.create_index(op.f(f"ix_{_DETAILS}_expires_at"), _DETAILS, ["expires_at"])
    op.create_index(op.f(f"ix_{_GRANTS}_expires_at"), _GRANTS, ["expires_at"])
    with op.batch_alter_table("connection_inbound_keys") as batch:
        batch.add_column(sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True))
    op.execute(
        "INSERT INTO connection_issued_oauth_grant_details (grant_id, client_id, config_id, practice_id, "
        "created_at, issued_at, expires_at, last_refresh_at, revoked_at) "
        "SELECT grant_id, MIN(client_id), MIN(config_id), MIN(practice_id), MIN(created_at), MIN(created_at), "
        "MAX(expires_at), CASE WHEN COUNT(*) > 1 THEN MAX(created_at) END, "
        "CASE WHEN COUNT(used_at) = COUNT(*) THEN MAX(used_at) END "
        "FROM connection_issued_oauth_grants WHERE kind = 'refresh' GROUP BY grant_id"
    )
    op.execute(
        "INSERT INTO connection_issued_oauth_grant_details (grant_id, client_id, config_id, practice_id, "
        "created_at, issued_at, expires_at, last_refresh_at, revoked_at) "
        "SELECT grant_id, client_id, config_id, practice_id, created_at, NULL, expires_at, NULL, used_at "
        "FROM connection_issued_oauth_grants AS code WHERE kind = 'code' AND NOT EXISTS "
        "(SELECT 1 FROM connection_issued_oauth_grants AS token "
        "WHERE token.grant_id = code.grant_id AND token.kind = 'refresh')"
    )


def downgrade() -> None:
    with op.batch_alter_table("connection_inbound_keys") as batch:
        batch.drop_column("last_used_at")
    op.drop_index(op.f(f"ix_{_GRANTS}_expires_at"), table_name=_GRANTS)
    op.drop_index(op.f(f"ix_{_DETAILS}_expires_at"), table_name=_DETAILS)
    op.drop_index(op.f(f"ix_{_DETAILS}_config_id"), table_name=_DETAILS)
    op.drop_index(op.f(f"ix_{_DETAILS}_client_id"), table_name=_DETAILS)
    op.drop_table(_DETAILS)
