"""The garbage collector held off for a block or a stretch, and set for serving, then left as it was."""

import asyncio
import gc
from collections.abc import Iterator

import pytest

from app.collector import SERVING_THRESHOLD, collector_held, collector_paused, serving


@pytest.fixture
def default_collector() -> Iterator[tuple[int, int, int]]:
    """CPython's own thresholds and nothing frozen for the test, whatever the session set before; the
    session's settings back after it."""
    threshold, frozen = gc.get_threshold(), gc.get_freeze_count()
    gc.set_threshold(700, 10, 10)
    gc.unfreeze()
    yield gc.get_threshold()
    gc.set_threshold(*threshold)
    if frozen:  # as an app's start-up left the session: what is alive now out of the collector's scans
        gc.freeze()


def test_paused_collector_is_off_inside_and_on_after() -> None:
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
        with collector_paused():  # an inner block leaves it off
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()


async def test_held_stretches_that_overlap_turn_the_collector_on_when_the_last_ends() -> None:
    first_in, second_in, first_may_end = asyncio.Event(), asyncio.Event(), asyncio.Event()
    seen: list[tuple[str, bool]] = []

    async def first() -> None:
        with collector_held():
            first_in.set()
            await first_may_end.wait()
        seen.append(("first ended", gc.isenabled()))

    async def second() -> None:
        await first_in.wait()
        with collector_held():
            second_in.set()
            first_may_end.set()
            await asyncio.sleep(0.01)  # the first stretch ends meanwhile
            seen.append(("second, after the first ended", gc.isenabled()))
        seen.append(("second ended", gc.isenabled()))

    assert gc.isenabled()
    await asyncio.gather(first(), second())

    assert seen == [("first ended", False), ("second, after the first ended", False), ("second ended", True)]
    assert gc.isenabled()


def test_a_held_stretch_leaves_a_collector_that_was_off_off_and_ends_on_an_error() -> None:
    gc.disable()
    try:
        with collector_held():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()
    with pytest.raises(RuntimeError), collector_held():
        raise RuntimeError("stopped while held")
    assert gc.isenabled()


def test_serving_collects_young_objects_less_often_and_freezes_those_alive(
    default_collector: tuple[int, int, int],
) -> None:
    assert gc.get_freeze_count() == 0
    with serving():
        assert gc.get_threshold() == (SERVING_THRESHOLD, *default_collector[1:])
        assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == default_collector


def test_serving_restores_the_thresholds_after_an_error(default_collector: tuple[int, int, int]) -> None:
    with pytest.raises(RuntimeError), serving():
        raise RuntimeError("stopped while serving")
    assert gc.get_threshold() == default_collector
