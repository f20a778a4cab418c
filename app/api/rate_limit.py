"""A request allowance per caller: a token bucket each, in memory, for one process.

Each caller's bucket holds up to ``burst`` tokens and refills at ``per_minute / 60`` tokens a second; a
request takes one, and a request that finds less than one is refused with the whole seconds until one is
back.

At most ``max_callers`` buckets are held, in the order their callers were last seen. To make room for a
new caller, the least recently seen full bucket is dropped: a full bucket is what a new caller gets, so
nothing is forgotten. A bucket that is not full is never dropped, since that would hand its caller a fresh
burst; when none of the least recently seen ``EVICTION_SCAN`` buckets is full, the new caller waits until
one of them is. That takes more than ``max_callers`` callers busy at once, each well within its allowance.

``check`` takes no lock: call it on the event loop (from an ``async def`` dependency, never a plain ``def``
one, which FastAPI runs in a thread pool), where it runs to completion. With several worker processes each
has its own buckets, and a caller's limit is in effect ``per_minute`` times the number of workers.
"""

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from itertools import islice

from app.service.errors import RateLimited

_ROUNDING = 1e-9
"""Float tolerance, in tokens: a caller that waits exactly the Retry-After it was given is let in."""

EVICTION_SCAN = 64
"""How many of the least recently seen buckets a new caller's check looks through for a full one to drop:
a bound that keeps ``check`` O(1)."""


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float
    """When ``tokens`` was counted, by the limiter's clock."""


class RateLimiter:
    """``check(caller)`` before serving a caller; ``per_minute=0`` turns the limit off."""

    def __init__(
        self,
        per_minute: int,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        max_callers: int = 10_000,
    ) -> None:
        if per_minute < 0:
            raise ValueError("per_minute must be 0 (no limit) or more")
        if per_minute and burst < 1:
            raise ValueError("burst must be at least 1")
        if max_callers < 1:
            raise ValueError("max_callers must be at least 1")
        self.per_minute = per_minute
        self.burst = burst
        self.max_callers = max_callers
        self._per_second = per_minute / 60
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    @property
    def callers_held(self) -> int:
        """How many callers' buckets are held (at most ``max_callers``)."""
        return len(self._buckets)

    def check(self, caller: str) -> None:
        """Take one token from ``caller``'s bucket, or raise ``RateLimited`` with the seconds to wait."""
        if not self.per_minute:
            return
        now = self._clock()
        bucket = self._buckets.get(caller)
        if bucket is None:
            self._make_room(now)
            bucket = self._buckets[caller] = _Bucket(float(self.burst), now)
        else:
            self._buckets.move_to_end(caller)
        bucket.tokens, bucket.at = self._tokens(bucket, now), now
        if bucket.tokens + _ROUNDING < 1:
            raise RateLimited(self._seconds_until(1 - bucket.tokens))
        bucket.tokens -= 1

    def _tokens(self, bucket: _Bucket, now: float) -> float:
        return min(float(self.burst), bucket.tokens + max(now - bucket.at, 0.0) * self._per_second)

    def _make_room(self, now: float) -> None:
        """At capacity, drop the least recently seen full bucket, or refuse the new caller until one of those
        looked at is full again."""
        if len(self._buckets) < self.max_callers:
            return
        soonest = math.inf
        for caller, bucket in islice(self._buckets.items(), EVICTION_SCAN):
            missing = self.burst - self._tokens(bucket, now)
            if missing <= _ROUNDING:
                del self._buckets[caller]  # and the loop ends: the changed dict is not iterated on
                return
            soonest = min(soonest, missing)
        raise RateLimited(self._seconds_until(soonest))

    def _seconds_until(self, tokens: float) -> int:
        return max(1, math.ceil(tokens / self._per_second - _ROUNDING))
