"""What a use case hands the audit writer (app/service/chain_writer.py): a decision waiting to be recorded,
with the Idempotency-Key and the correction the writer checks in the chain's turn; and what it gets back
once the decision's batch has committed."""

import uuid
from dataclasses import dataclass

from app.domain.access import SiteAccess
from app.domain.errors import DomainError
from app.store.classifier_repositories import NewShadowDecision
from app.store.repositories import NewAssessment, StoredAssessment


@dataclass(frozen=True)
class Claim:
    """An Idempotency-Key, and the fingerprint of the request it comes with."""

    client_id: str
    key: str
    fingerprint: str

    @property
    def ref(self) -> tuple[str, str]:
        return self.client_id, self.key


@dataclass(frozen=True)
class Correction:
    """What a correction must match in the decision it supersedes."""

    supersedes: uuid.UUID
    subject_id: str
    site_id: str | None
    sites: SiteAccess


@dataclass(frozen=True)
class Pending:
    """A decision made and waiting to be recorded, or the error deciding raised.

    With an Idempotency-Key an error waits too: a retry gets the decision its key first made, even if the
    same request could no longer be decided today.
    """

    decision: NewAssessment | DomainError
    claim: Claim | None = None
    correction: Correction | None = None
    shadows: tuple[NewShadowDecision, ...] = ()
    """What candidate versions decided beside it: stored with it, never answered."""


@dataclass(frozen=True)
class Written:
    """What was recorded for a request, or found: ``replayed`` when its key had made it earlier."""

    stored: StoredAssessment
    replayed: bool
