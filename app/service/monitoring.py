"""What the service has been doing, for the people who watch it: the monitoring page's numbers.

Everything is read in one read-only transaction, within the caller's sites: decisions per day by outcome
and by site, the IL6 values decided, the indeterminate results and their reasons, the newest decisions
(pseudonymous subject ids only), the default classifier's active version and lifecycle, and, for callers
with every site only (the chain spans sites), the audit chain's head and last signed checkpoint.
"""

import asyncio
import json
import logging
import math
import os
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from app.domain.access import SiteAccess
from app.domain.audit import ChainHead
from app.domain.classifiers.lifecycle import Lifecycle
from app.domain.classifiers.rules import CUTOFF
from app.domain.eligibility import EligibilityStatus
from app.domain.il6 import PG_PER_ML
from app.service.audit import AuditService, VerificationRun
from app.service.checkpoints import InvalidCheckpoint, SignedCheckpoint
from app.service.classifiers import ClassifierCatalog
from app.store.monitoring_repository import DecisionCount, RecentDecision
from app.store.unit_of_work import UnitOfWork

logger = logging.getLogger(__name__)

OUTCOMES = tuple(status.value for status in EligibilityStatus)
"""The outcome series, in the order the page stacks and lists them."""
NO_SITE = "no site"
OTHER_SITES = "other sites"
MAX_SITE_SERIES = 7
"""Sites drawn one by one; the rest are drawn together as ``OTHER_SITES``."""
BINS_PER_DECADE = 4
DECADES = (-3, 10)
"""The IL6 axis never runs past 0.001 to 1e10 pg/mL (values beyond fall in the end bins)."""
EXACT, CENSORED = "exact value", "censored (at its reported limit)"
CHECKPOINT_TAIL_BYTES = 64 * 1024
"""The last signed checkpoint is looked for in this much of the checkpoint log's end."""


@dataclass(frozen=True)
class Series:
    label: str
    counts: tuple[int, ...]

    @property
    def total(self) -> int:
        return sum(self.counts)


@dataclass(frozen=True)
class Daily:
    """Counts per UTC day of the window, oldest day first, one series per outcome or site."""

    days: tuple[date, ...]
    series: tuple[Series, ...]

    @property
    def total(self) -> int:
        return sum(series.total for series in self.series)


@dataclass(frozen=True)
class Histogram:
    """IL6 values in pg/mL binned on a log10 axis from ``10**lo`` to ``10**hi``, ``BINS_PER_DECADE`` bins
    a decade; a series for exact values and one for censored results (at the limit they report)."""

    lo: int
    hi: int
    bins_per_decade: int
    series: tuple[Series, ...]
    zero: int
    """Exact zeros: decided, but not on a log axis."""
    sampled: int
    limited: bool
    """True when the window held more decisions than the sample: the histogram shows the newest."""

    @property
    def edges(self) -> tuple[float, ...]:
        """Bin edges in log10 pg/mL."""
        bins = (self.hi - self.lo) * self.bins_per_decade
        return tuple(self.lo + i / self.bins_per_decade for i in range(bins + 1))


@dataclass(frozen=True)
class Line:
    """A vertical line on the IL6 axis: the risk cutoff (``cutoff``) or an assay's limit (``lod``)."""

    kind: str
    label: str
    pg_per_ml: Decimal


@dataclass(frozen=True)
class Indeterminate:
    decisions: int
    indeterminate: int
    reasons: tuple[tuple[str, int], ...]
    """Reason codes and how many indeterminate decisions gave each, most frequent first."""
    sampled: int
    """How many indeterminate decisions the reasons were counted over (the newest)."""

    @property
    def share(self) -> float:
        return self.indeterminate / self.decisions if self.decisions else 0.0


@dataclass(frozen=True)
class ClassifierStatus:
    name: str
    active_version: str
    digest: str
    lifecycle: Lifecycle | None
    usage: tuple[tuple[str, int], ...]
    """``name@version`` and how many decisions of the window it made, most first."""


@dataclass(frozen=True)
class ChainStatus:
    database_time: datetime
    head: ChainHead
    checkpoint_log: Path | None
    checkpoint: SignedCheckpoint | None
    """The last checkpoint in the checkpoint log signed by this service's key."""
    checkpoint_unreadable: bool = False
    last_verification: VerificationRun | None = None
    """The last verification of the chain this server process ran, if any."""


