"""Coalesced lookups: one query for the lookups asked together, and never an answer older than the ask."""

import asyncio
from collections.abc import Iterable

import pytest

from app.service.coalescing import Coalescer


class Store:
    """A table read by ``fetch``, which can be held mid-query to let lookups arrive meanwhile."""

    def __init__(self, rows: dict[str, int]) -> None:
        self.rows = rows
        self.queries: list[list[str]] = []
        self.release = asyncio.Event()
        self.release.set()
        self.started = asyncio.Event()
        self.failing = False

    async def fetch(self, keys: Iterable[str]) -> dict[str, int]:
        asked = sorted(keys)
        self.queries.append(asked)
        snapshot = {key: self.rows[key] for key in asked if key in self.rows}  # read when the query begins
        self.started.set()
        await self.release.wait()
        if self.failing:
            raise ConnectionError("store down")
        return snapshot


async def test_lookups_asked_together_share_one_query() -> None:
    store = Store({"a": 1, "b": 2})
    lookups = Coalescer(store.fetch)

    found = await asyncio.gather(*(lookups.get(key) for key in ["a", "b", "a", "missing", "a"]))

    assert found == [1, 2, 1, None, 1]
    assert store.queries == [["a", "b", "missing"]]


async def test_a_lookup_asked_during_a_query_waits_for_the_next_one() -> None:
    store = Store({"a": 1})
    store.release.clear()
    lookups = Coalescer(store.fetch)
    first = asyncio.create_task(lookups.get("a"))
    await store.started.wait()

    store.rows["a"] = 2  # changed after the first query began, before the second lookup is asked
    second = asyncio.create_task(lookups.get("a"))
    await asyncio.sleep(0)
    store.release.set()

    assert await first == 1
    assert await second == 2
    assert store.queries == [["a"], ["a"]]


async def test_a_failed_query_fails_its_lookups_and_the_next_query_runs() -> None:
    store = Store({"a": 1})
    store.failing = True
    lookups = Coalescer(store.fetch)

    results = await asyncio.gather(lookups.get("a"), lookups.get("b"), return_exceptions=True)

    assert [type(result) for result in results] == [ConnectionError, ConnectionError]
    store.failing = False
    assert await lookups.get("a") == 1
    assert len(store.queries) == 2


async def test_a_lookup_whose_caller_goes_away_does_not_stop_the_others() -> None:
    store = Store({"a": 1})
    store.release.clear()
    lookups = Coalescer(store.fetch)
    leaving = asyncio.create_task(lookups.get("a"))
    staying = asyncio.create_task(lookups.get("a"))
    await store.started.wait()

    leaving.cancel()
    store.release.set()

    assert await staying == 1
    with pytest.raises(asyncio.CancelledError):
        await leaving
