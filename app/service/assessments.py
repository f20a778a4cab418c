"""Deciding on an IL6 result, recording it, and reading or replaying recorded decisions."""

import asyncio
import hashlib
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from app.domain import canonical_json
from app.domain.access import SiteAccess
from app.domain.classifiers.registry import ClassifierRegistry, RegisteredVersion
from app.domain.errors import DomainError
from app.domain.il6 import measure
from app.domain.specimen import Specimen
from app.service.chain_writer import ChainWriter
from app.service.classifiers import ClassifierCatalog
from app.service.documents import (
    Submission,
    decision_document,
    input_document,
    submission_from_input,
)
from app.service.errors import Forbidden
from app.service.pending_decisions import Claim, Correction, Pending, Written
from app.service.recorded_assessments import (
    Change,
    Page,
    RecordedAssessment,
    Replay,
    decision_changes,
    decode_cursor,
    encode_cursor,
)
from app.store.classifier_repositories import NewShadowDecision
from app.store.repositories import NewAssessment
from app.store.unit_of_work import UnitOfWork

YIELD_EVERY = 50
"""How many requests ``prepare_many`` decides between two turns of the event loop."""


class ReplayUnavailable(Exception):
    """The version that made a decision is not servable as recorded, so it cannot be replayed."""


@dataclass(frozen=True)
class Caller:
    """Who asked: the client the audit trail names, the request's id, and the sites it may act for."""

    client_id: str
    request_id: str | None
    sites: SiteAccess


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
class DecisionRequest:
    """One request of many decided together (``AssessmentService.prepare_many``): what ``decide`` takes."""

    submission: Submission
    raw: RawRequest
    idempotency_key: str | None = None


@dataclass(frozen=True)
class Prepared:
    """Requests decided by ``AssessmentService.prepare_many`` and not recorded yet: for each, in order, the
    decision waiting to be recorded, or why ``decide`` would refuse it."""

    decided: Sequence[Pending | Exception]


def fingerprint(submission: Submission) -> str:
    """What an Idempotency-Key is bound to: the request's meaning (its normalised input), not its bytes."""
    document = {
        "input": input_document(submission),
        "supersedes": None if submission.supersedes is None else str(submission.supersedes),
        "correction_reason": submission.correction_reason,
    }
    return hashlib.sha256(canonical_json.dumps(document)).hexdigest()


