"""Provider slots (``services.ports.ProviderSlots``): how many calls a provider takes at
once and how fast, across every worker process when Redis is configured.

A call first waits for a place (``PROVIDER_CONCURRENCY`` per provider) and then, holding
it, for a token of the provider's bucket when ``PROVIDER_RATE_LIMIT`` > 0 (the burst is
a second's worth of calls, at least one). Taking the token last means it is never spent
on a call that then waits for a place.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from lumigram.config import Settings
from lumigram.domain.generation import ErrorKind, ProviderError
from lumigram.limits.buckets import (
    Limit,
    LimiterUnavailableError,
    LocalRateBuckets,
    RateBuckets,
    take_tokens,
)
from lumigram.limits.redis_scripts import RedisRateBuckets, RedisSemaphore
from lumigram.services.ports import ProviderSlots
from lumigram.services.worker import LocalProviderSlots

if TYPE_CHECKING:
    from redis.asyncio import Redis

PREFIX = "lumigram:limits:provider"


def provider_rate_limit(provider: str, rate_per_second: float) -> Limit:
    burst = max(1.0, float(math.floor(rate_per_second)))
    return Limit(f"{PREFIX}:rate:{provider}", rate_per_second, burst)


class RateLimitedSlots:
    """Another ``ProviderSlots`` plus a token bucket per provider."""

    def __init__(self, inner: ProviderSlots, buckets: RateBuckets, rate_per_second: float):
        if rate_per_second <= 0:
            raise ValueError("rate_per_second must be > 0")
        self._inner = inner
        self._buckets = buckets
        self.rate_per_second = rate_per_second

    @contextlib.asynccontextmanager
    async def hold(self, provider: str) -> AsyncIterator[None]:
        async with self._inner.hold(provider):
            await take_tokens(self._buckets, [provider_rate_limit(provider, self.rate_per_second)])
            yield


class RedisProviderSlots:
    """At most ``concurrency`` calls per provider across all processes (a Redis semaphore
    per provider), and at most ``rate_per_second`` calls a second when it is > 0.

    A worker that dies mid-call holds its place until ``ttl`` passes (renewed every
    ``renew_every`` seconds while the call runs)."""

    def __init__(
        self,
        redis: Redis,
        concurrency: int,
        rate_per_second: float = 0.0,
        *,
        ttl: float = 60.0,
        renew_every: float = 15.0,
    ) -> None:
        self._redis = redis
        self.concurrency = concurrency
        self.rate_per_second = rate_per_second
        self._ttl = ttl
        self._renew_every = renew_every
        self._semaphores: dict[str, RedisSemaphore] = {}
        self._buckets = RedisRateBuckets(redis)

    def semaphore(self, provider: str) -> RedisSemaphore:
        semaphore = self._semaphores.get(provider)
        if semaphore is None:
            semaphore = self._semaphores[provider] = RedisSemaphore(
                self._redis,
                f"{PREFIX}:slots:{provider}",
                self.concurrency,
                ttl=self._ttl,
                renew_every=self._renew_every,
            )
        return semaphore

    @contextlib.asynccontextmanager
    async def hold(self, provider: str) -> AsyncIterator[None]:
        """Without Redis the call is not made: a transient failure, retried later (the
        provider has not been asked, so trying again is safe)."""
        async with contextlib.AsyncExitStack() as stack:
            try:
                await stack.enter_async_context(self.semaphore(provider).hold())
                if self.rate_per_second > 0:
                    limit = provider_rate_limit(provider, self.rate_per_second)
                    await take_tokens(self._buckets, [limit])
            except LimiterUnavailableError as exc:
                raise ProviderError(
                    ErrorKind.TRANSIENT, f"provider slots for {provider} unavailable: {exc}"
                ) from exc
            yield


def build_provider_slots(settings: Settings, redis: Redis | None) -> ProviderSlots:
    """Shared slots with Redis; otherwise this process's, rate-limited when asked."""
    if redis is not None:
        return RedisProviderSlots(
            redis, settings.provider_concurrency, settings.provider_rate_limit
        )
    local = LocalProviderSlots(settings.provider_concurrency)
    if settings.provider_rate_limit > 0:
        return RateLimitedSlots(local, LocalRateBuckets(), settings.provider_rate_limit)
    return local
