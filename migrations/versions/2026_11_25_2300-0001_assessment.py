"""The assessment table: every decision the service gives, as given.

Revision ID: 0001
Revises:
Create Date: 2026-11-25 23:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

document = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "assessment",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("subject_id", sa.String(length=64), nullable=False),
        sa.Column("site_id", sa.String(length=64), nullable=True),
        sa.Column("classifier_name", sa.String(length=64), nullable=False),
        sa.Column("classifier_version", sa.String(length=32), nullable=False),
        sa.Column("classifier_digest", sa.String(length=71), nullable=False),
        sa.Column("eligibility_status", sa.String(length=16), nullable=False),
        sa.Column("risk_group", sa.String(length=8), nullable=True),
        sa.Column("request_media_type", sa.String(length=127), nullable=False),
        sa.Column("request_sha256", sa.String(length=64), nullable=False),
        sa.Column("request_body", sa.Text(), nullable=False),
        sa.Column("input", document, nullable=False),
        sa.Column("decision", document, nullable=False),
        sa.CheckConstraint(
            "eligibility_status IN ('eligible', 'ineligible', 'indeterminate')",
            name=op.f("ck_assessment_eligibility_status"),
        ),
        sa.CheckConstraint(
            "risk_group IS NULL OR risk_group IN ('low', 'high')",
            name=op.f("ck_assessment_risk_group"),
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_assessment")),
        sa.UniqueConstraint("id", name=op.f("uq_assessment_id")),
    )
    op.create_index("ix_assessment_subject_id_seq", "assessment", ["subject_id", "seq"])


def downgrade() -> None:
    op.drop_index("ix_assessment_subject_id_seq", table_name="assessment")
    op.drop_table("assessment")
