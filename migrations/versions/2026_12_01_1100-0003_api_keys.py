"""API keys and their history: hashed secrets, scopes and sites; created, expired and revoked, never deleted.

On PostgreSQL the service's role ``il6_app`` may read keys, create them, and set only their expiry and
revocation. Triggers, for every role and on SQLite too, refuse to change a revoked key, any column but
those, or an expiry other than by bringing it forward, and keep the history ``api_key_event`` append-only
(and both tables untruncated on PostgreSQL).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 11:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APP_ROLE = "il6_app"

PG_GUARD = """
CREATE FUNCTION api_key_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'api keys are never deleted: revoke them' USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF OLD.revoked_at IS NOT NULL THEN
        RAISE EXCEPTION 'a revoked api key stays revoked' USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF (NEW.key_id, NEW.name, NEW.secret_sha256, NEW.scopes::text, NEW.sites::text, NEW.created_at,
        NEW.created_by) IS DISTINCT FROM (OLD.key_id, OLD.name, OLD.secret_sha256, OLD.scopes::text,
        OLD.sites::text, OLD.created_at, OLD.created_by) THEN
        RAISE EXCEPTION 'only an api key''s expiry and revocation change'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF OLD.expires_at IS NOT NULL AND (NEW.expires_at IS NULL OR NEW.expires_at > OLD.expires_at) THEN
        RAISE EXCEPTION 'an api key''s expiry is only ever brought forward'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER api_key_guard BEFORE UPDATE OR DELETE ON api_key
    FOR EACH ROW EXECUTE FUNCTION api_key_guard();

CREATE FUNCTION api_key_history_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% refused: api keys and their history are never deleted or rewritten', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER api_key_event_append_only BEFORE UPDATE OR DELETE ON api_key_event
    FOR EACH ROW EXECUTE FUNCTION api_key_history_append_only();
CREATE TRIGGER api_key_event_no_truncate BEFORE TRUNCATE ON api_key_event
    FOR EACH STATEMENT EXECUTE FUNCTION api_key_history_append_only();
CREATE TRIGGER api_key_no_truncate BEFORE TRUNCATE ON api_key
    FOR EACH STATEMENT EXECUTE FUNCTION api_key_history_append_only();
"""

PG_GRANTS = f"""
REVOKE ALL ON api_key, api_key_event FROM PUBLIC;
GRANT SELECT, INSERT ON api_key TO {APP_ROLE};
GRANT UPDATE (expires_at, revoked_at, revoked_by) ON api_key TO {APP_ROLE};
GRANT SELECT, INSERT ON api_key_event TO {APP_ROLE};
GRANT USAGE ON SEQUENCE api_key_event_id_seq TO {APP_ROLE};
"""

SQLITE_GUARD = (
    """CREATE TRIGGER api_key_no_delete BEFORE DELETE ON api_key
    BEGIN SELECT RAISE(ABORT, 'api keys are never deleted: revoke them'); END""",
    """CREATE TRIGGER api_key_guard BEFORE UPDATE ON api_key
    WHEN OLD.revoked_at IS NOT NULL
      OR NEW.key_id IS NOT OLD.key_id OR NEW.name IS NOT OLD.name
      OR NEW.secret_sha256 IS NOT OLD.secret_sha256 OR NEW.scopes IS NOT OLD.scopes
      OR NEW.sites IS NOT OLD.sites OR NEW.created_at IS NOT OLD.created_at
      OR NEW.created_by IS NOT OLD.created_by
      OR (OLD.expires_at IS NOT NULL AND (NEW.expires_at IS NULL OR NEW.expires_at > OLD.expires_at))
    BEGIN SELECT RAISE(ABORT, 'only revocation, or an expiry brought forward, changes an unrevoked api key');
    END""",
    """CREATE TRIGGER api_key_event_no_update BEFORE UPDATE ON api_key_event
    BEGIN SELECT RAISE(ABORT, 'api_key_event is append-only'); END""",
    """CREATE TRIGGER api_key_event_no_delete BEFORE DELETE ON api_key_event
    BEGIN SELECT RAISE(ABORT, 'api_key_event is append-only'); END""",
)


def upgrade() -> None:
    op.create_table(
        "api_key",
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("secret_sha256", sa.String(length=64), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("sites", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_by", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("key_id", name=op.f("pk_api_key")),
        sa.UniqueConstraint("name", name=op.f("uq_api_key_name")),
    )
    op.create_table(
        "api_key_event",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("event", sa.String(length=16), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("by", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "event IN ('created', 'expiry-set', 'revoked')", name=op.f("ck_api_key_event_event")
        ),
        sa.ForeignKeyConstraint(["key_id"], ["api_key.key_id"], name=op.f("fk_api_key_event_key_id_api_key")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_key_event")),
    )
    op.create_index("ix_api_key_event_key_id", "api_key_event", ["key_id"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_GUARD)
        op.execute(PG_GRANTS)
    else:
        for statement in SQLITE_GUARD:
            op.execute(statement)


def downgrade() -> None:
    # The keys name the callers in the audit trail: dropping them would lose who the callers were.
    if op.get_bind().execute(sa.text("SELECT count(*) FROM api_key")).scalar_one():
        raise RuntimeError(
            "refusing to downgrade below 0003: api keys exist and name the audit trail's callers"
        )
    if op.get_bind().dialect.name == "postgresql":
        for trigger, table in (
            ("api_key_guard", "api_key"),
            ("api_key_no_truncate", "api_key"),
            ("api_key_event_append_only", "api_key_event"),
            ("api_key_event_no_truncate", "api_key_event"),
        ):
            op.execute(f"DROP TRIGGER {trigger} ON {table}")
        op.execute("DROP FUNCTION api_key_guard()")
        op.execute("DROP FUNCTION api_key_history_append_only()")
    op.drop_index("ix_api_key_event_key_id", table_name="api_key_event")
    op.drop_table("api_key_event")
    op.drop_table("api_key")
