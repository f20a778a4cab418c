"""The classifier registry in the store: immutable versions, their lifecycle, and shadow decisions.

``classifier_version`` holds each version's manifest and model artifact as registered; ``classifier_event``
its lifecycle (registered, activated, retired, shadow started or stopped: who, when, why), from which the
status of every version and the version active at any time are read; ``shadow_decision`` what a candidate
version decided beside a live decision. All three are append-only, for every role and on SQLite too; the
service's role ``il6_app`` may only read and insert.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 06:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APP_ROLE = "il6_app"
TABLES = ("classifier_version", "classifier_event", "shadow_decision")
SequenceNumber = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Document = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

PG_GUARD = """
CREATE FUNCTION classifier_registry_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% refused: classifier versions, their lifecycle and shadow decisions are never '
        'changed or deleted', TG_OP USING ERRCODE = 'insufficient_privilege';
END
$$;
"""


def _pg_triggers(table: str) -> str:
    return f"""
CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table}
    FOR EACH ROW EXECUTE FUNCTION classifier_registry_append_only();
CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}
    FOR EACH STATEMENT EXECUTE FUNCTION classifier_registry_append_only();
"""


PG_GRANTS = f"""
REVOKE ALL ON {", ".join(TABLES)} FROM PUBLIC;
GRANT SELECT, INSERT ON {", ".join(TABLES)} TO {APP_ROLE};
GRANT USAGE ON SEQUENCE classifier_event_id_seq TO {APP_ROLE};
"""


def _sqlite_triggers(table: str) -> tuple[str, ...]:
    return tuple(
        f"""CREATE TRIGGER {table}_no_{operation.lower()} BEFORE {operation} ON {table}
    BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"""
        for operation in ("UPDATE", "DELETE")
    )


def upgrade() -> None:
    op.create_table(
        "classifier_version",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("version", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("digest", sa.String(length=71), nullable=False),
        sa.Column("manifest", Document, nullable=False),
        sa.Column("artifact", sa.LargeBinary(), nullable=True),
        sa.Column("origin", sa.String(length=16), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("registered_by", sa.String(length=64), nullable=False),
        sa.CheckConstraint("origin IN ('bundled', 'registered')", name=op.f("ck_classifier_version_origin")),
        sa.PrimaryKeyConstraint("name", "version", name=op.f("pk_classifier_version")),
    )
    op.create_table(
        "classifier_event",
        sa.Column("id", SequenceNumber, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("version", sa.String(length=32), nullable=False),
        sa.Column("event", sa.String(length=16), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("by", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.CheckConstraint(
            "event IN ('registered', 'activated', 'retired', 'shadow-started', 'shadow-stopped')",
            name=op.f("ck_classifier_event_event"),
        ),
        sa.ForeignKeyConstraint(
            ["name", "version"],
            ["classifier_version.name", "classifier_version.version"],
            name="fk_classifier_event_version",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_classifier_event")),
    )
    op.create_index("ix_classifier_event_name_id", "classifier_event", ["name", "id"])
    op.create_table(
        "shadow_decision",
        sa.Column("assessment_id", sa.Uuid(), nullable=False),
        sa.Column("classifier_name", sa.String(length=64), nullable=False),
        sa.Column("classifier_version", sa.String(length=32), nullable=False),
        sa.Column("classifier_digest", sa.String(length=71), nullable=False),
        sa.Column("eligibility_status", sa.String(length=16), nullable=True),
        sa.Column("risk_group", sa.String(length=8), nullable=True),
        sa.Column("decision", Document, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["assessment_id"], ["assessment.id"], name="fk_shadow_decision_assessment_id_assessment"
        ),
        sa.PrimaryKeyConstraint(
            "assessment_id", "classifier_name", "classifier_version", name=op.f("pk_shadow_decision")
        ),
    )
    op.create_index(
        "ix_shadow_decision_classifier", "shadow_decision", ["classifier_name", "classifier_version"]
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_GUARD)
        for table in TABLES:
            op.execute(_pg_triggers(table))
        op.execute(PG_GRANTS)
    else:
        for table in TABLES:
            for statement in _sqlite_triggers(table):
                op.execute(statement)


def downgrade() -> None:
    # The lifecycle says which version decided when: dropping it would lose that record.
    if op.get_bind().execute(sa.text("SELECT count(*) FROM classifier_event")).scalar_one():
        raise RuntimeError(
            "refusing to downgrade below 0004: the classifier lifecycle records which version was active when"
        )
    if op.get_bind().dialect.name == "postgresql":
        for table in TABLES:
            op.execute(f"DROP TRIGGER {table}_append_only ON {table}")
            op.execute(f"DROP TRIGGER {table}_no_truncate ON {table}")
        op.execute("DROP FUNCTION classifier_registry_append_only()")
    op.drop_index("ix_shadow_decision_classifier", table_name="shadow_decision")
    op.drop_table("shadow_decision")
    op.drop_index("ix_classifier_event_name_id", table_name="classifier_event")
    op.drop_table("classifier_event")
    op.drop_table("classifier_version")
