"""Limits that hold across processes: token buckets and counting semaphores.

With ``REDIS_URL`` set they live in Redis (``redis_scripts``: a few lines of Lua, atomic,
on Redis's clock) and every bot replica and worker shares them; without it the
in-process equivalents of ``buckets`` keep today's per-process behaviour. redis is
imported only when it is configured, so the embedded mode runs without the ``scale``
extra.
"""

from lumigram.limits.buckets import (
    Limit,
    LimiterUnavailableError,
    LocalRateBuckets,
    RateBuckets,
    take_tokens,
)
from lumigram.limits.slots import RateLimitedSlots, RedisProviderSlots, build_provider_slots

__all__ = [
    "Limit",
    "LimiterUnavailableError",
    "LocalRateBuckets",
    "RateBuckets",
    "RateLimitedSlots",
    "RedisProviderSlots",
    "build_provider_slots",
    "take_tokens",
]
