"""Deciding on an IL6 result, recording it, and reading or replaying recorded decisions."""

import base64
import binascii
import hashlib
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.domain.classifiers.registry import ClassifierRegistry, RegisteredVersion
from app.domain.il6 import measure
from app.domain.specimen import Specimen
from app.service.documents import (
    Submission,
    decision_document,
    input_document,
    submission_from_input,
)
from app.store.models import Assessment
from app.store.repositories import NewAssessment
from app.store.unit_of_work import UnitOfWork

MAX_SEQ = 2**63 - 1
"""The largest sequence number a BIGINT holds."""


class InvalidCursor(Exception):
    """A pagination cursor this service did not issue."""


class ReplayUnavailable(Exception):
    """The version that made a decision is not servable as recorded, so it cannot be replayed."""


@dataclass(frozen=True)
class RecordedAssessment:
    """A decision as the audit store holds it."""

    id: uuid.UUID
    seq: int
    subject_id: str
    site_id: str | None
    recorded_at: datetime
    input: dict[str, Any]
    decision: dict[str, Any]

    @classmethod
    def from_row(cls, row: Assessment) -> "RecordedAssessment":
        return cls(
            id=row.id,
            seq=row.seq,
            subject_id=row.subject_id,
            site_id=row.site_id,
            recorded_at=row.recorded_at,
            input=row.input,
            decision=row.decision,
        )


@dataclass(frozen=True)
class RawRequest:
    body: bytes
    media_type: str


@dataclass(frozen=True)
class Page:
    items: Sequence[RecordedAssessment]
    next_cursor: str | None


@dataclass(frozen=True)
class Replay:
    original: RecordedAssessment
    replayed: dict[str, Any]

    @property
    def matches(self) -> bool:
        return self.replayed == self.original.decision


def _encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"seq:{seq}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (ValueError, binascii.Error):
        raise InvalidCursor("not a cursor this service issued") from None
    prefix, _, seq = text.partition(":")
    if prefix != "seq" or not (seq.isascii() and seq.isdigit()) or not 0 < int(seq) <= MAX_SEQ:
        raise InvalidCursor("not a cursor this service issued")
    return int(seq)


class AssessmentService:
    def __init__(self, registry: ClassifierRegistry, unit_of_work: Callable[[], UnitOfWork]) -> None:
        self._registry = registry
        self._unit_of_work = unit_of_work

    def _decide(self, submission: Submission, version: RegisteredVersion) -> dict[str, Any]:
        assay = version.definition.assay(submission.assay)
        measurement = measure(submission.value, submission.unit, submission.comparator, assay)
        specimen = Specimen(submission.specimen_type, submission.collected_at)
        return decision_document(version.classifier.decide(measurement, specimen), version)

    async def decide(self, submission: Submission, raw: RawRequest) -> RecordedAssessment:
        """Decide on one result and record it; the decision exists only once the record is committed."""
        version = self._registry.resolve(submission.classifier)
        decision = self._decide(submission, version)
        async with self._unit_of_work() as uow:
            row = await uow.assessments.add(
                NewAssessment(
                    id=uuid.uuid4(),
                    subject_id=submission.subject_id,
                    site_id=submission.site_id,
                    classifier_name=version.definition.name,
                    classifier_version=version.definition.version,
                    classifier_digest=version.digest,
                    eligibility_status=decision["eligibility"]["status"],
                    risk_group=decision["risk"]["group"],
                    request_media_type=raw.media_type,
                    request_sha256=hashlib.sha256(raw.body).hexdigest(),
                    request_body=raw.body.decode("utf-8"),
                    input=input_document(submission),
                    decision=decision,
                )
            )
            recorded = RecordedAssessment.from_row(row)
            await uow.commit()
        return recorded

    async def get(self, assessment_id: uuid.UUID) -> RecordedAssessment | None:
        async with self._unit_of_work() as uow:
            row = await uow.assessments.get(assessment_id)
            return None if row is None else RecordedAssessment.from_row(row)

    async def list_for_subject(self, subject_id: str, *, limit: int, cursor: str | None) -> Page:
        """A subject's decisions, newest first; ``next_cursor`` continues where this page ends."""
        before = None if cursor is None else _decode_cursor(cursor)
        async with self._unit_of_work() as uow:
            rows = await uow.assessments.list_for_subject(subject_id, limit=limit + 1, before_seq=before)
            items = [RecordedAssessment.from_row(row) for row in rows[:limit]]
        next_cursor = _encode_cursor(items[-1].seq) if len(rows) > limit else None
        return Page(items, next_cursor)

    async def replay(self, assessment_id: uuid.UUID) -> Replay | None:
        """Decide a recorded input again under the version that decided it, verified by its digest."""
        original = await self.get(assessment_id)
        if original is None:
            return None
        recorded = original.decision["classifier"]
        version = self._registry.get(recorded["name"], recorded["version"])
        if version is None or version.digest != recorded["digest"]:
            raise ReplayUnavailable(
                "the classifier version that made this decision is not loaded with its recorded digest"
            )
        submission = submission_from_input(original.input)
        return Replay(original, self._decide(submission, version))