class AssessmentService:
    def __init__(
        self, catalog: ClassifierCatalog, unit_of_work: Callable[[], UnitOfWork], writer: ChainWriter
    ) -> None:
        """``catalog`` serves the classifier versions; ``writer`` records decisions; ``unit_of_work`` reads
        them back."""
        self._catalog = catalog
        self._unit_of_work = unit_of_work
        self._writer = writer

    @staticmethod
    def _decide(submission: Submission, version: RegisteredVersion) -> dict[str, Any]:
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
        commit together: a retry gets the decision the key first made, and writes nothing. The writer
        (app/service/chain_writer.py) commits it with whatever other decisions are waiting, under a
        deadline: a database that stops answering fails the request with StoreUnavailable.
        """
        _permit(submission, caller)
        registry = await self._catalog.for_decisions()
        pending = self._pending(registry, submission, raw, caller, idempotency_key)
        return _outcome(await self._writer.write(pending))

    async def prepare_many(self, requests: Sequence[DecisionRequest], caller: Caller) -> Prepared:
        """Decide on each result, as ``decide`` would, without recording anything yet: ``record_many``
        records them. A request ``decide`` would refuse before recording (another site's, one the
        classifier cannot decide) keeps its refusal, to be answered in its place.

        Deciding yields to the event loop every ``YIELD_EVERY`` requests, so that the writer's transactions
        (an earlier part of a batch being recorded) go on meanwhile.
        """
        refused: dict[int, Exception] = {}
        for index, request in enumerate(requests):
            try:
                _permit(request.submission, caller)
            except Forbidden as error:
                refused[index] = error
        if len(refused) == len(requests):
            return Prepared([refused[index] for index in range(len(requests))])
        try:
            registry = await self._catalog.for_decisions()  # once for all, as each would have read it
        except Exception as error:  # what each of them would have raised
            return Prepared([refused.get(index, error) for index in range(len(requests))])
        decided: list[Pending | Exception] = []
        for index, request in enumerate(requests):
            if index in refused:
                decided.append(refused[index])
                continue
            try:
                decided.append(
                    self._pending(registry, request.submission, request.raw, caller, request.idempotency_key)
                )
            except Exception as error:  # that request's own failure
                decided.append(error)
            if not (index + 1) % YIELD_EVERY:
                await asyncio.sleep(0)
        return Prepared(decided)

    async def record_many(self, prepared: Prepared) -> list[Outcome | Exception]:
        """Record what ``prepare_many`` decided, in order: each entry is what ``decide`` would return for
        its request, or the exception it would raise. The decisions go to the writer together, so that they
        share its transactions; one refused (or failing) takes nothing from the others."""
        queued = [entry for entry in prepared.decided if isinstance(entry, Pending)]
        written = iter(await self._writer.write_many(queued))
        answers: list[Outcome | Exception] = []
        for entry in prepared.decided:
            if not isinstance(entry, Pending):
                answers.append(entry)
                continue
            answer = next(written)
            answers.append(answer if isinstance(answer, Exception) else _outcome(answer))
        return answers

    def _pending(
        self,
        registry: ClassifierRegistry,
        submission: Submission,
        raw: RawRequest,
        caller: Caller,
        idempotency_key: str | None,
    ) -> Pending:
        """The decision to record for a request (or, with a key, the error deciding raised), with what the
        writer must check before recording it."""
        decision: NewAssessment | DomainError
        shadows: tuple[NewShadowDecision, ...] = ()
        try:
            version = registry.resolve(submission.classifier)
            decision = self._new_assessment(uuid.uuid4(), version, submission, raw, caller, idempotency_key)
            shadow = registry.shadow_of(version)
            if shadow is not None:
                shadows = (_shadow_decision(decision.id, submission, shadow),)
        except DomainError as error:
            if idempotency_key is None:
                raise
            decision = error  # unless the key made a decision before, which its retry gets
        claim = None
        if idempotency_key is not None:
            claim = Claim(caller.client_id, idempotency_key, fingerprint(submission))
        correction = None
        if submission.supersedes is not None:
            correction = Correction(
                submission.supersedes, submission.subject_id, submission.site_id, caller.sites
            )
        return Pending(decision, claim, correction, shadows)

    def _new_assessment(
        self,
        decision_id: uuid.UUID,
        version: RegisteredVersion,
        submission: Submission,
        raw: RawRequest,
        caller: Caller,
        idempotency_key: str | None,
    ) -> NewAssessment:
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
        before = None if cursor is None else decode_cursor(cursor)
        async with self._unit_of_work() as uow:
            rows = await uow.assessments.list_for_subject(
                subject_id, limit=limit + 1, before_seq=before, sites=sites.sites
            )
            items = [RecordedAssessment.from_stored(row) for row in rows[:limit]]
        next_cursor = encode_cursor(items[-1].seq) if len(rows) > limit else None
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
        registry = self._catalog.current
        if classifier is None:
            recorded = original.decision["classifier"]
            version = registry.get(recorded["name"], recorded["version"])
            if version is None or version.digest != recorded["digest"]:
                raise ReplayUnavailable(
                    "the classifier version that made this decision is not loaded with its recorded digest"
                )
        else:
            version = registry.resolve(classifier)
        replayed = self._decide(submission_from_input(original.input), version)
        changes = decision_changes(original.decision, replayed)
        if classifier is None and replayed["classifier"] != original.decision["classifier"]:
            changes.append(Change("classifier", original.decision["classifier"], replayed["classifier"]))
        return Replay(original, replayed, tuple(changes))


def _permit(submission: Submission, caller: Caller) -> None:
    if not caller.sites.permits(submission.site_id):
        raise Forbidden(
            "site",
            "This caller may decide only for its own sites: site_id must name one of them.",
        )


def _outcome(written: Written) -> Outcome:
    return Outcome(RecordedAssessment.from_stored(written.stored), replayed=written.replayed)


def _shadow_decision(
    decision_id: uuid.UUID, submission: Submission, shadow: RegisteredVersion
) -> NewShadowDecision:
    """What the shadow version decides for the same input; why not, when it cannot decide it."""
    definition = shadow.definition
    try:
        decision = AssessmentService._decide(submission, shadow)
    except Exception as error:  # a candidate's failure never fails the live decision
        # Domain errors say what was refused without quoting the input; anything else only by its type.
        why = str(error) if isinstance(error, DomainError) else f"{type(error).__name__} (unexpected)"
        return NewShadowDecision(
            decision_id, definition.name, definition.version, shadow.digest, None, None, None, why
        )
    return NewShadowDecision(
        assessment_id=decision_id,
        classifier_name=definition.name,
        classifier_version=definition.version,
        classifier_digest=shadow.digest,
        eligibility_status=decision["eligibility"]["status"],
        risk_group=decision["risk"]["group"],
        decision=decision,
        error=None,
    )
