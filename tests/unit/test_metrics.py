"""Refusals are counted by stage and reason code, in a registry of each application's own."""

from prometheus_client.parser import text_string_to_metric_families

from app.api.metrics import Metrics


def samples(metrics: Metrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """The rendered counters' samples, by name and labels (the ``_created`` timestamps left out)."""
    text, _ = metrics.render()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text.decode())
        for sample in family.samples
        if not sample.name.endswith("_created")
    }


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
