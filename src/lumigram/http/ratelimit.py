"""Per-key rate limits for the API: a token bucket per API key, in memory.

Each key's bucket holds up to ``burst`` requests and refills at ``per_minute`` a
minute; a request takes one token, and with none left it is refused with 429 and a
``Retry-After`` saying when the next token is there. The buckets live in this process
(one server process per deployment for now; a shared store such as Redis replaces
them when the API scales out).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from lumigram.config import Settings
from lumigram.http.problems import ProblemError, problem_type

# Buckets are dropped once full again (an idle key costs nothing); the sweep for them
# runs when this many keys have buckets.
PRUNE_AT = 10_000


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class RateLimitedError(ProblemError):
    def __init__(self, retry_after: int, per_minute: int, burst: int) -> None:
        super().__init__(
            429,
            f"too many requests with this API key: at most {per_minute} a minute "
            f"(bursts of {burst}); try again in {retry_after} s",
            title="Too many requests",
            type=problem_type("rate-limited"),
            headers={"Retry-After": str(retry_after)},
            retry_after=retry_after,
        )
        self.retry_after = retry_after


class RateLimiter:
    def __init__(
        self, per_minute: int, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if per_minute < 1 or burst < 1:
            raise ValueError("the rate and the burst must be at least 1")
        self.per_minute = per_minute
        self.burst = burst
        self._rate = per_minute / 60.0  # tokens a second
        self._clock = clock
        self._buckets: dict[int, _Bucket] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimiter:
        return cls(settings.api_rate_limit, settings.api_rate_burst)

    def _refilled(self, bucket: _Bucket, now: float) -> float:
        elapsed = max(0.0, now - bucket.updated)
        return min(float(self.burst), bucket.tokens + elapsed * self._rate)

    def try_acquire(self, key: int) -> float:
        """Take a token for ``key``: 0.0 if it was there, else the seconds until one is."""
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= PRUNE_AT:
                self._prune(now)
            bucket = self._buckets[key] = _Bucket(float(self.burst), now)
        bucket.tokens = self._refilled(bucket, now)
        bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self._rate

    def check(self, key: int) -> None:
        """Take a token for ``key`` or raise ``RateLimitedError`` (429 with Retry-After)."""
        wait = self.try_acquire(key)
        if wait > 0:
            raise RateLimitedError(max(1, math.ceil(wait)), self.per_minute, self.burst)

    def _prune(self, now: float) -> None:
        full = [
            key
            for key, bucket in self._buckets.items()
            if self._refilled(bucket, now) >= self.burst
        ]
        for key in full:
            del self._buckets[key]

    def __len__(self) -> int:
        return len(self._buckets)
