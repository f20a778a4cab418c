"""Queries of the classifier registry in the store: versions, their lifecycle events, shadow decisions."""

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, tuple_
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.store.models import Assessment, ClassifierEvent, ClassifierVersion, ShadowDecision
from app.store.types import utcnow

logger = logging.getLogger(__name__)

CLASSIFIER_LOCK = 0x494C_365F_434C_4653
"""The PostgreSQL advisory lock (one bigint key) under which lifecycle changes take turns, so that two
activations at once cannot leave a classifier with two active versions."""


@dataclass(frozen=True)
class VersionHeader:
    """What identifies a stored version without its manifest and artifact."""

    name: str
    version: str
    digest: str


@dataclass(frozen=True)
class NewShadowDecision:
    """A candidate version's output for one live decision, stored beside it."""

    assessment_id: uuid.UUID
    classifier_name: str
    classifier_version: str
    classifier_digest: str
    eligibility_status: str | None
    risk_group: str | None
    decision: dict[str, Any] | None
    error: str | None


@dataclass(frozen=True)
class ShadowOutcome:
    answered_eligibility: str
    answered_risk_group: str | None
    shadow_eligibility: str | None
    shadow_risk_group: str | None
    count: int


class ClassifierRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def lock(self) -> None:
        """Take the lifecycle's turn until commit (SQLite's IMMEDIATE transaction already holds the write
        lock)."""
        if self._session.get_bind().dialect.name == "postgresql":
            await self._session.execute(select(func.pg_advisory_xact_lock(CLASSIFIER_LOCK)))

    async def now(self) -> datetime:
        return (await self._session.execute(select(utcnow()))).scalar_one()

    async def headers(self) -> Sequence[VersionHeader]:
        statement = select(ClassifierVersion.name, ClassifierVersion.version, ClassifierVersion.digest)
        return [VersionHeader(*row) for row in (await self._session.execute(statement)).all()]

    async def get(self, name: str, version: str) -> ClassifierVersion | None:
        return await self._session.get(ClassifierVersion, (name, version))

    async def get_many(self, refs: Sequence[tuple[str, str]]) -> Sequence[ClassifierVersion]:
        if not refs:
            return []
        key = tuple_(ClassifierVersion.name, ClassifierVersion.version)
        return (await self._session.scalars(select(ClassifierVersion).where(key.in_(refs)))).all()

    async def add(self, version: ClassifierVersion) -> None:
        self._session.add(version)
        await self._session.flush()

    async def stored_manifest(self, name: str, version: str) -> Any:
        """A version's manifest as the store gives it back (read afresh, never the object added)."""
        statement = select(ClassifierVersion.manifest).where(
            ClassifierVersion.name == name, ClassifierVersion.version == version
        )
        return (await self._session.execute(statement)).scalar_one()

    async def events(self, name: str | None = None) -> Sequence[ClassifierEvent]:
        """Lifecycle events in the order they were recorded, of one classifier or of all."""
        statement = select(ClassifierEvent).order_by(ClassifierEvent.id)
        if name is not None:
            statement = statement.where(ClassifierEvent.name == name)
        return (await self._session.scalars(statement)).all()

    async def last_event_id(self) -> int:
        """The newest event's id (0 when there is none): it changes whenever any lifecycle does."""
        statement = select(func.coalesce(func.max(ClassifierEvent.id), 0))
        return int((await self._session.execute(statement)).scalar_one())

    async def record(self, events: Sequence[ClassifierEvent]) -> None:
        self._session.add_all(events)
        await self._session.flush()


class ShadowRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, shadows: Sequence[NewShadowDecision]) -> bool:
        """Insert shadow outputs in a savepoint of their own: if the store refuses them, they are lost and
        the live decisions beside them are not. False when refused."""
        if not shadows:
            return True
        try:
            async with self._session.begin_nested():
                await self._session.execute(insert(ShadowDecision), [vars(shadow) for shadow in shadows])
        except (IntegrityError, DataError):
            logger.error("%d shadow decisions refused by the store and not kept", len(shadows))
            return False
        return True

    async def outcomes(self, name: str, version: str, answered_by: str) -> Sequence[ShadowOutcome]:
        """How many live decisions of version ``answered_by`` the version shadowed, by what was answered
        and what it decided."""
        statement = (
            select(
                Assessment.eligibility_status,
                Assessment.risk_group,
                ShadowDecision.eligibility_status,
                ShadowDecision.risk_group,
                func.count(),
            )
            .join(Assessment, Assessment.id == ShadowDecision.assessment_id)
            .where(
                ShadowDecision.classifier_name == name,
                ShadowDecision.classifier_version == version,
                Assessment.classifier_version == answered_by,
            )
            .group_by(
                Assessment.eligibility_status,
                Assessment.risk_group,
                ShadowDecision.eligibility_status,
                ShadowDecision.risk_group,
            )
        )
        return [ShadowOutcome(*row) for row in (await self._session.execute(statement)).all()]
