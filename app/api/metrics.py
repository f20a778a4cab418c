"""Prometheus metrics of refused requests: failed authentication and authorisation, and throttling.

Labels never carry a subject id, an IL6 value, a caller's name or key, or any other secret: only the stage
and a short reason code the service itself chose (``missing``, ``expired``, ``scope`` ...). A reason that
does not look like such a code is counted as ``other``, so a message can never become a label. Each
``Metrics`` owns its registry, so several applications built in one process (as in the tests) never clash
over the process-wide default registry.
"""

import re

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest

_REASON_CODE = re.compile(r"[a-z][a-z0-9_-]{0,39}")
OTHER_REASON = "other"


def _reason_label(reason: str) -> str:
    return reason if _REASON_CODE.fullmatch(reason) else OTHER_REASON


class Metrics:
    """One application's counters and the registry ``/metrics`` renders."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
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

    def authentication_failed(self, reason: str) -> None:
        """Count a request whose credentials were missing or not accepted; ``reason`` is a short code."""
        self.auth_failures.labels(stage="authentication", reason=_reason_label(reason)).inc()

    def authorisation_failed(self, reason: str) -> None:
        """Count an authenticated request refused an operation; ``reason`` is a short code."""
        self.auth_failures.labels(stage="authorisation", reason=_reason_label(reason)).inc()

    def throttled(self) -> None:
        """Count a request refused by the rate limit."""
        self.rate_limited.inc()

    def render(self) -> tuple[bytes, str]:
        """The registry in the Prometheus text format, and its media type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
