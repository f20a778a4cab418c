"""Prometheus metrics: decisions recorded, requests by route, the audit writer, the database pool, and
refused requests (failed authentication and authorisation, throttling).

Labels never carry a subject id, an IL6 value, a caller's name or key, or any other secret: only values the
service itself chose from a short list (a stage and reason code, an outcome, a route template, a method, a
status code, a classifier version). A reason that does not look like a code is counted as ``other``, so a
message can never become a label; a method outside HTTP's usual ones likewise. Each ``Metrics`` owns its
registry, so several applications built in one process (as in the tests) never clash over the
process-wide default registry.
"""

import re
from collections import Counter as Tally
from collections.abc import Callable, Iterator, Sequence

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.pool import Pool, QueuePool

from app.service.observability import RecordedDecision

_REASON_CODE = re.compile(r"[a-z][a-z0-9_-]{0,39}")
_CLASSIFIER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}@[A-Za-z0-9][A-Za-z0-9._+-]{0,31}")
OTHER_REASON = "other"
OTHER = "other"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

REQUEST_SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
"""Seconds; a decision's transaction may take up to IL6_DB_TRANSACTION_TIMEOUT_S (10 by default)."""
BATCH_RECORDS_BUCKETS = (0, 1, 2, 5, 10, 20, 50, 100, 200, 500)
"""Records per commit; the writer appends at most 500 at a time (app/service/chain_writer.py)."""


def _reason_label(reason: str) -> str:
    return reason if _REASON_CODE.fullmatch(reason) else OTHER_REASON


def _classifier_label(classifier: str) -> str:
    return classifier if _CLASSIFIER.fullmatch(classifier) else OTHER


class _ScrapeTimeCollector(Collector):
    """What is read when scraped rather than counted as it happens: the database pool and the chain head."""

    def __init__(self, metrics: "Metrics") -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        head = self._metrics.head_seq
        if head is not None:  # unknown until this process appends: no sample rather than a false 0
            yield GaugeMetricFamily(
                "il6_audit_chain_head_seq",
                "Sequence number of the newest audit record this process appended (other processes' "
                "appends are not seen here).",
                value=head,
            )
        pool = self._metrics.pool()
        if isinstance(pool, QueuePool):  # an in-memory SQLite's StaticPool has nothing to tell
            for name, documentation, value in (
                ("il6_db_pool_size", "Connections the database pool keeps.", pool.size()),
                ("il6_db_pool_checked_out", "Pool connections in use now.", pool.checkedout()),
                ("il6_db_pool_checked_in", "Open pool connections idle now.", pool.checkedin()),
                (
                    "il6_db_pool_overflow",
                    "Connections open beyond the pool's size now.",
                    max(pool.overflow(), 0),
                ),
            ):
                yield GaugeMetricFamily(name, documentation, value=value)


class Metrics:
    """One application's metrics and the registry ``/metrics`` renders.

    It is the audit writer's observer (app/service/observability.py) and the request log's sink
    (app/api/request_log.py).
    """

    def __init__(self, pool: Callable[[], Pool | None] = lambda: None) -> None:
        """``pool``: the database engine's current pool, read at each scrape (the engine replaces it when
        it finds a connection dead)."""
        self.registry = CollectorRegistry()
        self.pool = pool
        self.head_seq: int | None = None
        self.auth_failures = Counter(
            "il6_auth_failures",
            "Requests refused for their credentials (authentication) or their permissions (authorisation).",
            labelnames=("stage", "reason"),
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "il6_rate_limited",
            "Requests refused because their caller had used up its request allowance.",
            registry=self.registry,
        )
        self.decisions = Counter(
            "il6_decisions_recorded",
            "Decisions committed to the audit trail by this process, by outcome and classifier version "
            "(an idempotent replay is not one: see il6_decisions_replayed_total).",
            labelnames=("eligibility", "risk_group", "classifier"),
            registry=self.registry,
        )
        self.replays = Counter(
            "il6_decisions_replayed",
            "Requests answered with the decision their Idempotency-Key made earlier (nothing recorded).",
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "il6_http_request_duration_seconds",
            "Time from a request's arrival to its answer, by method and route template.",
            labelnames=("method", "route"),
            buckets=REQUEST_SECONDS_BUCKETS,
            registry=self.registry,
        )
        self.responses = Counter(
            "il6_http_responses",
            "Answers by method, route template and status code.",
            labelnames=("method", "route", "status"),
            registry=self.registry,
        )
        self.audit_appended = Counter(
            "il6_audit_records_appended",
            "Records this process appended to the audit trail.",
            registry=self.registry,
        )
        self.audit_transaction_seconds = Histogram(
            "il6_audit_transaction_duration_seconds",
            "The audit writer's transactions, from begin to commit or failure, by outcome.",
            labelnames=("outcome",),
            buckets=REQUEST_SECONDS_BUCKETS,
            registry=self.registry,
        )
        self.audit_batch_records = Histogram(
            "il6_audit_batch_records",
            "Records appended per committed audit transaction (group commit).",
            buckets=BATCH_RECORDS_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_ScrapeTimeCollector(self))
        self._answers: dict[tuple[str, str, int], tuple[Histogram, Counter]] = {}
        """Each (method, route, status)'s labelled series, looked up once rather than on every answer."""

    def authentication_failed(self, reason: str) -> None:
        """Count a request whose credentials were missing or not accepted; ``reason`` is a short code."""
        self.auth_failures.labels(stage="authentication", reason=_reason_label(reason)).inc()

    def authorisation_failed(self, reason: str) -> None:
        """Count an authenticated request refused an operation; ``reason`` is a short code."""
        self.auth_failures.labels(stage="authorisation", reason=_reason_label(reason)).inc()

    def throttled(self) -> None:
        """Count a request refused by the rate limit."""
        self.rate_limited.inc()

    def request_finished(self, method: str, route: str, status: int, seconds: float) -> None:
        """Time and count an answered request; ``route`` is its template (never the path)."""
        method = method if method in METHODS else OTHER
        series = self._answers.get((method, route, status))
        if series is None:  # as many as the labels have values: methods, route templates, statuses
            series = (
                self.request_seconds.labels(method=method, route=route),
                self.responses.labels(method=method, route=route, status=str(status)),
            )
            self._answers[method, route, status] = series
        duration, answers = series
        duration.observe(seconds)
        answers.inc()

    def audit_transaction(self, *, committed: bool, seconds: float) -> None:
        outcome = "committed" if committed else "failed"
        self.audit_transaction_seconds.labels(outcome=outcome).observe(seconds)

    def audit_committed(self, recorded: Sequence[RecordedDecision], replayed: int) -> None:
        # Counted per distinct outcome: a batch of hundreds is a handful of label look-ups, not hundreds.
        outcomes = Tally((d.eligibility, d.risk_group or "none", d.classifier) for d in recorded)
        for (eligibility, risk_group, classifier), count in outcomes.items():
            self.decisions.labels(
                eligibility=eligibility, risk_group=risk_group, classifier=_classifier_label(classifier)
            ).inc(count)
        self.audit_appended.inc(len(recorded))
        self.audit_batch_records.observe(len(recorded))
        self.replays.inc(replayed)
        if recorded:
            self.head_seq = max(self.head_seq or 0, recorded[-1].seq)

    def render(self) -> tuple[bytes, str]:
        """The registry in the Prometheus text format, and its media type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
