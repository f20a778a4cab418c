"""Recorded decisions as the use cases hand them out: the caller's receipt (a decision with its link in the
chain), a page of a subject's decisions with the opaque cursor that continues it, and what replaying a
decision changed."""

import base64
import binascii
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.store.models import Assessment
from app.store.repositories import StoredAssessment

MAX_SEQ = 2**63 - 1
"""The largest sequence number a BIGINT holds."""


class InvalidCursor(Exception):
    """A pagination cursor this service did not issue."""


@dataclass(frozen=True)
class RecordedAssessment:
    """A decision as the audit store holds it, with its link in the chain (the caller's receipt)."""

    id: uuid.UUID
    seq: int
    prev_hash: str
    hash: str
    client_id: str
    request_id: str | None
    idempotency_key: str | None
    subject_id: str
    site_id: str | None
    recorded_at: datetime
    input: dict[str, Any]
    decision: dict[str, Any]
    supersedes: uuid.UUID | None
    correction_reason: str | None
    superseded_by: uuid.UUID | None

    @classmethod
    def from_row(cls, row: Assessment, superseded_by: uuid.UUID | None = None) -> "RecordedAssessment":
        return cls(
            id=row.id,
            seq=row.seq,
            prev_hash=row.prev_hash,
            hash=row.hash,
            client_id=row.client_id,
            request_id=row.request_id,
            idempotency_key=row.idempotency_key,
            subject_id=row.subject_id,
            site_id=row.site_id,
            recorded_at=row.recorded_at,
            input=row.input,
            decision=row.decision,
            supersedes=row.supersedes,
            correction_reason=row.correction_reason,
            superseded_by=superseded_by,
        )

    @classmethod
    def from_stored(cls, stored: StoredAssessment) -> "RecordedAssessment":
        return cls.from_row(stored.row, stored.superseded_by)


@dataclass(frozen=True)
class Page:
    items: Sequence[RecordedAssessment]
    next_cursor: str | None


@dataclass(frozen=True)
class Change:
    field: str
    recorded: Any
    replayed: Any


@dataclass(frozen=True)
class Replay:
    original: RecordedAssessment
    replayed: dict[str, Any]
    changes: tuple[Change, ...]

    @property
    def matches(self) -> bool:
        return not self.changes


def decision_changes(recorded: Any, replayed: Any, path: str = "") -> list[Change]:
    """Every leaf that differs between two decision documents, by dotted path; the classifier aside."""
    if isinstance(recorded, dict) and isinstance(replayed, dict):
        changes: list[Change] = []
        for key in sorted(recorded.keys() | replayed.keys()):
            if not path and key == "classifier":
                continue
            changes += decision_changes(
                recorded.get(key), replayed.get(key), f"{path}.{key}" if path else key
            )
        return changes
    return [] if recorded == replayed else [Change(path, recorded, replayed)]


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"seq:{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (ValueError, binascii.Error):
        raise InvalidCursor("not a cursor this service issued") from None
    prefix, _, seq = text.partition(":")
    if prefix != "seq" or not (seq.isascii() and seq.isdigit()) or not 0 < int(seq) <= MAX_SEQ:
        raise InvalidCursor("not a cursor this service issued")
    return int(seq)
