"""The garbage collector held off for a block, and set for serving, then left as it was."""

import gc
from collections.abc import Iterator

import pytest

from app.collector import SERVING_THRESHOLD, collector_paused, serving


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
