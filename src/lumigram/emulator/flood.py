"""Flood control: token buckets per bot and per chat, as the Bots FAQ describes.

"avoid sending more than one message per second" in a private chat (short bursts are
tolerated), "no more than 20 messages per minute" in a group and "about 30 messages
per second" overall. A request over the limit is answered 429 with ``retry_after``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class FloodLimits:
    """Rates are tokens per second; bursts are bucket sizes. ``enabled=False`` turns
    flood control off."""

    global_per_second: float = 30.0
    global_burst: int = 30
    private_per_second: float = 1.0
    private_burst: int = 3
    group_per_minute: float = 20.0
    group_burst: int = 20
    count_edits: bool = True
    enabled: bool = True

    @classmethod
    def disabled(cls) -> FloodLimits:
        return cls(enabled=False)

    @classmethod
    def unlimited(cls) -> FloodLimits:
        return cls.disabled()


class TokenBucket:
    def __init__(self, rate: float, capacity: float, clock: Callable[[], float]) -> None:
        self.rate = rate
        self.capacity = max(capacity, 1.0)
        self._clock = clock
        self._tokens = self.capacity
        self._stamp = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def wait_time(self, cost: float = 1.0) -> float:
        """Seconds until ``cost`` tokens are available (0 if they are now)."""
        self._refill()
        missing = min(cost, self.capacity) - self._tokens
        if missing <= 0:
            return 0.0
        return math.inf if self.rate <= 0 else missing / self.rate

    def take(self, cost: float = 1.0) -> None:
        self._refill()
        self._tokens -= min(cost, self.capacity)


class FloodControl:
    """Decides whether a bot may send ``cost`` messages to a chat right now."""

    def __init__(self, limits: FloodLimits, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.limits = limits
        self._buckets: dict[tuple[int, int | None], TokenBucket] = {}

    def reset(self, limits: FloodLimits) -> None:
        self.limits = limits
        self._buckets.clear()

    def _bucket(self, bot_id: int, chat_id: int | None, chat_type: str) -> TokenBucket:
        key = (bot_id, chat_id)
        bucket = self._buckets.get(key)
        if bucket is None:
            limits = self.limits
            if chat_id is None:
                bucket = TokenBucket(limits.global_per_second, limits.global_burst, self._clock)
            elif chat_type == "private":
                bucket = TokenBucket(limits.private_per_second, limits.private_burst, self._clock)
            else:
                bucket = TokenBucket(
                    limits.group_per_minute / 60.0, limits.group_burst, self._clock
                )
            self._buckets[key] = bucket
        return bucket

    def check(
        self, bot_id: int, chat_id: int, chat_type: str, cost: int = 1, *, edit: bool = False
    ) -> int | None:
        """Consume tokens and return None, or return ``retry_after`` seconds (>= 1)."""
        if not self.limits.enabled or (edit and not self.limits.count_edits):
            return None
        buckets = [self._bucket(bot_id, None, ""), self._bucket(bot_id, chat_id, chat_type)]
        wait = max(bucket.wait_time(cost) for bucket in buckets)
        if wait > 0:
            return max(1, math.ceil(wait)) if math.isfinite(wait) else 3600
        for bucket in buckets:
            bucket.take(cost)
        return None
