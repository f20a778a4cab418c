"""What a candidate classifier version would change: replayed over recorded decisions (impact analysis),
or observed beside live ones (shadow scoring). Both record nothing and answer with counts only: no subject
id and no value leaves in a report."""

import asyncio
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from app.domain.classifiers.registry import RegisteredVersion
from app.domain.errors import DomainError, InvalidInput
from app.service.assessments import AssessmentService
from app.service.classifiers import ClassifierCatalog, UnknownVersion
from app.service.documents import submission_from_input
from app.store.unit_of_work import UnitOfWork

Subject = tuple[str | None, str]
"""A subject as the trial knows it: its site and its pseudonymous id."""

NONE = "none"
"""How a missing risk group (or a decision the candidate could not make) shows in a table."""


@dataclass(frozen=True)
class Agreement:
    """A confusion table: how often (recorded or answered, candidate) outcomes occurred together."""

    table: Counter[tuple[str, str]] = field(default_factory=Counter)

    def add(self, recorded: str | None, candidate: str | None, count: int = 1) -> None:
        self.table[(recorded or NONE, candidate or NONE)] += count

    @property
    def total(self) -> int:
        return sum(self.table.values())

    @property
    def changed(self) -> int:
        return sum(count for (recorded, candidate), count in self.table.items() if recorded != candidate)


@dataclass(frozen=True)
class Scope:
    """Which recorded decisions to replay: a range of sequence numbers and of recording times (the end
    excluded), corrected (superseded) decisions left out unless asked for."""

    from_seq: int = 1
    to_seq: int | None = None
    from_time: datetime | None = None
    to_time: datetime | None = None
    include_superseded: bool = False


@dataclass
class ImpactReport:
    candidate: RegisteredVersion
    scope: Scope
    decisions: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    eligibility: Agreement = field(default_factory=Agreement)
    risk_group: Agreement = field(default_factory=Agreement)
    undecidable: Counter[str] = field(default_factory=Counter)
    """Why the candidate could not decide some results (an assay it does not define, say), by reason."""
    pinned: int = 0
    """Decisions whose request pinned a version of the classifier: activating the candidate would not
    change them, so they are not replayed."""
    subjects: set[Subject] = field(default_factory=set, repr=False)
    subjects_changed: set[Subject] = field(default_factory=set, repr=False)

    def count(self, seq: int, subject_id: Subject) -> None:
        self.decisions += 1
        self.first_seq = seq if self.first_seq is None else self.first_seq
        self.last_seq = seq
        self.subjects.add(subject_id)


@dataclass(frozen=True)
class ShadowReport:
    candidate: RegisteredVersion
    against: str
    """The version whose answers the shadow's outputs are compared with (its classifier's)."""
    eligibility: Agreement
    risk_group: Agreement
    undecidable: int


class ClassifierReports:
    def __init__(self, catalog: ClassifierCatalog, unit_of_work: Callable[[], UnitOfWork]) -> None:
        self._catalog = catalog
        self._unit_of_work = unit_of_work

    def _candidate(self, name: str, version: str) -> RegisteredVersion:
        candidate = self._catalog.current.get(name, version)
        if candidate is None:
            raise UnknownVersion(f"{name}@{version} is not a verified version")
        return candidate

    async def impact(self, name: str, version: str, scope: Scope) -> ImpactReport:
        """Replay the classifier's recorded decisions under the candidate, as if it had been active, and
        count what would change, per decision and per subject (a subject changes when any of its decisions
        would). Decisions of other classifiers, and requests that pinned a version, are not affected by
        activating the candidate and are left out (the latter counted in ``pinned``)."""
        candidate = self._candidate(name, version)
        report = ImpactReport(candidate, scope)
        async with self._unit_of_work() as uow:
            superseded = set() if scope.include_superseded else await uow.assessments.superseded_ids()
            async for batch in uow.assessments.chain(
                from_seq=scope.from_seq,
                to_seq=scope.to_seq,
                from_time=scope.from_time,
                to_time=scope.to_time,
                classifier_name=name,
            ):
                for row in batch:
                    if row["id"] in superseded:
                        continue
                    if "@" in (row["input"].get("classifier") or ""):
                        report.pinned += 1
                        continue
                    subject = (row["site_id"], row["subject_id"])
                    report.count(row["seq"], subject)
                    recorded = (row["eligibility_status"], row["risk_group"])
                    if _replay_one(report, candidate, row["input"], *recorded):
                        report.subjects_changed.add(subject)
                await asyncio.sleep(0)  # a long replay lets the process's requests in between batches
        return report

    async def shadow(self, name: str, version: str, against: str | None = None) -> ShadowReport:
        """How the candidate's shadow outputs compare with what version ``against`` (the active one when
        not given) answered on the same live requests: one table per answering version, never a mix."""
        candidate = self._candidate(name, version)
        if against is None:
            try:
                against = self._catalog.current.resolve(name).definition.version
            except InvalidInput:
                raise UnknownVersion(f"{name} has no active version: say which to compare with") from None
        eligibility, risk_group, undecidable = Agreement(), Agreement(), 0
        async with self._unit_of_work() as uow:
            for outcome in await uow.shadows.outcomes(name, version, against):
                eligibility.add(outcome.answered_eligibility, outcome.shadow_eligibility, outcome.count)
                risk_group.add(outcome.answered_risk_group, outcome.shadow_risk_group, outcome.count)
                if outcome.shadow_eligibility is None:
                    undecidable += outcome.count
        return ShadowReport(candidate, f"{name}@{against}", eligibility, risk_group, undecidable)


def _replay_one(
    report: ImpactReport,
    candidate: RegisteredVersion,
    document: dict[str, object],
    eligibility: str,
    risk_group: str | None,
) -> bool:
    """Tally one recorded decision replayed under the candidate; True when the outcome would change."""
    try:
        decided = AssessmentService._decide(submission_from_input(dict(document)), candidate)
    except DomainError as error:
        report.undecidable[type(error).__name__ + ": " + str(error)] += 1
        report.eligibility.add(eligibility, None)
        report.risk_group.add(risk_group, None)
        return True
    new_eligibility, new_risk = decided["eligibility"]["status"], decided["risk"]["group"]
    report.eligibility.add(eligibility, new_eligibility)
    report.risk_group.add(risk_group, new_risk)
    return bool(new_eligibility != eligibility or new_risk != risk_group)


def tables(agreement: Agreement) -> Iterable[tuple[str, str, int]]:
    """The table's cells, recorded outcome first, in a stable order."""
    return ((recorded, candidate, count) for (recorded, candidate), count in sorted(agreement.table.items()))
