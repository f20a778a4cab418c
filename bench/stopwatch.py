"""Timing a block in a benchmark: wall clock, this process's CPU time and the garbage collector's share."""

import gc
import time
from collections.abc import Mapping
from typing import Any

Reading = tuple[float, float, float]
"""Wall clock, CPU and garbage collection seconds."""


class Stopwatch:
    """Wall clock, this process's CPU time and the wall clock spent in garbage collection (measured with
    ``gc.callbacks``, no profiler) while the block runs; ``reading`` after it."""

    def __init__(self) -> None:
        self.reading: Reading = (0.0, 0.0, 0.0)
        self._collecting = 0.0
        self._collection_started = 0.0

    def _on_collection(self, phase: str, info: Mapping[str, Any]) -> None:
        if phase == "start":
            self._collection_started = time.perf_counter()
        else:
            self._collecting += time.perf_counter() - self._collection_started

    def __enter__(self) -> "Stopwatch":
        gc.callbacks.append(self._on_collection)
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *_: object) -> None:
        wall, cpu = time.perf_counter() - self._wall, time.process_time() - self._cpu
        gc.callbacks.remove(self._on_collection)
        self.reading = (wall, cpu, self._collecting)
