"""What the service layer tells whoever watches it (the API's Prometheus metrics), without knowing who.

The use cases call an observer they were given; the API layer implements it (app/api/metrics.py). What is
handed over is chosen so that nothing clinical or secret can leak into a metric: an outcome, a classifier
version and a sequence number, never a subject id, a value or a caller.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class RecordedDecision:
    """What may be counted of a decision just committed to the audit trail."""

    eligibility: str
    """``eligible``, ``ineligible`` or ``indeterminate``."""
    risk_group: str | None
    """``low``, ``high``, or None when the result could not be placed against the cutoff."""
    classifier: str
    """``name@version``."""
    seq: int
    """Its place in the chain."""


class AuditObserver(Protocol):
    """Told by the audit writer (app/service/chain_writer.py) about each transaction it runs."""

    def audit_transaction(self, *, committed: bool, seconds: float) -> None:
        """A writer transaction ended, committed or not, after ``seconds`` (from its start to its end)."""

    def audit_committed(self, recorded: Sequence[RecordedDecision], replayed: int) -> None:
        """A transaction committed: ``recorded`` were appended, in chain order; ``replayed`` requests were
        answered with the decision their Idempotency-Key made earlier (nothing new recorded for them)."""


class NoObserver:
    """Watches nothing: the default, for the command line and the tests that need no metrics."""

    def audit_transaction(self, *, committed: bool, seconds: float) -> None:
        pass

    def audit_committed(self, recorded: Sequence[RecordedDecision], replayed: int) -> None:
        pass
