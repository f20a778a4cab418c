"""The garbage collector: held off while a stretch of code builds and drops many short-lived objects, and
set for serving.

Checking the audit chain makes dozens of dicts and lists per record: reference counting frees all of it
(JSON documents hold no cycles), yet the collector, counting only allocations, ran again and again over
the records still in hand, for up to a third of the time (bench/RESULTS.md). The rows of a batch are read
with the collector paused, and each record is made and dropped before the next (app/store/
chain_reader.py).

A batch request keeps each chunk's items alive across its awaits until they are answered, and frees them
at its end: the collector is held off for the whole request (``collector_held``).

Serving is the same on a smaller scale: the requests under way hold their objects for a few milliseconds,
and deciding makes no cyclic garbage (none was found under load). With CPython's default threshold (a young
collection every 700 allocations net of frees) the collector scanned the live requests' objects over and
over: 7-12% of a decision's CPU at 64 requests under way. Serving raises the threshold to
``SERVING_THRESHOLD``; a young collection then pauses for 5-9 ms on a slow host (bench/RESULTS.md,
2026-12-03 late).
"""

import gc
from collections.abc import Iterator
from contextlib import contextmanager

SERVING_THRESHOLD = 10_000
"""Allocations of tracked objects, net of frees, between two young collections while serving (CPython's
default: 700). Higher saves little more CPU and makes each collection's pause longer."""


@contextmanager
def collector_paused() -> Iterator[None]:
    """The collector off for the block, then as it was.

    Only around code that never suspends (no ``await`` that can wait): in an event loop nothing else runs
    meanwhile, so no other task's garbage waits on it, and blocks cannot interleave (an inner block finds
    the collector off and leaves it so).
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


_held = 0
"""How many ``collector_held`` stretches are under way (they may overlap)."""
_enabled_before_held = False


@contextmanager
def collector_held() -> Iterator[None]:
    """The collector off for a stretch that suspends (a batch request), then as it was once the last such
    stretch under way has ended.

    For a stretch that keeps many objects alive across its awaits and frees them all at its end by
    reference counting: the collector, counting only allocations, would otherwise scan them again and
    again as the stretch goes on (a tenth of a large batch's time, bench/RESULTS.md). Other tasks run
    meanwhile, and their cyclic garbage waits for the stretch's end; the service makes none while serving
    (none was found under load), and a stretch is bounded by the work it was given.
    """
    global _held, _enabled_before_held
    if _held == 0:
        _enabled_before_held = gc.isenabled()
        gc.disable()
    _held += 1
    try:
        yield
    finally:
        _held -= 1
        if _held == 0 and _enabled_before_held:
            gc.enable()


@contextmanager
def serving() -> Iterator[None]:
    """The collector set for serving for the block, then as it was: the objects alive now (start-up's:
    modules, classifiers, the application) frozen out of every later scan for good, and young collections
    less often (``SERVING_THRESHOLD``)."""
    gc.freeze()
    threshold = gc.get_threshold()
    gc.set_threshold(SERVING_THRESHOLD, *threshold[1:])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