@dataclass(frozen=True)
class Overview:
    generated_at: datetime
    since: datetime
    days: int
    sites: SiteAccess
    by_outcome: Daily
    by_site: Daily
    il6: Histogram
    lines: tuple[Line, ...]
    indeterminate: Indeterminate
    recent: tuple[RecentDecision, ...]
    classifier: ClassifierStatus
    chain: ChainStatus | None
    """None for a caller limited to some sites."""


def daily(
    counts: Iterable[DecisionCount], days: Sequence[date], key: Callable[[DecisionCount], str]
) -> dict[str, list[int]]:
    """Counts per ``key`` and day of ``days``; counts of other days are left out."""
    index = {day.isoformat(): i for i, day in enumerate(days)}
    table: dict[str, list[int]] = {}
    for count in counts:
        if count.day in index:
            table.setdefault(key(count), [0] * len(days))[index[count.day]] += count.count
    return table


def by_site(counts: Sequence[DecisionCount], days: Sequence[date]) -> tuple[Series, ...]:
    """A series per site, largest first; past ``MAX_SITE_SERIES`` the rest as one."""
    table = daily(counts, days, lambda c: NO_SITE if c.site_id is None else c.site_id)
    ranked = sorted(table.items(), key=lambda item: (-sum(item[1]), item[0]))
    series = [Series(label, tuple(column)) for label, column in ranked[:MAX_SITE_SERIES]]
    rest = ranked[MAX_SITE_SERIES:]
    if rest:
        merged = tuple(sum(column[i] for _, column in rest) for i in range(len(days)))
        series.append(Series(f"{OTHER_SITES} ({len(rest)})", merged))
    return tuple(series)


def il6_histogram(
    results: Iterable[tuple[Decimal, bool]], lines: Iterable[Decimal], *, limited: bool = False
) -> Histogram:
    """Bin (pg/mL, censored) results on a log10 axis wide enough for them and for ``lines``."""
    results = list(results)
    logs = [value.log10() for value, _ in results if value > 0] + [v.log10() for v in lines if v > 0]
    lo = max(DECADES[0], math.floor(min(logs, default=0)))
    hi = min(DECADES[1], max(math.ceil(max(logs, default=1)), lo + 1))
    bins = (hi - lo) * BINS_PER_DECADE
    exact, censored, zero = [0] * bins, [0] * bins, 0
    for value, is_censored in results:
        if value <= 0:
            zero += 1
            continue
        i = min(bins - 1, max(0, math.floor((value.log10() - lo) * BINS_PER_DECADE)))
        (censored if is_censored else exact)[i] += 1
    series = (Series(EXACT, tuple(exact)), Series(CENSORED, tuple(censored)))
    return Histogram(lo, hi, BINS_PER_DECADE, series, zero, len(results), limited)


