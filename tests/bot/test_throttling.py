from __future__ import annotations

from lumigram.bot.middlewares.throttling import TokenBuckets


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_refill_and_one_notice_per_overflow() -> None:
    clock = Clock()
    buckets = TokenBuckets(rate=1.0, burst=3, clock=clock)
    assert [buckets.take(1) for _ in range(3)] == [(True, False)] * 3
    assert buckets.take(1) == (False, True)  # first excess: notify
    assert buckets.take(1) == (False, False)  # further excess: silent
    assert buckets.take(2) == (True, False)  # other users unaffected
    clock.now += 1.0
    assert buckets.take(1) == (True, False)
    clock.now += 0.1
    assert buckets.take(1) == (False, False)  # still in the same overflow: no second notice
    clock.now += 5.0
    assert buckets.take(1) == (True, False)
    assert buckets.take(1) == (True, False)
    assert buckets.take(1) == (True, False)
    assert buckets.take(1) == (False, True)  # a new overflow after calming down: notify again
