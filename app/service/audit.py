"""Reading the audit trail back: verifying the chain, signing checkpoints, exporting records."""

import asyncio
import itertools
import json
import logging
import os
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, cast

from app.collector import collector_paused
from app.domain.audit import (
    Break,
    BrokenLink,
    ChainHead,
    ChainVerifier,
    Checkpoint,
    Verification,
    joined,
    to_record,
)
from app.service.checkpoints import CheckpointSigner, SignedCheckpoint
from app.store.seq_pages import SeqPages
from app.store.unit_of_work import StoreUnavailable, UnitOfWork

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExportRange:
    """Which records to export: a sequence range and/or a half-open time range [from_time, to_time)."""

    from_seq: int = 1
    to_seq: int | None = None
    from_time: datetime | None = None
    to_time: datetime | None = None


def export_record(row: Mapping[str, Any]) -> dict[str, Any]:
    """A record as exported: the hashed fields, then its hash and the request body it covers."""
    return {**to_record(row), "hash": row["hash"], "request_body": row["request_body"]}


@dataclass(frozen=True)
class VerificationRun:
    """When this process last verified the chain (a check asked for, or before signing a checkpoint),
    what it covered and what it found."""

    finished_at: datetime
    from_seq: int
    checked: int
    last_seq: int | None
    intact: bool
    broken_seq: int | None
    checkpoints: int


class ChainBroken(Exception):
    """The chain no longer extends the last checkpoint this service signed, so it signs nothing more."""


BATCH_SIZE = 2000
"""Records a check reads at a time."""

MIN_RANGE = 20_000
"""The fewest records a range checked beside others holds: below that, one pass is as quick."""


def _adjoin(parts: Sequence[tuple[ChainHead | None, Verification]]) -> bool:
    """Whether ranges checked apart join into one pass: each started from a stored record, and each after
    the first from the very record (seq and hash) the range before ended on, unless that one broke."""
    for (_, before), (anchor, _) in itertools.pairwise(parts):
        if anchor is None:
            return False
        if before.broken is None and (before.last_seq, before.last_hash) != (anchor.seq, anchor.hash):
            return False
    return parts[0][0] is not None


RangeCheck = Callable[
    [int, int | None, Sequence[Checkpoint], ChainHead | None],
    Coroutine[Any, Any, tuple[ChainHead | None, Verification]],
]
"""Checks one range (``check_range`` from its third argument on): in this process, or in another."""


async def check_range(
    unit_of_work: Callable[[], UnitOfWork],
    batch_size: int,
    from_seq: int,
    to_seq: int | None,
    checkpoints: Sequence[Checkpoint],
    after: ChainHead | None,
) -> tuple[ChainHead | None, Verification]:
    """Check one range in a transaction of its own, after the given link, or else after the stored record
    before the range; the link it started from (None when there is none) and the outcome."""
    async with unit_of_work() as uow:
        anchor = after or await uow.assessments.link_before(from_seq)
        if anchor is None:
            return None, Verification(0, None, None, None, None)
        return anchor, await verify_from(uow, batch_size, anchor, from_seq, to_seq, checkpoints)


async def verify_from(
    uow: UnitOfWork,
    batch_size: int,
    after: ChainHead,
    from_seq: int,
    to_seq: int | None,
    checkpoints: Sequence[Checkpoint],
) -> Verification:
    """Check the records from ``from_seq`` to ``to_seq`` (or the end) after the link ``after``."""
    kept = [link for link in checkpoints if link.seq >= from_seq and (to_seq is None or link.seq <= to_seq)]
    verifier = ChainVerifier(after, kept)
    async for batch in uow.chain.entries(from_seq=from_seq, to_seq=to_seq, batch_size=batch_size):
        with collector_paused():
            intact = all(
                verifier.feed(record, stored_hash, body, exact=exact)
                for record, stored_hash, body, exact in batch
            )
        if not intact:
            break
    return verifier.finish()


