"""The audit store's tables.

``assessment`` is the audit trail: rows are only ever inserted, each linked to the one before by its hash
(app/domain/audit.py), and the database refuses UPDATE, DELETE and TRUNCATE on it (migration 0002).
``idempotency_key`` holds the keys callers send with decisions, each naming the decision it produced.
``classifier_version`` and ``classifier_event`` are the classifier registry and its lifecycle, and
``shadow_decision`` what candidate versions decided beside live decisions (migration 0004).
"""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    PrimaryKeyConstraint,
    String,
    Text,
    Uuid,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.store.base import Base
from app.store.types import UTCDateTime

Document = JSON().with_variant(JSONB(), "postgresql")
SequenceNumber = BigInteger().with_variant(Integer(), "sqlite")


class Assessment(Base):
    """One eligibility decision as given: what was asked, what was answered, by which classifier, when,
    for whom, and its link in the audit chain."""

    __tablename__ = "assessment"
    __table_args__ = (
        CheckConstraint(
            "eligibility_status IN ('eligible', 'ineligible', 'indeterminate')",
            name="eligibility_status",
        ),
        CheckConstraint("risk_group IS NULL OR risk_group IN ('low', 'high')", name="risk_group"),
        Index("ix_assessment_subject_id_seq", "subject_id", "seq"),
        # The monitoring page's reads: a window of time, and a site's newest decisions (migration 0005).
        Index("ix_assessment_recorded_at", "recorded_at"),
        Index("ix_assessment_site_id_seq", "site_id", "seq"),
    )

    seq: Mapped[int] = mapped_column(SequenceNumber, primary_key=True, autoincrement=False)
    prev_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hash: Mapped[str] = mapped_column(String(64), unique=True)
    id: Mapped[uuid.UUID] = mapped_column(Uuid(), unique=True)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())
    client_id: Mapped[str] = mapped_column(String(64))
    request_id: Mapped[str | None] = mapped_column(String(64))
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
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
    supersedes: Mapped[uuid.UUID | None] = mapped_column(
        Uuid(), ForeignKey("assessment.id", name="fk_assessment_supersedes_assessment"), unique=True
    )
    correction_reason: Mapped[str | None] = mapped_column(Text())


class IdempotencyKey(Base):
    """A key a client sent with a decision request, the request's fingerprint, and the decision it made."""

    __tablename__ = "idempotency_key"
    __table_args__ = (PrimaryKeyConstraint("client_id", "key"),)

    client_id: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(255))
    fingerprint: Mapped[str] = mapped_column(String(64))
    assessment_id: Mapped[uuid.UUID] = mapped_column(
        Uuid(),
        ForeignKey("assessment.id", deferrable=True, initially="DEFERRED"),
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ApiKey(Base):
    """An API key: its public id, the SHA-256 of its secret (never the secret), what it may do and for
    which sites, and its state. Keys are never deleted: revoked or expired, they stay to name callers."""

    __tablename__ = "api_key"

    key_id: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    secret_sha256: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[list[str]] = mapped_column(JSON())
    sites: Mapped[list[str] | None] = mapped_column(JSON())
    """None: every site."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_by: Mapped[str | None] = mapped_column(String(64))


class ApiKeyEvent(Base):
    """Every change to a key, in order: who created, expired or revoked it, when and why (append-only)."""

    __tablename__ = "api_key_event"
    __table_args__ = (
        CheckConstraint("event IN ('created', 'expiry-set', 'revoked')", name="event"),
        Index("ix_api_key_event_key_id", "key_id"),
    )

    id: Mapped[int] = mapped_column(SequenceNumber, primary_key=True, autoincrement=True)
    key_id: Mapped[str] = mapped_column(String(16), ForeignKey("api_key.key_id"))
    event: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    by: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    reason: Mapped[str | None] = mapped_column(Text())


class ClassifierVersion(Base):
    """A classifier version the store knows: its manifest and model artifact exactly as registered, and its
    digest. Versions are immutable: rows are only ever inserted (migration 0004)."""

    __tablename__ = "classifier_version"
    __table_args__ = (
        PrimaryKeyConstraint("name", "version"),
        CheckConstraint("origin IN ('bundled', 'registered')", name="origin"),
    )

    name: Mapped[str] = mapped_column(String(64))
    version: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(64))
    digest: Mapped[str] = mapped_column(String(71))
    manifest: Mapped[dict[str, Any]] = mapped_column(Document)
    artifact: Mapped[bytes | None] = mapped_column(LargeBinary())
    origin: Mapped[str] = mapped_column(String(16))
    """``bundled``: shipped with the service; ``registered``: added by a trial team."""
    registered_at: Mapped[datetime] = mapped_column(UTCDateTime())
    registered_by: Mapped[str] = mapped_column(String(64))


class ClassifierEvent(Base):
    """Every lifecycle change of a classifier version, in order: registered (a draft), activated, retired,
    shadow started or stopped; who, when (the database clock) and why. Append-only: the current status of
    every version, and which version was active at any time, are read from it."""

    __tablename__ = "classifier_event"
    __table_args__ = (
        CheckConstraint(
            "event IN ('registered', 'activated', 'retired', 'shadow-started', 'shadow-stopped')",
            name="event",
        ),
        ForeignKeyConstraint(
            ["name", "version"],
            ["classifier_version.name", "classifier_version.version"],
            name="fk_classifier_event_version",
        ),
        Index("ix_classifier_event_name_id", "name", "id"),
    )

    id: Mapped[int] = mapped_column(SequenceNumber, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64))
    version: Mapped[str] = mapped_column(String(32))
    event: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    by: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text())


class ShadowDecision(Base):
    """What a shadow (candidate) version decided beside the version that answered: stored for comparison,
    never returned to the caller. ``error`` holds why the candidate could not decide, when it could not."""

    __tablename__ = "shadow_decision"
    __table_args__ = (
        PrimaryKeyConstraint("assessment_id", "classifier_name", "classifier_version"),
        Index("ix_shadow_decision_classifier", "classifier_name", "classifier_version"),
    )

    assessment_id: Mapped[uuid.UUID] = mapped_column(
        Uuid(), ForeignKey("assessment.id", name="fk_shadow_decision_assessment_id_assessment")
    )
    classifier_name: Mapped[str] = mapped_column(String(64))
    classifier_version: Mapped[str] = mapped_column(String(32))
    classifier_digest: Mapped[str] = mapped_column(String(71))
    eligibility_status: Mapped[str | None] = mapped_column(String(16))
    risk_group: Mapped[str | None] = mapped_column(String(8))
    decision: Mapped[dict[str, Any] | None] = mapped_column(Document)
    error: Mapped[str | None] = mapped_column(Text())
