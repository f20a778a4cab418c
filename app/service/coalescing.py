"""Concurrent lookups of the same kind answered by one query.

Each request looks its caller's key up in the database, so that a revoked key is refused at once. Under
load many requests arrive together, mostly with the same few keys: the coalescer gathers the keys asked
for while its previous query runs and reads them all in the next one. A lookup is answered only by a
query that began after it was asked, never by one already under way, so it sees every change committed
before it arrived: coalescing saves queries, not freshness.
"""

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Coalescer(Generic[K, V]):
    """``fetch(keys)`` reads many keys in one query and maps each key found to its value."""

    def __init__(self, fetch: Callable[[Iterable[K]], Awaitable[Mapping[K, V]]]) -> None:
        self._fetch = fetch
        self._asked: dict[K, list[asyncio.Future[V | None]]] = {}
        self._task: asyncio.Task[None] | None = None

    async def get(self, key: K) -> V | None:
        """The key's value as of a query begun after this call, or None when there is none."""
        future: asyncio.Future[V | None] = asyncio.get_running_loop().create_future()
        # Observed even when the request that asked has gone: no "exception never retrieved".
        future.add_done_callback(lambda done: done.cancelled() or done.exception())
        self._asked.setdefault(key, []).append(future)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="coalesced-lookups")
        return await asyncio.shield(future)

    async def _run(self) -> None:
        while self._asked:
            asked, self._asked = self._asked, {}
            try:
                found = await self._fetch(list(asked))
            except asyncio.CancelledError:
                for futures in asked.values():
                    for future in futures:
                        future.cancel()
                raise
            except Exception as error:  # every lookup of this query gets its failure
                self._fail(asked, error)
                continue
            for key, futures in asked.items():
                for future in futures:
                    if not future.done():
                        future.set_result(found.get(key))

    @staticmethod
    def _fail(asked: Mapping[K, list["asyncio.Future[V | None]"]], error: Exception) -> None:
        for futures in asked.values():
            for future in futures:
                if not future.done():
                    future.set_exception(error)