class AuditService:
    def __init__(
        self,
        unit_of_work: Callable[[], UnitOfWork],
        signer: CheckpointSigner,
        batch_size: int = BATCH_SIZE,
        anchor: SignedCheckpoint | None = None,
        parallel: int = 1,
        min_range: int = MIN_RANGE,
        range_check: RangeCheck | None = None,
    ) -> None:
        """``anchor`` is the last checkpoint signed before this start (the checkpoint log's last line).
        A long verification checks up to ``parallel`` ranges at once, each on a connection of its own: the
        database compares one range's records while this process hashes another's. ``range_check``
        checks each such range (by default ``check_range``, in this process)."""
        self._unit_of_work = unit_of_work
        self.signer = signer
        self._range_check: RangeCheck = range_check or partial(check_range, unit_of_work, batch_size)
        self._batch_size = batch_size
        self._parallel = parallel
        self._min_range = min_range
        self._anchor = anchor
        self.last_verification: VerificationRun | None = None
        """The last verification this process ran (None until one has): the monitoring page shows it."""

    async def head(self) -> tuple[datetime, ChainHead]:
        async with self._unit_of_work() as uow:
            return await uow.assessments.head()

    async def checkpoint(self) -> SignedCheckpoint:
        """The chain head now, signed: keep it outside the database to check the chain against later.

        Only a chain that still extends the last checkpoint signed is signed again (checked from that
        checkpoint on): the service never vouches for a head an owner produced by cutting or rewriting.
        """
        now, head = await self.head()
        anchor = self._anchor
        if anchor is not None and anchor.seq > 0:
            verification = await self.verify(from_seq=anchor.seq, checkpoints=[anchor])
            if not verification.intact:
                logger.error("audit chain does not extend the checkpoint at seq %d: not signing", anchor.seq)
                raise ChainBroken(
                    f"the audit chain does not extend the checkpoint signed at seq {anchor.seq}; "
                    "run `il6 audit verify` to find the broken link"
                )
        signed = self.signer.sign(head.seq, head.hash, now)
        if anchor is None or signed.seq >= anchor.seq:
            self._anchor = signed
        return signed

    async def verify(
        self,
        *,
        from_seq: int = 1,
        to_seq: int | None = None,
        checkpoints: Sequence[SignedCheckpoint] = (),
    ) -> Verification:
        """Check the chain (or a range of it) record by record, and against signed checkpoints.

        Each checkpoint's signature must verify under this service's key (InvalidCheckpoint otherwise);
        a checkpoint inside the range must match the record it names, one beyond the chain's end shows a
        cut tail. Stops at the first broken link. The outcome is kept as ``last_verification``.
        """
        verification = await self._verify(from_seq, to_seq, checkpoints)
        self.last_verification = VerificationRun(
            finished_at=datetime.now(UTC),
            from_seq=from_seq,
            checked=verification.checked,
            last_seq=verification.last_seq,
            intact=verification.intact,
            broken_seq=None if verification.broken is None else verification.broken.seq,
            checkpoints=verification.checkpoints,
        )
        return verification

    async def _verify(
        self, from_seq: int, to_seq: int | None, checkpoints: Sequence[SignedCheckpoint]
    ) -> Verification:
        for checkpoint in checkpoints:
            checkpoint.verify(self.signer.public_key)
        links = [
            checkpoint.link
            for checkpoint in checkpoints
            if checkpoint.seq >= max(from_seq, 1) and (to_seq is None or checkpoint.seq <= to_seq)
        ]
        async with self._unit_of_work() as uow:
            after = await uow.assessments.link_before(from_seq)
            _, head = await uow.assessments.head()
        if after is None:
            if head.seq < from_seq:  # a range past the end holds nothing to check
                return ChainVerifier(head, links).finish()
            missing = BrokenLink(from_seq - 1, Break.SEQUENCE_GAP, str(from_seq - 1), "absent")
            return Verification(0, None, None, None, missing, len(links))
        ranges = self._ranges(from_seq, head.seq if to_seq is None else min(to_seq, head.seq))
        if len(ranges) > 1:
            # The last range runs on to ``to_seq`` (or the end): records appended meanwhile are checked too.
            ranges[-1] = (ranges[-1][0], to_seq)
            async with asyncio.TaskGroup() as group:  # one range failing stops the others
                tasks = [
                    group.create_task(
                        self._range_check(start, end, links, None if start > from_seq else after)
                    )
                    for start, end in ranges
                ]
            parts = [task.result() for task in tasks]
            if _adjoin(parts):
                return joined([verification for _, verification in parts])
            # A range's first record has no record before it, or not the one the range before ended on (a
            # gap, a duplicated or altered record at a boundary): one pass pinpoints it.
        async with self._unit_of_work() as uow:
            return await verify_from(uow, self._batch_size, after, from_seq, to_seq, links)

    def _ranges(self, from_seq: int, to_seq: int) -> list[tuple[int, int | None]]:
        """Consecutive ranges of at least ``min_range`` records, at most ``parallel`` of them."""
        records = to_seq - from_seq + 1
        count = max(1, min(self._parallel, records // self._min_range))
        if count == 1:
            return [(from_seq, to_seq)]
        size = -(-records // count)
        return [(start, min(start + size - 1, to_seq)) for start in range(from_seq, to_seq + 1, size)]

    async def export(self, bounds: ExportRange) -> AsyncIterator[dict[str, Any]]:
        """Records in sequence order, up to the head as it is now (read here, so that an unreachable
        store fails before any record is streamed)."""
        _, head = await self.head()
        to_seq = head.seq if bounds.to_seq is None else min(bounds.to_seq, head.seq)
        return self._records(bounds, to_seq)

    async def _records(self, bounds: ExportRange, to_seq: int) -> AsyncIterator[dict[str, Any]]:
        """Each batch is read in its own short transaction: a long export holds no connection meanwhile."""
        pages = SeqPages(bounds.from_seq, self._batch_size)
        while not pages.done:
            async with self._unit_of_work() as uow:
                batch = await uow.assessments.chain_page(
                    pages, to_seq=to_seq, from_time=bounds.from_time, to_time=bounds.to_time
                )
            for row in cast(Sequence[Mapping[str, Any]], batch):
                yield export_record(row)


class CheckpointPublisher:
    """Writes a signed checkpoint every ``interval_s`` seconds, when the chain has grown since the last:
    appended as one JSON line to ``path`` (when set) and logged, so copies live outside the database."""

    def __init__(self, audit: AuditService, path: Path | None, interval_s: float) -> None:
        self._audit = audit
        self._path = path
        self._interval_s = interval_s
        self._last_seq: int | None = None

    async def publish(self) -> SignedCheckpoint | None:
        """Sign the head and write it out, unless it is the head last written; None then."""
        checkpoint = await self._audit.checkpoint()
        if checkpoint.seq == self._last_seq:
            return None
        line = json.dumps(checkpoint.document(), separators=(",", ":")) + "\n"
        if self._path is not None:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            # One write to a file opened O_APPEND: lines from several processes never interleave.
            descriptor = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(descriptor, line.encode("utf-8"))
            finally:
                os.close(descriptor)
        logger.info("audit checkpoint %s", line.rstrip())
        self._last_seq = checkpoint.seq
        return checkpoint

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                await self.publish()
            except StoreUnavailable:
                logger.warning("audit checkpoint skipped: the audit store is unavailable")
            except ChainBroken:
                pass  # logged where found; the service keeps deciding, and keeps refusing to sign
            except OSError as error:
                logger.error("audit checkpoint not written: %s", type(error).__name__)
            except Exception as error:  # the task must outlive any one failure, and say so
                logger.error("audit checkpoint failed: %s", type(error).__name__)
