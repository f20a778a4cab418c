"""The monitoring page's queries: aggregates over the audit trail in a time window, of some sites or all.

Every query is bounded: counts are grouped in the database (a day, an outcome, a site and a classifier
version per row), and the per-result reads (IL6 values, indeterminate reasons, the newest decisions) take
the newest ``limit`` rows only.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Select, String, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from app.domain.specimen import SpecimenType
from app.store.models import Assessment
from app.store.types import utcnow


class utc_day(FunctionElement[str]):  # noqa: N801 - reads as the SQL function it renders
    """The UTC calendar day of a timestamp column, as ``YYYY-MM-DD`` text, on either backend."""

    type = String()
    inherit_cache = True


@compiles(utc_day, "postgresql")
def _utc_day_postgresql(element: utc_day, compiler: SQLCompiler, **kw: Any) -> str:
    return f"to_char(({compiler.process(element.clauses, **kw)}) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"


@compiles(utc_day, "sqlite")
def _utc_day_sqlite(element: utc_day, compiler: SQLCompiler, **kw: Any) -> str:
    # UTCDateTime keeps SQLite timestamps as naive UTC text, 'YYYY-MM-DD HH:MM:SS.ffffff'.
    return f"substr({compiler.process(element.clauses, **kw)}, 1, 10)"


@dataclass(frozen=True)
class DecisionCount:
    """How many decisions one day (UTC, ``YYYY-MM-DD``) had with this outcome, site and classifier."""

    day: str
    eligibility_status: str
    site_id: str | None
    classifier_name: str
    classifier_version: str
    count: int


@dataclass(frozen=True)
class IL6Result:
    """A decided result's IL6 as the decision recorded it: pg/mL as exact decimal text, and its comparator
    (None for an exact value)."""

    pg_per_ml: str
    comparator: str | None


@dataclass(frozen=True)
class RecentDecision:
    """A decision as the monitoring page lists it: no IL6 value, no caller, no sender's reference."""

    seq: int
    recorded_at: datetime
    subject_id: str
    site_id: str | None
    eligibility_status: str
    risk_group: str | None
    classifier_name: str
    classifier_version: str


_S = TypeVar("_S", bound=Select[*tuple[Any, ...]])
_DAY = utc_day(Assessment.recorded_at)
_IL6_VALUE = Assessment.decision[("il6", "pg_per_ml")].as_string()
_IL6_COMPARATOR = Assessment.decision[("il6", "comparator")].as_string()
_ELIGIBILITY_REASONS = Assessment.decision[("eligibility", "reasons")]
_SPECIMEN = Assessment.input[("specimen", "type")].as_string()


def _within(statement: _S, since: datetime | None, sites: frozenset[str] | None) -> _S:
    """Decisions recorded at or after ``since`` (when given), of ``sites`` only (when given; a decision
    without a site then never matches, as ``SiteAccess.permits`` says)."""
    if since is not None:
        statement = statement.where(Assessment.recorded_at >= since)
    if sites is not None:
        statement = statement.where(Assessment.site_id.in_(sorted(sites)))
    return statement


class MonitoringRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def now(self) -> datetime:
        """The database's clock: the one every ``recorded_at`` was stamped by."""
        now: datetime = (await self._session.execute(select(utcnow()))).scalar_one()
        return now

    async def daily_counts(self, since: datetime, sites: frozenset[str] | None) -> Sequence[DecisionCount]:
        """Decisions since ``since`` counted by UTC day, outcome, site and classifier version."""
        columns = (
            _DAY,
            Assessment.eligibility_status,
            Assessment.site_id,
            Assessment.classifier_name,
            Assessment.classifier_version,
        )
        statement = _within(select(*columns, func.count()), since, sites).group_by(*columns)
        rows = (await self._session.execute(statement)).all()
        return [DecisionCount(str(row[0]), row[1], row[2], row[3], row[4], int(row[5])) for row in rows]

    async def il6_results(
        self, since: datetime, sites: frozenset[str] | None, *, limit: int
    ) -> Sequence[IL6Result]:
        """The IL6 values of the newest ``limit`` decisions on serum since ``since``, newest first (results
        from other specimens are not drawn against the serum cutoff and limits)."""
        statement = select(_IL6_VALUE, _IL6_COMPARATOR).where(SpecimenType.SERUM.value == _SPECIMEN)
        statement = _within(statement, since, sites).order_by(Assessment.seq.desc()).limit(limit)
        rows = (await self._session.execute(statement)).all()
        return [IL6Result(str(value), comparator) for value, comparator in rows if value is not None]

    async def indeterminate_reason_codes(
        self, since: datetime, sites: frozenset[str] | None, *, limit: int
    ) -> Sequence[list[str]]:
        """The eligibility reason codes of the newest ``limit`` indeterminate decisions since ``since``."""
        statement = select(_ELIGIBILITY_REASONS).where(Assessment.eligibility_status == "indeterminate")
        statement = _within(statement, since, sites).order_by(Assessment.seq.desc()).limit(limit)
        reasons = (await self._session.scalars(statement)).all()
        return [
            [str(reason["code"]) for reason in listed if isinstance(reason, dict) and "code" in reason]
            for listed in reasons
            if isinstance(listed, list)
        ]

    async def recent(self, sites: frozenset[str] | None, *, limit: int) -> Sequence[RecentDecision]:
        """The newest ``limit`` decisions of ``sites`` (every site when None), newest first."""
        statement = select(
            Assessment.seq,
            Assessment.recorded_at,
            Assessment.subject_id,
            Assessment.site_id,
            Assessment.eligibility_status,
            Assessment.risk_group,
            Assessment.classifier_name,
            Assessment.classifier_version,
        )
        statement = _within(statement, None, sites).order_by(Assessment.seq.desc()).limit(limit)
        return [RecentDecision(*row) for row in (await self._session.execute(statement)).all()]
