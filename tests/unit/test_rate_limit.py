"""A token bucket per caller: a burst, then one request per refill interval; memory bounded by max_callers."""

import pytest

from app.api.rate_limit import EVICTION_SCAN, RateLimiter
from app.service.errors import RateLimited


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def refused_for(limiter: RateLimiter, caller: str) -> int:
    with pytest.raises(RateLimited) as refused:
        limiter.check(caller)
    return refused.value.retry_after_s


def test_a_burst_is_allowed_then_refused(clock: FakeClock) -> None:
    limiter = RateLimiter(per_minute=60, burst=3, clock=clock)

    for _ in range(3):
        limiter.check("key-a")

    assert refused_for(limiter, "key-a") == 1


@pytest.mark.parametrize(
    ("per_minute", "elapsed", "retry_after"),
    [
        (60, 0.0, 1),  # a token a second
        (60, 0.25, 1),  # 0.75 s to go: whole seconds, rounded up
        (30, 0.0, 2),  # a token every 2 s
        (30, 1.5, 1),
        (7, 0.0, 9),  # 60/7 = 8.57 s
        (1, 0.0, 60),
        (6000, 0.0, 1),  # 0.01 s to go is still 1 (never 0)
    ],
)
def test_retry_after_is_the_whole_seconds_until_a_token_is_back(
    clock: FakeClock, per_minute: int, elapsed: float, retry_after: int
) -> None:
    limiter = RateLimiter(per_minute=per_minute, burst=1, clock=clock)
    limiter.check("key-a")
    clock.advance(elapsed)

    assert refused_for(limiter, "key-a") == retry_after


@pytest.mark.parametrize("per_minute", [1, 7, 20, 60, 90, 6000])
def test_waiting_the_retry_after_is_enough(clock: FakeClock, per_minute: int) -> None:
    limiter = RateLimiter(per_minute=per_minute, burst=2, clock=clock)
    for _ in range(20):
        try:
            limiter.check("key-a")
        except RateLimited as refused:
            clock.advance(refused.retry_after_s)
            limiter.check("key-a")


def test_the_bucket_refills_over_time_up_to_the_burst(clock: FakeClock) -> None:
    limiter = RateLimiter(per_minute=60, burst=3, clock=clock)
    for _ in range(3):
        limiter.check("key-a")

    clock.advance(1)
    limiter.check("key-a")
    assert refused_for(limiter, "key-a") == 1

    clock.advance(3600)  # refills to the burst, no further
    for _ in range(3):
        limiter.check("key-a")
    assert refused_for(limiter, "key-a") == 1


def test_a_refused_request_takes_no_token(clock: FakeClock) -> None:
    limiter = RateLimiter(per_minute=60, burst=1, clock=clock)
    limiter.check("key-a")
    for _ in range(5):
        refused_for(limiter, "key-a")

    clock.advance(1)
    limiter.check("key-a")


def test_callers_have_their_own_buckets(clock: FakeClock) -> None:
    limiter = RateLimiter(per_minute=60, burst=2, clock=clock)
    limiter.check("key-a")
    limiter.check("key-a")
    refused_for(limiter, "key-a")

    limiter.check("key-b")
    limiter.check("key-b")
    refused_for(limiter, "key-b")


def test_zero_per_minute_turns_the_limit_off(clock: FakeClock) -> None:
    limiter = RateLimiter(per_minute=0, burst=0, clock=clock)
    for caller in range(50_000):
        limiter.check(f"key-{caller % 3}")

    assert limiter.callers_held == 0


def test_idle_callers_are_dropped_to_keep_memory_bounded(clock: FakeClock) -> None:
    limiter = RateLimiter(per_minute=60, burst=5, clock=clock, max_callers=100)
    for caller in range(10_000):
        limiter.check(f"key-{caller}")
        clock.advance(1)  # each bucket is full again a second after its one request

    assert limiter.callers_held == 100


def test_dropping_idle_callers_does_not_reset_a_throttled_one(clock: FakeClock) -> None:
    limiter = RateLimiter(per_minute=60, burst=100, clock=clock, max_callers=10)
    for _ in range(100):
        limiter.check("throttled")
    assert refused_for(limiter, "throttled") == 1

    for caller in range(50):
        limiter.check(f"passer-by-{caller}")  # each full again a second later, and dropped
        clock.advance(0.2)
        assert limiter.callers_held <= 10

    for _ in range(10):  # 10 s later: 10 tokens back, not a fresh burst of 100
        limiter.check("throttled")
    assert refused_for(limiter, "throttled") == 1


def test_a_new_caller_waits_when_every_bucket_is_in_use(clock: FakeClock) -> None:
    limiter = RateLimiter(per_minute=60, burst=2, clock=clock, max_callers=3)
    for caller in ("a", "b", "c"):
        limiter.check(caller)
        limiter.check(caller)  # empty: 2 s to refill

    assert refused_for(limiter, "newcomer") == 2
    assert limiter.callers_held == 3
    for caller in ("a", "b", "c"):
        refused_for(limiter, caller)  # nobody was forgotten

    clock.advance(2)
    limiter.check("newcomer")  # "a", least recently seen and full again, made room
    assert limiter.callers_held == 3


def test_full_buckets_make_room_and_a_busy_one_is_kept(clock: FakeClock) -> None:
    limiter = RateLimiter(per_minute=60, burst=3, clock=clock, max_callers=3)
    limiter.check("old")
    for _ in range(3):
        limiter.check("busy")
    limiter.check("recent")
    clock.advance(1.5)  # "old" and "recent" are full again; "busy" has 1.5 of its 3 tokens

    limiter.check("newcomer")  # "old", the least recently seen, made room
    limiter.check("old")  # and now "recent", behind "busy", which is not full
    assert limiter.callers_held == 3

    limiter.check("busy")
    assert refused_for(limiter, "busy") == 1  # kept its count: a fresh bucket would have had 3 tokens


def test_a_new_caller_looks_at_a_bounded_number_of_buckets(clock: FakeClock) -> None:
    limiter = RateLimiter(per_minute=60, burst=2, clock=clock, max_callers=EVICTION_SCAN + 1)
    for caller in range(EVICTION_SCAN):
        limiter.check(f"busy-{caller}")
        limiter.check(f"busy-{caller}")
    limiter.check("idle")
    clock.advance(1)  # "idle" is full again, but behind EVICTION_SCAN busy buckets

    assert refused_for(limiter, "newcomer") == 1  # when the first busy one will be full


@pytest.mark.parametrize(("per_minute", "burst", "max_callers"), [(-1, 1, 10), (60, 0, 10), (60, 1, 0)])
def test_a_nonsensical_configuration_is_refused(per_minute: int, burst: int, max_callers: int) -> None:
    with pytest.raises(ValueError, match="must be"):
        RateLimiter(per_minute=per_minute, burst=burst, max_callers=max_callers)
