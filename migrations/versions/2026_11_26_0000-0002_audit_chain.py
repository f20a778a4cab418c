"""The audit chain: hash-linked, append-only decisions that name their caller; idempotency keys.

Existing decisions are linked into the chain in time order (their caller recorded as 'unrecorded'), then
the database is made to refuse UPDATE, DELETE and TRUNCATE on ``assessment``: by triggers on both backends,
and on PostgreSQL also by privileges, granting the service's role ``il6_app`` only SELECT and INSERT on the
audit trail. A trigger also refuses an INSERT that does not extend the chain head (its seq and prev_hash,
no earlier than the head's time, and on PostgreSQL not in the future).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 00:00:00
"""

import hashlib
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import rfc8785
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APP_ROLE = "il6_app"
LEGACY_CLIENT = "unrecorded"
document = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

_NEW_COLUMNS = (
    ("prev_hash", sa.String(length=64)),
    ("hash", sa.String(length=64)),
    ("client_id", sa.String(length=64)),
    ("request_id", sa.String(length=64)),
    ("idempotency_key", sa.String(length=255)),
    ("supersedes", sa.Uuid()),
    ("correction_reason", sa.Text()),
)
"""Added nullable; prev_hash, hash and client_id are made NOT NULL once existing rows are linked."""

PG_APPEND_ONLY = """
CREATE FUNCTION assessment_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'assessment is an append-only audit trail: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER assessment_no_update_or_delete BEFORE UPDATE OR DELETE ON assessment
    FOR EACH ROW EXECUTE FUNCTION assessment_append_only();
CREATE TRIGGER assessment_no_truncate BEFORE TRUNCATE ON assessment
    FOR EACH STATEMENT EXECUTE FUNCTION assessment_append_only();

CREATE FUNCTION assessment_extends_chain() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    head RECORD;
BEGIN
    SELECT seq, hash, recorded_at INTO head FROM assessment ORDER BY seq DESC LIMIT 1;
    IF NOT FOUND THEN
        IF NEW.seq <> 1 OR NEW.prev_hash <> repeat('0', 64) THEN
            RAISE EXCEPTION 'assessment % does not start the audit chain', NEW.seq
                USING ERRCODE = 'integrity_constraint_violation';
        END IF;
    ELSIF NEW.seq <> head.seq + 1 OR NEW.prev_hash <> head.hash OR NEW.recorded_at < head.recorded_at THEN
        RAISE EXCEPTION 'assessment % does not extend the audit chain head', NEW.seq
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF NEW.recorded_at > clock_timestamp() + interval '5 seconds' THEN
        RAISE EXCEPTION 'assessment % is timed in the future', NEW.seq
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER assessment_extends_chain BEFORE INSERT ON assessment
    FOR EACH ROW EXECUTE FUNCTION assessment_extends_chain();
"""

PG_ROLE = f"""
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN
        CREATE ROLE {APP_ROLE} NOLOGIN;
    END IF;
    IF NOT pg_has_role(current_user, '{APP_ROLE}', 'MEMBER') THEN
        EXECUTE format('GRANT {APP_ROLE} TO %I', current_user);
    END IF;
END
$$;
REVOKE ALL ON assessment, idempotency_key FROM PUBLIC;
GRANT SELECT, INSERT ON assessment TO {APP_ROLE};
GRANT SELECT, INSERT, DELETE ON idempotency_key TO {APP_ROLE};
GRANT SELECT ON alembic_version TO {APP_ROLE};
"""  # noqa: S608 - formats in a constant role name, no input

SQLITE_APPEND_ONLY = (
    f"""CREATE TRIGGER assessment_extends_chain BEFORE INSERT ON assessment
    WHEN NEW.seq <> COALESCE((SELECT max(seq) FROM assessment), 0) + 1
      OR NEW.prev_hash <> COALESCE(
          (SELECT hash FROM assessment ORDER BY seq DESC LIMIT 1), '{"0" * 64}')
      OR NEW.recorded_at < COALESCE(
          (SELECT recorded_at FROM assessment ORDER BY seq DESC LIMIT 1), NEW.recorded_at)
    BEGIN SELECT RAISE(ABORT, 'assessment does not extend the audit chain head'); END""",  # noqa: S608
    """CREATE TRIGGER assessment_no_update BEFORE UPDATE ON assessment
    BEGIN SELECT RAISE(ABORT, 'assessment is an append-only audit trail: UPDATE refused'); END""",
    """CREATE TRIGGER assessment_no_delete BEFORE DELETE ON assessment
    BEGIN SELECT RAISE(ABORT, 'assessment is an append-only audit trail: DELETE refused'); END""",
)


def _link_existing_rows() -> None:
    """Give every decision recorded before the chain existed its link, in sequence order."""
    assessment = sa.table(
        "assessment",
        sa.column("recorded_at", sa.DateTime(timezone=True)),
        sa.column("id", sa.Uuid()),
        *(sa.column(name) for name in ("seq", "subject_id", "site_id")),
        *(sa.column(name) for name in ("classifier_name", "classifier_version", "classifier_digest")),
        *(sa.column(name) for name in ("eligibility_status", "risk_group", "request_media_type")),
        sa.column("request_sha256"),
        sa.column("input", document),
        sa.column("decision", document),
        *(sa.column(name, type_) for name, type_ in _NEW_COLUMNS),
    )
    bind = op.get_bind()
    previous = GENESIS_HASH
    # In time order: before the chain, two writers could commit seq n+1 timed before seq n; linked in
    # seq order those rows would read as time going backwards, an alarm no one could ever clear.
    ordered = sa.select(assessment).order_by(assessment.c.recorded_at, assessment.c.seq)
    rows = bind.execute(ordered).mappings().all()
    # Renumbering may move a row onto a number another row still holds: park every row out of the way
    # first (negative numbers, never issued), then number them 1..n.
    bind.execute(sa.update(assessment).values(seq=-assessment.c.seq))
    for seq, row in enumerate(rows, start=1):
        values = {**row, "seq": seq, "prev_hash": previous, "client_id": LEGACY_CLIENT}
        values["recorded_at"] = _aware(row["recorded_at"])
        digest = _record_hash(values)
        bind.execute(
            sa.update(assessment)
            .where(assessment.c.seq == -row["seq"])
            .values(seq=seq, prev_hash=previous, hash=digest, client_id=LEGACY_CLIENT)
        )
        previous = digest


