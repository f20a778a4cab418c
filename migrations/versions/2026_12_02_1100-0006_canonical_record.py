"""Each audit record keeps the exact bytes its hash covers: ``assessment.canonical_record``.

The record's RFC 8785 serialisation, as the writer hashed it. Verifying the chain then hashes these bytes
as stored instead of rebuilding and re-serialising every record from its columns, and the database checks
that the columns the service reads still say what the bytes say (app/store/repositories.py). Records
written before this revision have none (NULL) and are verified from their columns as before: the audit
trail is append-only, so nothing is filled in afterwards. Adding a nullable column rewrites no row.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 11:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("assessment", sa.Column("canonical_record", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    op.drop_column("assessment", "canonical_record")
