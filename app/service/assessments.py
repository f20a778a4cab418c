"""Deciding on an IL6 result, recording it, and reading or replaying recorded decisions."""

import asyncio
import base64
import binascii
import hashlib
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import rfc8785

from app.domain.access import SiteAccess
from app.domain.classifiers.registry import ClassifierRegistry, RegisteredVersion
from app.domain.errors import InvalidInput
from app.domain.il6 import measure
from app.domain.specimen import Specimen
from app.service.documents import (
    Submission,
    decision_document,
    input_document,
    submission_from_input,
)
from app.service.errors import Forbidden
from app.store.models import Assessment
from app.store.repositories import NewAssessment, StoredAssessment
from app.store.unit_of_work import StoreUnavailable, UnitOfWork

MAX_SEQ = 2**63 - 1
"""The largest sequence number a BIGINT holds."""


class InvalidCursor(Exception):
    """A pagination cursor this service did not issue."""


class ReplayUnavailable(Exception):
    """The version that made a decision is not servable as recorded, so it cannot be replayed."""


class RequestInProgress(Exception):
    """A request with the same Idempotency-Key is still being decided."""


class IdempotencyKeyReused(Exception):
    """The Idempotency-Key was first used with a different request."""


class AlreadySuperseded(Exception):
    """The decision a correction names has been corrected already; correct the newest one."""

    def __init__(self, successor: uuid.UUID) -> None:
        super().__init__("this decision has already been superseded")
        self.successor = successor


@dataclass(frozen=True)
class Caller:
    """Who asked: the client the audit trail names, the request's id, and the sites it may act for."""

    client_id: str
    request_id: str | None
    sites: SiteAccess


@dataclass(frozen=True)
class RecordedAssessment:
    """A decision as the audit store holds it, with its link in the chain (the caller's receipt)."""

    id: uuid.UUID
    seq: int
    prev_hash: str
    hash: str
    client_id: str
    request_id: str | None
    idempotency_key: str | None
    subject_id: str
    site_id: str | None
    recorded_at: datetime
    input: dict[str, Any]
    decision: dict[str, Any]
    supersedes: uuid.UUID | None
    correction_reason: str | None
    superseded_by: uuid.UUID | None

    @classmethod
    def from_row(cls, row: Assessment, superseded_by: uuid.UUID | None = None) -> "RecordedAssessment":
        return cls(
            id=row.id,
            seq=row.seq,
            prev_hash=row.prev_hash,
            hash=row.hash,
            client_id=row.client_id,
            request_id=row.request_id,
            idempotency_key=row.idempotency_key,
            subject_id=row.subject_id,
            site_id=row.site_id,
            recorded_at=row.recorded_at,
            input=row.input,
            decision=row.decision,
            supersedes=row.supersedes,
            correction_reason=row.correction_reason,
            superseded_by=superseded_by,
        )

    @classmethod
    def from_stored(cls, stored: StoredAssessment) -> "RecordedAssessment":
        return cls.from_row(stored.row, stored.superseded_by)


@dataclass(frozen=True)
class Outcome:
    """A decision, and whether it was made earlier by a request with the same Idempotency-Key."""

    recorded: RecordedAssessment
    replayed: bool


@dataclass(frozen=True)
class RawRequest:
    body: bytes
    media_type: str


@dataclass(frozen=True)
class Page:
    items: Sequence[RecordedAssessment]
    next_cursor: str | None


@dataclass(frozen=True)
class Change:
    field: str
    recorded: Any
    replayed: Any


@dataclass(frozen=True)
class Replay:
    original: RecordedAssessment
    replayed: dict[str, Any]
    changes: tuple[Change, ...]

    @property
    def matches(self) -> bool:
        return not self.changes


def _changes(recorded: Any, replayed: Any, path: str = "") -> list[Change]:
    """Every leaf that differs between two decision documents, by dotted path; the classifier aside."""
    if isinstance(recorded, dict) and isinstance(replayed, dict):
        changes: list[Change] = []
        for key in sorted(recorded.keys() | replayed.keys()):
            if not path and key == "classifier":
                continue
            changes += _changes(recorded.get(key), replayed.get(key), f"{path}.{key}" if path else key)
        return changes
    return [] if recorded == replayed else [Change(path, recorded, replayed)]


