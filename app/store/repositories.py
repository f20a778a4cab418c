"""Every query the service runs. Repositories take a session and only flush; the unit of work commits."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.store.models import Assessment
from app.store.types import utcnow


@dataclass(frozen=True)
class NewAssessment:
    id: uuid.UUID
    subject_id: str
    site_id: str | None
    classifier_name: str
    classifier_version: str
    classifier_digest: str
    eligibility_status: str
    risk_group: str | None
    request_media_type: str
    request_sha256: str
    request_body: str
    input: dict[str, Any]
    decision: dict[str, Any]


_ASSESSMENT = cast(Table, Assessment.__table__)
_INSERT = (
    insert(_ASSESSMENT).values(recorded_at=utcnow()).returning(_ASSESSMENT.c.seq, _ASSESSMENT.c.recorded_at)
)


class AssessmentRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, new: NewAssessment) -> Assessment:
        """Insert one decision, stamped by the database clock, and return it as stored."""
        # vars(), not asdict(): asdict deep-copies the two JSON documents on every insert. The values go
        # as parameters of one prebuilt statement, so nothing is compiled or cache-keyed per request.
        values = vars(new)
        stamped = (await self._session.execute(_INSERT, values)).one()
        return Assessment(**values, seq=stamped.seq, recorded_at=stamped.recorded_at)

    async def get(self, assessment_id: uuid.UUID) -> Assessment | None:
        statement = select(Assessment).where(Assessment.id == assessment_id)
        return (await self._session.scalars(statement)).one_or_none()

    async def list_for_subject(
        self, subject_id: str, *, limit: int, before_seq: int | None = None
    ) -> Sequence[Assessment]:
        """A subject's decisions, newest first, from just before ``before_seq`` (keyset pagination)."""
        statement = select(Assessment).where(Assessment.subject_id == subject_id)
        if before_seq is not None:
            statement = statement.where(Assessment.seq < before_seq)
        statement = statement.order_by(Assessment.seq.desc()).limit(limit)
        return (await self._session.scalars(statement)).all()