def last_checkpoint(path: Path, public_key: Ed25519PublicKey) -> SignedCheckpoint | None:
    """The last checkpoint near the end of a checkpoint log that ``public_key`` verifies; OSError when
    the log exists but cannot be read."""
    try:
        with path.open("rb") as log:
            start = max(0, log.seek(0, os.SEEK_END) - CHECKPOINT_TAIL_BYTES)
            log.seek(start)
            lines = log.read().decode("utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return None
    for line in reversed(lines[1:] if start else lines):  # a tail's first line may be cut
        try:
            checkpoint = SignedCheckpoint.from_document(json.loads(line))
            checkpoint.verify(public_key)
        except (ValueError, InvalidCheckpoint):
            continue
        return checkpoint
    return None


def _decimal(text: str) -> Decimal | None:
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


class MonitoringService:
    def __init__(
        self,
        read_unit_of_work: Callable[[], UnitOfWork],
        catalog: ClassifierCatalog,
        audit: AuditService,
        checkpoint_log: Path | None,
        *,
        sample_limit: int = 5000,
        recent_limit: int = 20,
    ) -> None:
        """``read_unit_of_work``: read-only sessions (on SQLite they do not queue behind the writer).
        ``sample_limit``: most decisions whose IL6 values or reasons are read; ``recent_limit``: rows of
        the newest decisions listed."""
        self._read_unit_of_work = read_unit_of_work
        self._catalog = catalog
        self._audit = audit
        self._signer = audit.signer
        self._checkpoint_log = checkpoint_log
        self._sample_limit = sample_limit
        self._recent_limit = recent_limit

    def lines(self) -> tuple[Line, ...]:
        """The default classifier's active version's risk cutoff and its assays' limits of detection."""
        definition = self._catalog.current.resolve(None).definition
        lines = [
            Line("cutoff", f"risk cutoff {p.value} pg/mL", p.as_decimal())
            for p in definition.parameters
            if p.name == CUTOFF and p.unit == PG_PER_ML
        ]
        lines += [
            Line("lod", f"limit of detection of {a.name}: {a.lod_pg_per_ml} pg/mL", a.lod_pg_per_ml)
            for a in definition.assays
        ]
        return tuple(lines)

    async def overview(self, sites: SiteAccess, *, days: int = 30) -> Overview:
        """The last ``days`` UTC days (today included) of decisions within ``sites``."""
        if days < 1:
            raise ValueError("the window is at least one day")
        entry = self._catalog.current.resolve(None)
        lines = self.lines()
        async with self._read_unit_of_work() as uow:
            now = await uow.monitoring.now()
            first = now.date() - timedelta(days=days - 1)
            since = datetime.combine(first, time(), UTC)
            counts = await uow.monitoring.daily_counts(since, sites.sites)
            results = await uow.monitoring.il6_results(since, sites.sites, limit=self._sample_limit)
            reasons = await uow.monitoring.indeterminate_reason_codes(
                since, sites.sites, limit=self._sample_limit
            )
            recent = await uow.monitoring.recent(sites.sites, limit=self._recent_limit)
            head = await uow.assessments.head() if sites.every_site else None
        window = tuple(first + timedelta(days=i) for i in range(days))
        outcome_table = daily(counts, window, lambda c: c.eligibility_status)
        by_outcome = Daily(
            window, tuple(Series(o, tuple(outcome_table.get(o, [0] * days))) for o in OUTCOMES)
        )
        decided = [
            (value, result.comparator is not None)
            for result in results
            if (value := _decimal(result.pg_per_ml)) is not None
        ]
        usage: Counter[str] = Counter()
        for count in counts:
            usage[f"{count.classifier_name}@{count.classifier_version}"] += count.count
        indeterminate = sum(c.count for c in counts if c.eligibility_status == "indeterminate")
        return Overview(
            generated_at=now,
            since=since,
            days=days,
            sites=sites,
            by_outcome=by_outcome,
            by_site=Daily(window, by_site(counts, window)),
            il6=il6_histogram(
                decided, (line.pg_per_ml for line in lines), limited=len(results) >= self._sample_limit
            ),
            lines=lines,
            indeterminate=Indeterminate(
                decisions=by_outcome.total,
                indeterminate=indeterminate,
                reasons=tuple(Counter(code for codes in reasons for code in set(codes)).most_common()),
                sampled=len(reasons),
            ),
            recent=tuple(recent),
            classifier=ClassifierStatus(
                name=entry.definition.name,
                active_version=entry.definition.version,
                digest=entry.digest,
                lifecycle=await self._catalog.lifecycle(entry.definition.name),
                usage=tuple(sorted(usage.items(), key=lambda item: (-item[1], item[0]))),
            ),
            chain=None if head is None else await self._chain(*head),
        )

    async def _chain(self, database_time: datetime, head: ChainHead) -> ChainStatus:
        if self._checkpoint_log is None:
            return ChainStatus(
                database_time, head, None, None, last_verification=self._audit.last_verification
            )
        try:
            checkpoint = await asyncio.to_thread(
                last_checkpoint, self._checkpoint_log, self._signer.public_key
            )
        except OSError as error:
            logger.warning("checkpoint log not readable: %s", type(error).__name__)
            return ChainStatus(
                database_time,
                head,
                self._checkpoint_log,
                None,
                checkpoint_unreadable=True,
                last_verification=self._audit.last_verification,
            )
        return ChainStatus(
            database_time,
            head,
            self._checkpoint_log,
            checkpoint,
            last_verification=self._audit.last_verification,
        )