def fingerprint(submission: Submission) -> str:
    """What an Idempotency-Key is bound to: the request's meaning (its normalised input), not its bytes."""
    document = {
        "input": input_document(submission),
        "supersedes": None if submission.supersedes is None else str(submission.supersedes),
        "correction_reason": submission.correction_reason,
    }
    return hashlib.sha256(rfc8785.dumps(document)).hexdigest()


def _encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"seq:{seq}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (ValueError, binascii.Error):
        raise InvalidCursor("not a cursor this service issued") from None
    prefix, _, seq = text.partition(":")
    if prefix != "seq" or not (seq.isascii() and seq.isdigit()) or not 0 < int(seq) <= MAX_SEQ:
        raise InvalidCursor("not a cursor this service issued")
    return int(seq)


class AssessmentService:
    def __init__(
        self,
        registry: ClassifierRegistry,
        unit_of_work: Callable[[], UnitOfWork],
        idempotency_ttl: timedelta = timedelta(hours=24),
        transaction_timeout_s: float = 10.0,
    ) -> None:
        self._registry = registry
        self._unit_of_work = unit_of_work
        self._idempotency_ttl = idempotency_ttl
        self._transaction_timeout_s = transaction_timeout_s

    def _decide(self, submission: Submission, version: RegisteredVersion) -> dict[str, Any]:
        assay = version.definition.assay(submission.assay)
        measurement = measure(submission.value, submission.unit, submission.comparator, assay)
        specimen = Specimen(submission.specimen_type, submission.collected_at)
        return decision_document(version.classifier.decide(measurement, specimen), version)

    async def decide(
        self,
        submission: Submission,
        raw: RawRequest,
        caller: Caller,
        idempotency_key: str | None = None,
    ) -> Outcome:
        """Decide on one result and record it; the decision exists only once the record is committed.

        With an Idempotency-Key, the key's claim, the decision's audit record and the key's binding to it
        commit together: a retry gets the decision the key first made, and writes nothing.

        The whole transaction has a deadline: a database that stops answering mid-way (a silent network
        path) fails this request with StoreUnavailable, and its connection is discarded, rather than
        holding the request, a pool connection and possibly the chain's turn for as long as TCP waits.
        """
        if not caller.sites.permits(submission.site_id):
            raise Forbidden(
                "site",
                "This caller may decide only for its own sites: site_id must name one of them.",
            )
        try:
            async with asyncio.timeout(self._transaction_timeout_s):
                return await self._record(submission, raw, caller, idempotency_key)
        except TimeoutError:
            raise StoreUnavailable("the audit store did not answer in time") from None

    async def _record(
        self, submission: Submission, raw: RawRequest, caller: Caller, idempotency_key: str | None
    ) -> Outcome:
        decision_id = uuid.uuid4()
        async with self._unit_of_work() as uow:
            if idempotency_key is not None:
                # First, so that a retry gets the first decision even if the rules have moved on since.
                earlier = await self._claim(uow, caller.client_id, idempotency_key, submission, decision_id)
                if earlier is not None:
                    return Outcome(earlier, replayed=True)
            new = self._new_assessment(decision_id, submission, raw, caller, idempotency_key)
            if submission.supersedes is not None:
                await self._check_correction(uow, submission, submission.supersedes, caller.sites)
            row = await uow.assessments.append(new)
            await uow.commit()
        return Outcome(RecordedAssessment.from_row(row), replayed=False)

    def _new_assessment(
        self,
        decision_id: uuid.UUID,
        submission: Submission,
        raw: RawRequest,
        caller: Caller,
        idempotency_key: str | None,
    ) -> NewAssessment:
        version = self._registry.resolve(submission.classifier)
        decision = self._decide(submission, version)
        return NewAssessment(
            id=decision_id,
            client_id=caller.client_id,
            request_id=caller.request_id,
            idempotency_key=idempotency_key,
            subject_id=submission.subject_id,
            site_id=submission.site_id,
            classifier_name=version.definition.name,
            classifier_version=version.definition.version,
            classifier_digest=version.digest,
            eligibility_status=decision["eligibility"]["status"],
            risk_group=decision["risk"]["group"],
            request_media_type=raw.media_type,
            request_sha256=hashlib.sha256(raw.body).hexdigest(),
            request_body=raw.body.decode("utf-8"),
            input=input_document(submission),
            decision=decision,
            supersedes=submission.supersedes,
            correction_reason=submission.correction_reason,
        )

    async def _claim(
        self, uow: UnitOfWork, client_id: str, key: str, submission: Submission, decision_id: uuid.UUID
    ) -> RecordedAssessment | None:
        """Bind the key to the decision about to be made, or return the decision it already made."""
        if not await uow.idempotency.try_lock(client_id, key):
            raise RequestInProgress("a request with this Idempotency-Key is still being decided")
        bound_to = fingerprint(submission)
        claimed = await uow.idempotency.get(client_id, key)
        if claimed is not None and claimed.created_at + self._idempotency_ttl <= datetime.now(UTC):
            await uow.idempotency.forget(client_id, key)
            claimed = None
        if claimed is None:
            await uow.idempotency.add(client_id, key, bound_to, decision_id)
            return None
        if claimed.fingerprint != bound_to:
            raise IdempotencyKeyReused("this Idempotency-Key was used with a different request")
        earlier = await uow.assessments.get(claimed.assessment_id)
        # The key table is not chained: answer only with a record that itself names this client and key
        # (the foreign key makes a missing one impossible; never answer without the record).
        if earlier is None or (earlier.row.client_id, earlier.row.idempotency_key) != (client_id, key):
            raise StoreUnavailable("the decision bound to this Idempotency-Key could not be confirmed")
        return RecordedAssessment.from_stored(earlier)

    @staticmethod
    async def _check_correction(
        uow: UnitOfWork, submission: Submission, supersedes: uuid.UUID, sites: SiteAccess
    ) -> None:
        """The decision a correction supersedes exists (for this caller's sites), is the subject's, and
        stands; checked in the chain's turn, so that two corrections of one decision cannot both pass."""
        await uow.assessments.lock_chain()
        target = await uow.assessments.get(supersedes)
        if target is None or not sites.permits(target.row.site_id):
            raise InvalidInput("/supersedes", "No assessment with this id.")
        if target.row.subject_id != submission.subject_id:
            raise InvalidInput("/supersedes", "A correction must be for the same subject.")
        if target.row.site_id != submission.site_id:
            # Else the decision would leave its site's view, its successor unreadable there.
            raise InvalidInput(
                "/site_id", "A correction must be for the same site as the decision it corrects."
            )
        if target.superseded_by is not None:
            raise AlreadySuperseded(target.superseded_by)

    async def get(self, assessment_id: uuid.UUID, sites: SiteAccess) -> RecordedAssessment | None:
        """The decision, or None when there is none or it is of a site outside ``sites`` (the same answer,
        so that a caller cannot learn what another site holds)."""
        async with self._unit_of_work() as uow:
            stored = await uow.assessments.get(assessment_id)
            if stored is None or not sites.permits(stored.row.site_id):
                return None
            return RecordedAssessment.from_stored(stored)

    async def list_for_subject(
        self, subject_id: str, sites: SiteAccess, *, limit: int, cursor: str | None
    ) -> Page:
        """A subject's decisions within ``sites``, newest first; ``next_cursor`` continues where this page
        ends. A subject of another site lists as empty, as an unknown subject does."""
        before = None if cursor is None else _decode_cursor(cursor)
        async with self._unit_of_work() as uow:
            rows = await uow.assessments.list_for_subject(
                subject_id, limit=limit + 1, before_seq=before, sites=sites.sites
            )
            items = [RecordedAssessment.from_stored(row) for row in rows[:limit]]
        next_cursor = _encode_cursor(items[-1].seq) if len(rows) > limit else None
        return Page(items, next_cursor)

    async def replay(
        self, assessment_id: uuid.UUID, sites: SiteAccess, classifier: str | None = None
    ) -> Replay | None:
        """Decide a recorded input again and compare; records nothing.

        Without ``classifier``: under the version that decided, verified by its recorded digest, which
        must reproduce the decision exactly. With one: under that version, to see what it would change.
        """
        original = await self.get(assessment_id, sites)
        if original is None:
            return None
        if classifier is None:
            recorded = original.decision["classifier"]
            version = self._registry.get(recorded["name"], recorded["version"])
            if version is None or version.digest != recorded["digest"]:
                raise ReplayUnavailable(
                    "the classifier version that made this decision is not loaded with its recorded digest"
                )
        else:
            version = self._registry.resolve(classifier)
        replayed = self._decide(submission_from_input(original.input), version)
        changes = _changes(original.decision, replayed)
        if classifier is None and replayed["classifier"] != original.decision["classifier"]:
            changes.append(Change("classifier", original.decision["classifier"], replayed["classifier"]))
        return Replay(original, replayed, tuple(changes))
