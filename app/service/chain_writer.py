"""Group commit: one writer per process appends every decision waiting for it in one transaction.

Each append holds the chain's turn (one lock across every process) from reading the head to commit, so
appends one at a time cost a turn and a commit each. The writer takes whatever decisions are waiting when
its previous transaction ends, checks their Idempotency-Keys and corrections, links them to the chain
in order and commits them together: one turn, one commit (one WAL flush) for many decisions. A decision
waits no timer: under light load a batch is one decision; under heavy load batches grow by themselves.

Each request is answered only once its batch has committed; once it has, nothing (a slow clean-up, the
deadline) turns the answer into a refusal. A batch fails as a whole when the store is down or its deadline
passes before the commit: every decision in it is then refused, none recorded. When the store answers but
refuses what was written (a constraint or a trigger), each decision of the batch is tried again alone, so
that only the one refused is refused. A refusal of one item (a reused key, a correction of a decision
already corrected) is that item's own, and the rest of the batch goes ahead. A request whose
Idempotency-Key an earlier request in the same batch carries gets that request's decision once the batch
commits (or waits for the next batch, when that request got none). A request that goes away while waiting
does not take its decision out of the batch: it may be recorded though never answered, as when a connection
drops after commit.
"""

import asyncio
import contextvars
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from app.domain.errors import DomainError, InvalidInput
from app.service.errors import AlreadySuperseded, IdempotencyKeyReused, RequestInProgress
from app.service.observability import AuditObserver, NoObserver, RecordedDecision
from app.service.pending_decisions import Claim, Correction, Pending, Written
from app.store.classifier_repositories import NewShadowDecision
from app.store.idempotency_repository import KeyBinding, NewKeyBinding
from app.store.repositories import NewAssessment, StoredAssessment
from app.store.unit_of_work import StoreUnavailable, UnitOfWork, WriteRefused

logger = logging.getLogger(__name__)

MAX_BATCH = 500
"""The most decisions one transaction appends: it bounds how long one transaction holds the chain's turn
(and the bound parameters of its key checks, two per key, stay far below PostgreSQL's 65535)."""


class _NextBatch:
    """The answer of a request whose key an earlier request in its batch has: it waits for the next."""


NEXT_BATCH = _NextBatch()
Answer = Written | Exception | _NextBatch


def _retrieve(done: "asyncio.Future[Written]") -> None:
    """Retrieve a settled future's exception, so that one nobody waits for any more is not reported as
    "never retrieved"."""
    if not done.cancelled():
        done.exception()


def _observe(tell: Callable[..., None], *args: object, **kwargs: object) -> None:
    """Tell the observer; a failing observer (metrics) never fails or delays a write."""
    try:
        tell(*args, **kwargs)
    except Exception as error:  # by type only: a message could quote what was decided
        logger.error("the audit observer failed: %s", type(error).__name__)