# The record format this migration writes, frozen here (docs/audit.md): a later change of the format in
# app/domain/audit.py must not change what upgrading through 0002 writes.
GENESIS_HASH = "0" * 64
RECORD_FIELDS = (
    "seq",
    "prev_hash",
    "id",
    "recorded_at",
    "client_id",
    "request_id",
    "idempotency_key",
    "subject_id",
    "site_id",
    "classifier_name",
    "classifier_version",
    "classifier_digest",
    "eligibility_status",
    "risk_group",
    "request_media_type",
    "request_sha256",
    "input",
    "decision",
    "supersedes",
    "correction_reason",
)


def _record_hash(values: dict[str, Any]) -> str:
    record: dict[str, Any] = {}
    for name in RECORD_FIELDS:
        value = values[name]
        if isinstance(value, uuid.UUID):
            value = str(value)
        elif isinstance(value, datetime):
            value = value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        record[name] = value
    return hashlib.sha256(rfc8785.dumps(record)).hexdigest()


def _aware(value: datetime) -> datetime:
    """SQLite hands back naive UTC; PostgreSQL an aware instant."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    for name, type_ in _NEW_COLUMNS:
        op.add_column("assessment", sa.Column(name, type_, nullable=True))
    _link_existing_rows()
    with op.batch_alter_table("assessment") as batch:
        for name in ("prev_hash", "hash", "client_id"):
            batch.alter_column(name, existing_type=sa.String(length=64), nullable=False)
        batch.create_unique_constraint(op.f("uq_assessment_prev_hash"), ["prev_hash"])
        batch.create_unique_constraint(op.f("uq_assessment_hash"), ["hash"])
        batch.create_unique_constraint(op.f("uq_assessment_supersedes"), ["supersedes"])
        batch.create_foreign_key("fk_assessment_supersedes_assessment", "assessment", ["supersedes"], ["id"])
    if dialect == "postgresql":
        # Sequence numbers are assigned by the chain (head + 1), never by a sequence that skips on rollback.
        op.execute("ALTER TABLE assessment ALTER COLUMN seq DROP DEFAULT")
        op.execute("DROP SEQUENCE IF EXISTS assessment_seq_seq")
    op.create_table(
        "idempotency_key",
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("assessment_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["assessment_id"],
            ["assessment.id"],
            name=op.f("fk_idempotency_key_assessment_id_assessment"),
            deferrable=True,
            initially="DEFERRED",
        ),
        sa.PrimaryKeyConstraint("client_id", "key", name=op.f("pk_idempotency_key")),
    )
    if dialect == "postgresql":
        op.execute(PG_APPEND_ONLY)
        op.execute(PG_ROLE)
    else:
        for statement in SQLITE_APPEND_ONLY:
            op.execute(statement)


def downgrade() -> None:
    bind = op.get_bind()
    dialect = bind.dialect.name
    if bind.execute(sa.text("SELECT count(*) FROM assessment")).scalar_one():
        # Going down drops who asked, corrections and the chain; coming back up would relink the records
        # as 'unrecorded' with new hashes, and every receipt a caller holds would stop matching.
        raise RuntimeError("refusing to downgrade below 0002: the audit trail holds records")
    if dialect == "postgresql":
        op.execute("DROP TRIGGER assessment_no_truncate ON assessment")
        op.execute("DROP TRIGGER assessment_no_update_or_delete ON assessment")
        op.execute("DROP FUNCTION assessment_append_only()")
        op.execute("DROP TRIGGER assessment_extends_chain ON assessment")
        op.execute("DROP FUNCTION assessment_extends_chain()")
        op.execute(f"REVOKE ALL ON assessment FROM {APP_ROLE}")
    else:
        op.execute("DROP TRIGGER assessment_extends_chain")
        op.execute("DROP TRIGGER assessment_no_delete")
        op.execute("DROP TRIGGER assessment_no_update")
    op.drop_table("idempotency_key")
    with op.batch_alter_table("assessment") as batch:
        batch.drop_constraint("fk_assessment_supersedes_assessment", type_="foreignkey")
        batch.drop_constraint(op.f("uq_assessment_supersedes"), type_="unique")
        batch.drop_constraint(op.f("uq_assessment_hash"), type_="unique")
        batch.drop_constraint(op.f("uq_assessment_prev_hash"), type_="unique")
        for name, _ in reversed(_NEW_COLUMNS):
            batch.drop_column(name)
    if dialect == "postgresql":
        op.execute("CREATE SEQUENCE assessment_seq_seq OWNED BY assessment.seq")
        op.execute("SELECT setval('assessment_seq_seq', COALESCE(max(seq), 0) + 1, false) FROM assessment")
        op.execute("ALTER TABLE assessment ALTER COLUMN seq SET DEFAULT nextval('assessment_seq_seq')")
