"""``il6 audit verify --jobs N``: the ranges of a long chain checked in processes of their own.

In one process a check is bound by Python's cost per record, one CPU's worth, while PostgreSQL uses little
of another (bench/RESULTS.md). With ``--jobs N`` each range runs ``app.service.audit.check_range`` in a
worker process, on its own connection and read-only transaction, against the same ``DATABASE_URL``; this
process joins the outcomes exactly as it joins ranges it checks itself (``AuditService.verify``). A worker
starts afresh (``spawn``): it shares no connection, no event loop and no state with this process, and pays
the interpreter's start and the imports once, so it pays off on chains of hundreds of thousands of records.
"""

import asyncio
import multiprocessing
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from functools import partial

from app.domain.audit import ChainHead, Checkpoint, Verification


class RangesInProcesses:
    """An ``app.service.audit.RangeCheck`` that checks each range in a worker process (at most ``jobs`` at
    once). ``close`` ends the workers."""

    def __init__(self, jobs: int) -> None:
        self._pool = ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"))

    async def __call__(
        self, from_seq: int, to_seq: int | None, checkpoints: Sequence[Checkpoint], after: ChainHead | None
    ) -> tuple[ChainHead | None, Verification]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._pool, _check_range, from_seq, to_seq, tuple(checkpoints), after
        )

    def close(self) -> None:
        self._pool.shutdown(cancel_futures=True)


def _check_range(
    from_seq: int, to_seq: int | None, checkpoints: tuple[Checkpoint, ...], after: ChainHead | None
) -> tuple[ChainHead | None, Verification]:
    """In a worker: one range checked on a connection of the worker's own."""
    return asyncio.run(_check_range_on_own_engine(from_seq, to_seq, checkpoints, after))


async def _check_range_on_own_engine(
    from_seq: int, to_seq: int | None, checkpoints: tuple[Checkpoint, ...], after: ChainHead | None
) -> tuple[ChainHead | None, Verification]:
    from app.service.audit import BATCH_SIZE, check_range
    from app.settings import get_settings
    from app.store.database import create_engine_for, create_session_factory
    from app.store.unit_of_work import UnitOfWork

    engine = create_engine_for(get_settings())
    try:
        readers = partial(UnitOfWork, create_session_factory(engine, read_only=True))
        return await check_range(readers, BATCH_SIZE, from_seq, to_seq, checkpoints, after)
    finally:
        await engine.dispose()
