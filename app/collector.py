"""The garbage collector held off while a stretch of code builds and drops many short-lived objects.

Checking the audit chain makes dozens of dicts and lists per record and drops each batch before the next:
reference counting frees all of it (JSON documents hold no cycles), yet the collector, counting only
allocations, would run again and again over the batch still in hand, for about a third of the time
(bench/RESULTS.md).
"""

import gc
from collections.abc import Iterator
from contextlib import contextmanager


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