class ChainWriter:
    def __init__(
        self,
        unit_of_work: Callable[[], UnitOfWork],
        *,
        idempotency_ttl: timedelta = timedelta(hours=24),
        transaction_timeout_s: float = 10.0,
        max_batch: int = MAX_BATCH,
        observer: AuditObserver | None = None,
    ) -> None:
        """``observer`` is told how long each transaction took and what each commit recorded."""
        self._unit_of_work = unit_of_work
        self._observer: AuditObserver = observer or NoObserver()
        self._idempotency_ttl = idempotency_ttl
        self._transaction_timeout_s = transaction_timeout_s
        self._max_batch = max_batch
        self._waiting: deque[tuple[Pending, asyncio.Future[Written]]] = deque()
        self._arrived = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.batches = 0
        self.appended = 0

    async def write(self, pending: Pending) -> Written:
        """Record the decision (or find the one its key made) and return once that has committed."""
        if self._closing:
            raise StoreUnavailable("the service is stopping")
        future: asyncio.Future[Written] = asyncio.get_running_loop().create_future()
        # Observed even when the request that waited for it has gone: no "exception never retrieved".
        future.add_done_callback(_retrieve)
        self._waiting.append((pending, future))
        self._wake()
        # Shielded: a request that goes away does not take the decision out of a batch being written.
        return await asyncio.shield(future)

    async def write_many(self, pendings: Sequence[Pending]) -> list[Written | Exception]:
        """Record each decision as ``write`` would, and return each one's answer (what ``write`` returns,
        or the exception it raises) once every one of them has been answered.

        They are queued together, in order, so that they share transactions (``max_batch`` at a time);
        each is still checked, and refused or recorded, on its own. Without a task and a shield per
        decision: one wait for all of them, shielded as ``write`` is.
        """
        if self._closing:  # each refused, as ``write`` would refuse it
            return [StoreUnavailable("the service is stopping") for _ in pendings]
        if not pendings:
            return []
        loop = asyncio.get_running_loop()
        settled: asyncio.Future[None] = loop.create_future()
        remaining = len(pendings)

        def one_settled(done: "asyncio.Future[Written]") -> None:
            nonlocal remaining
            _retrieve(done)
            remaining -= 1
            if not remaining and not settled.done():
                settled.set_result(None)

        futures: list[asyncio.Future[Written]] = []
        for pending in pendings:
            future: asyncio.Future[Written] = loop.create_future()
            future.add_done_callback(one_settled)
            futures.append(future)
            self._waiting.append((pending, future))
        self._wake()
        await asyncio.shield(settled)
        answers: list[Written | Exception] = []
        for future in futures:
            error = future.exception()
            if error is None:
                answers.append(future.result())
            elif isinstance(error, Exception):
                answers.append(error)
            else:  # never set by the writer; raised as waiting for it would
                raise error
        return answers

    def _wake(self) -> None:
        """Make sure the writer runs, and sees what was just queued."""
        self._arrived.set()
        if self._task is None or self._task.done():
            # In a context of its own: the writer serves every request, so it must not carry (into its log
            # lines) the request id of the one that happened to start it.
            self._task = asyncio.create_task(
                self._run(), name="audit-chain-writer", context=contextvars.Context()
            )

    async def aclose(self) -> None:
        """Write what is waiting, then stop; whatever arrives from now on is refused."""
        self._closing = True
        self._arrived.set()
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        while True:
            while not self._waiting:
                if self._closing:
                    return
                self._arrived.clear()
                await self._arrived.wait()
            batch = [self._waiting.popleft() for _ in range(min(len(self._waiting), self._max_batch))]
            try:
                await self._write(batch)
            except asyncio.CancelledError:
                self._refuse(batch, StoreUnavailable("the service is stopping"))
                self._refuse(list(self._waiting), StoreUnavailable("the service is stopping"))
                raise

    async def _write(self, batch: list[tuple[Pending, "asyncio.Future[Written]"]]) -> None:
        committed: list[Answer] = []  # filled once the commit has succeeded: from then on, nothing undoes it
        try:
            async with asyncio.timeout(self._transaction_timeout_s):
                await self._observed_transaction([pending for pending, _ in batch], committed)
        except TimeoutError:
            if not committed:
                self._refuse(batch, StoreUnavailable("the audit store did not answer in time"))
                return
            logger.warning("audit store slow to release a committed batch")
        except WriteRefused as error:
            if committed:  # refused in clean-up, after the commit: what committed stands
                self._settle(batch, committed)
                return
            if len(batch) == 1:
                self._refuse(batch, error)
                return
            # One decision the database refuses must not sink the others: each is tried alone.
            logger.warning("audit batch of %d refused by the store; writing each alone", len(batch))
            for waiting in batch:
                await self._write([waiting])
            return
        except Exception as error:  # every waiting request gets the batch's failure
            if not committed:
                self._refuse(batch, error)
                return
            logger.warning("audit store failed after a committed batch: %s", type(error).__name__)
        self._settle(batch, committed)

    def _settle(self, batch: list[tuple[Pending, "asyncio.Future[Written]"]], answers: list[Answer]) -> None:
        """Answer each request of a committed batch. A request whose key an earlier one in the batch
        carried gets what that one got, when it was a decision; else it waits for the next batch."""
        self.batches += 1
        recorded: list[RecordedDecision] = []
        replayed = 0
        first: dict[tuple[str, str], tuple[str, Written]] = {}
        for (pending, _), answer in zip(batch, answers, strict=True):
            if pending.claim is not None and isinstance(answer, Written):
                first.setdefault(pending.claim.ref, (pending.claim.fingerprint, answer))
        later = []
        for waiting, answer in zip(batch, answers, strict=True):
            pending, future = waiting
            if isinstance(answer, _NextBatch):
                claim = pending.claim
                if claim is None or claim.ref not in first:
                    later.append(waiting)
                    continue
                fingerprint, earlier = first[claim.ref]
                answer = (
                    Written(earlier.stored, replayed=True)
                    if fingerprint == claim.fingerprint
                    else IdempotencyKeyReused("this Idempotency-Key was used with a different request")
                )
            if isinstance(answer, Written):  # counted as committed, whether or not anyone still waits
                if answer.replayed:
                    replayed += 1
                else:
                    recorded.append(_recorded(answer.stored))
            if future.done():
                continue
            if isinstance(answer, Exception):
                future.set_exception(answer)
            else:
                self.appended += not answer.replayed
                future.set_result(answer)
        self._waiting.extendleft(reversed(later))
        _observe(self._observer.audit_committed, recorded, replayed)

    @staticmethod
    def _refuse(batch: Sequence[tuple[Pending, "asyncio.Future[Written]"]], error: Exception) -> None:
        for _, future in batch:
            if not future.done():
                future.set_exception(error)

    async def _observed_transaction(self, batch: Sequence[Pending], committed: list[Answer]) -> None:
        started = time.perf_counter()
        try:
            await self._transaction(batch, committed)
        finally:
            seconds = time.perf_counter() - started
            _observe(self._observer.audit_transaction, committed=bool(committed), seconds=seconds)

    async def _transaction(self, batch: Sequence[Pending], committed: list[Answer]) -> None:
        """One transaction in the chain's turn: every key and correction is checked, and every decision
        that passes is appended, before anything commits; ``committed`` gets the answers once it has."""
        outcomes: list[Answer | None] = [None] * len(batch)
        claims = self._first_claims(batch, outcomes)
        async with self._unit_of_work() as uow:
            turn = await uow.assessments.take_turn()
            # In the turn: bindings are written only in one, so none changes until this one commits.
            held, bound = await uow.idempotency.claim(list(claims))
            expired = await self._check_keys(uow, claims, held, bound, outcomes)
            await self._check_corrections(uow, batch, outcomes)
            accepted: list[NewAssessment] = []
            shadows: list[NewShadowDecision] = []
            claimed: list[tuple[Claim, NewAssessment]] = []
            for index, pending in enumerate(batch):
                if outcomes[index] is not None:
                    continue
                if isinstance(pending.decision, DomainError):  # no earlier decision answers it
                    outcomes[index] = pending.decision
                    continue
                accepted.append(pending.decision)
                shadows += pending.shadows
                if pending.claim is not None:
                    claimed.append((pending.claim, pending.decision))
            rows = await uow.assessments.append(accepted, turn)
            # A key is bound when its decision is recorded: at the decision's time, by the database's clock.
            recorded_at = {row.id: row.recorded_at for row in rows}
            bindings = [
                NewKeyBinding(
                    claim.client_id, claim.key, claim.fingerprint, decision.id, recorded_at[decision.id]
                )
                for claim, decision in claimed
            ]
            rebound = {(binding.client_id, binding.key) for binding in bindings}
            await uow.idempotency.forget([ref for ref in expired if ref in rebound])
            await uow.idempotency.add(bindings)
            await uow.shadows.add(shadows)
            answers: list[Answer] = []
            appended = iter(rows)
            for outcome in outcomes:
                answers.append(
                    Written(StoredAssessment(next(appended), None), False) if outcome is None else outcome
                )
            await uow.commit()
            committed.extend(answers)

    @staticmethod
    def _first_claims(
        batch: Sequence[Pending], outcomes: list[Answer | None]
    ) -> dict[tuple[str, str], tuple[int, Claim]]:
        """Each key the batch carries, with the first request that carries it; a later one waits."""
        first: dict[tuple[str, str], tuple[int, Claim]] = {}
        for index, pending in enumerate(batch):
            if pending.claim is None:
                continue
            if pending.claim.ref in first:  # the same key twice in one batch: answered after the first
                outcomes[index] = NEXT_BATCH
            else:
                first[pending.claim.ref] = (index, pending.claim)
        return first

    async def _check_keys(
        self,
        uow: UnitOfWork,
        first: dict[tuple[str, str], tuple[int, Claim]],
        held: list[bool],
        bound: dict[tuple[str, str], KeyBinding],
        outcomes: list[Answer | None],
    ) -> list[tuple[str, str]]:
        """Answer each request whose key made a decision already; refuse keys another request is using.
        Returns the keys bound so long ago that they are free again."""
        expired: list[tuple[str, str]] = []
        now = datetime.now(UTC)
        for ref, free in zip(first, held, strict=True):
            index, claim = first[ref]
            if not free:
                outcomes[index] = RequestInProgress("a request with this Idempotency-Key is being decided")
                continue
            binding = bound.get(ref)
            if binding is not None and binding.created_at + self._idempotency_ttl <= now:
                expired.append(ref)
                binding = None
            if binding is None:
                continue
            if binding.fingerprint != claim.fingerprint:
                outcomes[index] = IdempotencyKeyReused(
                    "this Idempotency-Key was used with a different request"
                )
                continue
            earlier = await uow.assessments.get(binding.assessment_id)
            # The key table is not chained: answer only with a record that itself names this client and
            # key (the foreign key makes a missing one impossible; never answer without the record).
            if earlier is None or (earlier.row.client_id, earlier.row.idempotency_key) != ref:
                raise StoreUnavailable("the decision bound to this Idempotency-Key could not be confirmed")
            outcomes[index] = Written(earlier, replayed=True)
        return expired

    @staticmethod
    async def _check_corrections(
        uow: UnitOfWork, batch: Sequence[Pending], outcomes: list[Answer | None]
    ) -> None:
        """The decision a correction supersedes exists (for the caller's sites), is the subject's, and
        stands; checked in the chain's turn, so that two corrections of one decision cannot both pass."""
        corrected: dict[uuid.UUID, uuid.UUID] = {}
        for index, pending in enumerate(batch):
            correction, decision = pending.correction, pending.decision
            if correction is None or outcomes[index] is not None or not isinstance(decision, NewAssessment):
                continue
            try:
                if correction.supersedes in corrected:  # by an earlier correction in this batch
                    raise AlreadySuperseded(corrected[correction.supersedes])
                await _check_correction(uow, correction)
            except (InvalidInput, AlreadySuperseded) as error:
                outcomes[index] = error
            else:
                corrected[correction.supersedes] = decision.id


def _recorded(stored: StoredAssessment) -> RecordedDecision:
    row = stored.row
    return RecordedDecision(
        row.eligibility_status, row.risk_group, f"{row.classifier_name}@{row.classifier_version}", row.seq
    )


async def _check_correction(uow: UnitOfWork, correction: Correction) -> None:
    target = await uow.assessments.get(correction.supersedes)
    if target is None or not correction.sites.permits(target.row.site_id):
        raise InvalidInput("/supersedes", "No assessment with this id.")
    if target.row.subject_id != correction.subject_id:
        raise InvalidInput("/supersedes", "A correction must be for the same subject.")
    if target.row.site_id != correction.site_id:
        # Else the decision would leave its site's view, its successor unreadable there.
        raise InvalidInput("/site_id", "A correction must be for the same site as the decision it corrects.")
    if target.superseded_by is not None:
        raise AlreadySuperseded(target.superseded_by)
