"""Metrics in a registry of each application's own: refusals by stage and reason code, requests by route
template, decisions by outcome, the audit writer, the database pool and the chain head."""

from collections.abc import Iterator
from typing import cast

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.pool import QueuePool, StaticPool

from app.api.metrics import Metrics
from app.service.observability import RecordedDecision

REFUSALS = ("il6_auth_failures", "il6_rate_limited")

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(metrics: Metrics, families: tuple[str, ...] = REFUSALS) -> Samples:
    """The rendered samples of ``families``, by name and labels (the ``_created`` timestamps left out)."""
    text, _ = metrics.render()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text.decode())
        if family.name in families
        for sample in family.samples
        if not sample.name.endswith("_created")
    }


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    """One sample's value, or None when it is not rendered."""
    text, _ = metrics.render()
    for family in text_string_to_metric_families(text.decode()):
        for found in family.samples:
            if found.name == name and found.labels == labels:
                return float(found.value)
    return None


def auth_failures(stage: str, reason: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return "il6_auth_failures_total", frozenset({("stage", stage), ("reason", reason)})


RATE_LIMITED = ("il6_rate_limited_total", frozenset[tuple[str, str]]())


def test_refusals_are_counted_and_rendered() -> None:
    metrics = Metrics()
    metrics.authentication_failed("expired")
    metrics.authentication_failed("expired")
    metrics.authentication_failed("unknown-key")
    metrics.authorisation_failed("scope")
    metrics.throttled()
    metrics.throttled()
    metrics.throttled()

    assert samples(metrics) == {
        auth_failures("authentication", "expired"): 2,
        auth_failures("authentication", "unknown-key"): 1,
        auth_failures("authorisation", "scope"): 1,
        RATE_LIMITED: 3,
    }


def test_render_gives_the_prometheus_text_format() -> None:
    metrics = Metrics()
    metrics.throttled()

    text, media_type = metrics.render()

    assert media_type.startswith("text/plain; version=")
    assert b"# TYPE il6_rate_limited_total counter" in text
    assert b"il6_rate_limited_total 1.0" in text


def test_the_rate_limit_counter_has_no_labels() -> None:
    metrics = Metrics()
    metrics.throttled()

    assert [key for key in samples(metrics) if key[0] == "il6_rate_limited_total"] == [RATE_LIMITED]


def test_a_reason_that_is_not_a_code_is_counted_as_other() -> None:
    metrics = Metrics()
    metrics.authentication_failed("Bearer eyJhbGciOiJIUzI1NiJ9.secret")
    metrics.authorisation_failed("PIT-0042")
    metrics.authorisation_failed("x" * 41)

    text, _ = metrics.render()

    assert samples(metrics) == {
        auth_failures("authentication", "other"): 1,
        auth_failures("authorisation", "other"): 2,
        RATE_LIMITED: 0,
    }
    assert b"eyJ" not in text
    assert b"PIT" not in text


def test_two_instances_are_independent() -> None:
    first, second = Metrics(), Metrics()
    first.authentication_failed("missing")
    first.throttled()
    second.authorisation_failed("site")

    assert samples(first) == {auth_failures("authentication", "missing"): 1, RATE_LIMITED: 1}
    assert samples(second) == {auth_failures("authorisation", "site"): 1, RATE_LIMITED: 0}


def decision(seq: int, eligibility: str = "eligible", risk_group: str | None = "low") -> RecordedDecision:
    return RecordedDecision(eligibility, risk_group, "il6-enrichment@1.0.0", seq)


def test_committed_decisions_are_counted_by_outcome_and_replays_apart() -> None:
    metrics = Metrics()
    metrics.audit_committed([decision(7), decision(8, "ineligible", "high")], replayed=0)
    metrics.audit_committed([decision(9, "indeterminate", None)], replayed=2)
    metrics.audit_committed([], replayed=1)

    def recorded(eligibility: str, risk_group: str) -> float | None:
        return sample(
            metrics,
            "il6_decisions_recorded_total",
            eligibility=eligibility,
            risk_group=risk_group,
            classifier="il6-enrichment@1.0.0",
        )

    assert recorded("eligible", "low") == 1
    assert recorded("ineligible", "high") == 1
    assert recorded("indeterminate", "none") == 1
    assert sample(metrics, "il6_decisions_replayed_total") == 3
    assert sample(metrics, "il6_audit_records_appended_total") == 3
    assert sample(metrics, "il6_audit_batch_records_count") == 3
    assert sample(metrics, "il6_audit_batch_records_sum") == 3
    assert sample(metrics, "il6_audit_batch_records_bucket", le="0.0") == 1  # the commit of replays only
    assert sample(metrics, "il6_audit_chain_head_seq") == 9


def test_a_commit_of_many_decisions_counts_each_of_them() -> None:
    metrics = Metrics()
    committed = [
        decision(seq, "ineligible", "high") if seq % 31 == 0 else decision(seq) for seq in range(1, 311)
    ]

    metrics.audit_committed(committed, replayed=0)

    def recorded(eligibility: str, risk_group: str) -> float | None:
        return sample(
            metrics,
            "il6_decisions_recorded_total",
            eligibility=eligibility,
            risk_group=risk_group,
            classifier="il6-enrichment@1.0.0",
        )

    assert recorded("eligible", "low") == 300
    assert recorded("ineligible", "high") == 10
    assert sample(metrics, "il6_audit_records_appended_total") == 310
    assert sample(metrics, "il6_audit_chain_head_seq") == 310


def test_the_chain_head_is_absent_until_this_process_appends_and_never_goes_back() -> None:
    metrics = Metrics()
    assert sample(metrics, "il6_audit_chain_head_seq") is None

    metrics.audit_committed([decision(41), decision(42)], replayed=0)
    metrics.audit_committed([], replayed=1)

    assert sample(metrics, "il6_audit_chain_head_seq") == 42


def test_a_classifier_that_is_not_a_version_reference_is_counted_as_other() -> None:
    metrics = Metrics()
    metrics.audit_committed([RecordedDecision("eligible", "low", "T-CANARY-1 and more", 1)], replayed=0)

    text, _ = metrics.render()

    assert b"CANARY" not in text
    assert sample(
        metrics, "il6_decisions_recorded_total", eligibility="eligible", risk_group="low", classifier="other"
    )


def test_audit_transactions_are_timed_by_outcome() -> None:
    metrics = Metrics()
    metrics.audit_transaction(committed=True, seconds=0.004)
    metrics.audit_transaction(committed=True, seconds=0.02)
    metrics.audit_transaction(committed=False, seconds=10.0)

    name = "il6_audit_transaction_duration_seconds"
    assert sample(metrics, f"{name}_count", outcome="committed") == 2
    assert sample(metrics, f"{name}_sum", outcome="committed") == pytest.approx(0.024)
    assert sample(metrics, f"{name}_bucket", outcome="committed", le="0.005") == 1
    assert sample(metrics, f"{name}_count", outcome="failed") == 1


def test_requests_are_timed_and_counted_by_method_route_and_status() -> None:
    metrics = Metrics()
    route = "/v1/assessments/{assessment_id}"
    metrics.request_finished("GET", route, 200, 0.003)
    metrics.request_finished("GET", route, 404, 0.002)
    metrics.request_finished("BREW", "<unmatched>", 405, 0.001)

    name = "il6_http_request_duration_seconds"
    assert sample(metrics, f"{name}_count", method="GET", route=route) == 2
    assert sample(metrics, f"{name}_bucket", method="GET", route=route, le="0.0025") == 1
    assert sample(metrics, "il6_http_responses_total", method="GET", route=route, status="200") == 1
    assert sample(metrics, "il6_http_responses_total", method="GET", route=route, status="404") == 1
    assert sample(metrics, "il6_http_responses_total", method="other", route="<unmatched>", status="405") == 1


class _Connection:
    """As much of a DBAPI connection as a pool handles."""

    def rollback(self) -> None:
        pass

    def close(self) -> None:
        pass


def connect() -> DBAPIConnection:
    return cast(DBAPIConnection, _Connection())


@pytest.fixture
def pool() -> Iterator[QueuePool]:
    pool = QueuePool(connect, pool_size=2, max_overflow=1)
    yield pool
    pool.dispose()


def test_the_pool_is_read_at_each_scrape(pool: QueuePool) -> None:
    metrics = Metrics(pool=lambda: pool)

    assert sample(metrics, "il6_db_pool_size") == 2
    assert sample(metrics, "il6_db_pool_checked_out") == 0
    assert sample(metrics, "il6_db_pool_overflow") == 0  # not the pool's own -2 (slots not yet opened)

    held = [pool.connect() for _ in range(3)]
    assert sample(metrics, "il6_db_pool_checked_out") == 3
    assert sample(metrics, "il6_db_pool_overflow") == 1
    held[0].close()
    assert sample(metrics, "il6_db_pool_checked_out") == 2
    assert sample(metrics, "il6_db_pool_checked_in") == 1
    for connection in held[1:]:
        connection.close()


def test_a_pool_that_keeps_no_count_and_no_pool_give_no_pool_samples() -> None:
    static = StaticPool(connect)
    for metrics in (Metrics(), Metrics(pool=lambda: static)):
        text, _ = metrics.render()
        assert b"il6_db_pool" not in text
