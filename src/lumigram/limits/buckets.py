"""Token buckets behind one small interface, in-process or in Redis.

``RateBuckets.try_take`` takes ``cost`` tokens from every bucket it is given, all or
none, or says how long to wait before they could all be there. Taking from several
buckets at once matters: a send must fit the chat's bucket *and* the global one at the
same moment, or a token taken from one goes stale while it waits for the other.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol


class LimiterUnavailableError(Exception):
    """The shared limiter could not be asked (Redis down or unreachable)."""


@dataclass(frozen=True, slots=True)
class Limit:
    """A bucket: ``rate`` tokens a second, holding at most ``burst``."""

    key: str
    rate: float
    burst: float

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1:
            raise ValueError(f"a bucket needs rate > 0 and burst >= 1: {self}")


class RateBuckets(Protocol):
    async def try_take(self, limits: Sequence[Limit], cost: float = 1.0) -> float:
        """Take ``cost`` tokens (at most each bucket's burst) from all of ``limits`` and
        return 0.0, or take nothing and return the seconds to wait before trying again."""
        ...


async def take_tokens(buckets: RateBuckets, limits: Sequence[Limit], cost: float = 1.0) -> float:
    """Wait until the tokens are taken; returns the seconds waited."""
    waited = 0.0
    while True:
        wait = await buckets.try_take(limits, cost)
        if wait <= 0:
            return waited
        await asyncio.sleep(wait)
        waited += wait


@dataclass(slots=True)
class _State:
    tokens: float
    stamp: float
    full_at: float  # from then on the bucket is full again and can be forgotten


class LocalRateBuckets:
    """``RateBuckets`` of one process (no await inside ``try_take``: atomic in asyncio)."""

    SWEEP_EVERY_SECONDS = 300.0

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._states: dict[str, _State] = {}
        self._last_sweep = clock()

    async def try_take(self, limits: Sequence[Limit], cost: float = 1.0) -> float:
        return self.try_take_now(limits, cost)

    def try_take_now(self, limits: Sequence[Limit], cost: float = 1.0) -> float:
        now = self._clock()
        self._sweep(now)
        wait = 0.0
        refilled: list[float] = []
        for limit in limits:
            state = self._states.get(limit.key)
            tokens = limit.burst if state is None else state.tokens
            stamp = now if state is None else state.stamp
            tokens = min(limit.burst, tokens + max(0.0, now - stamp) * limit.rate)
            need = min(cost, limit.burst)
            refilled.append(tokens - need)
            if tokens < need:
                wait = max(wait, (need - tokens) / limit.rate)
        if wait > 0:
            return max(wait, 0.001)
        for limit, left in zip(limits, refilled, strict=True):
            self._states[limit.key] = _State(left, now, now + (limit.burst - left) / limit.rate)
        return 0.0

    def _sweep(self, now: float) -> None:
        if now - self._last_sweep < self.SWEEP_EVERY_SECONDS:
            return
        self._last_sweep = now
        stale = [key for key, state in self._states.items() if state.full_at <= now]
        for key in stale:
            del self._states[key]
