"""The audit store's tables. Rows are only ever inserted: the service never updates or deletes them."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, CheckConstraint, Index, Integer, String, Text, Uuid
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.store.base import Base
from app.store.types import UTCDateTime

Document = JSON().with_variant(JSONB(), "postgresql")
SequenceNumber = BigInteger().with_variant(Integer(), "sqlite")


class Assessment(Base):
    """One eligibility decision as given: what was asked, what was answered, by which classifier, when."""

    __tablename__ = "assessment"
    __table_args__ = (
        CheckConstraint(
            "eligibility_status IN ('eligible', 'ineligible', 'indeterminate')",
            name="eligibility_status",
        ),
        CheckConstraint("risk_group IS NULL OR risk_group IN ('low', 'high')", name="risk_group"),
        Index("ix_assessment_subject_id_seq", "subject_id", "seq"),
    )

    seq: Mapped[int] = mapped_column(SequenceNumber, primary_key=True, autoincrement=True)
    id: Mapped[uuid.UUID] = mapped_column(Uuid(), unique=True)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())
    subject_id: Mapped[str] = mapped_column(String(64))
    site_id: Mapped[str | None] = mapped_column(String(64))
    classifier_name: Mapped[str] = mapped_column(String(64))
    classifier_version: Mapped[str] = mapped_column(String(32))
    classifier_digest: Mapped[str] = mapped_column(String(71))
    eligibility_status: Mapped[str] = mapped_column(String(16))
    risk_group: Mapped[str | None] = mapped_column(String(8))
    request_media_type: Mapped[str] = mapped_column(String(127))
    request_sha256: Mapped[str] = mapped_column(String(64))
    request_body: Mapped[str] = mapped_column(Text())
    input: Mapped[dict[str, Any]] = mapped_column(Document)
    decision: Mapped[dict[str, Any]] = mapped_column(Document)
