"""Indexes for reading the audit trail by time and by site, as the monitoring page does (GET /ui).

Without them each page view would read the whole trail: decisions per day scan a window of
``recorded_at``, and a site-limited reader's newest decisions walk ``(site_id, seq)``. On PostgreSQL they
are built without blocking appends (CREATE INDEX CONCURRENTLY, outside the migration's transaction).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 07:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = (
    ("ix_assessment_recorded_at", ["recorded_at"]),
    ("ix_assessment_site_id_seq", ["site_id", "seq"]),
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            for name, columns in INDEXES:
                op.create_index(name, "assessment", columns, postgresql_concurrently=True)
        return
    for name, columns in INDEXES:
        op.create_index(name, "assessment", columns)


def downgrade() -> None:
    for name, _ in INDEXES:
        op.drop_index(name, table_name="assessment")
