"""The limits in Redis: a token bucket and a counting semaphore with expiry, in Lua.

Each script runs atomically on the Redis server and reads the time with ``TIME``, so
every process shares one clock and one state. redis-py has a ``Lock`` but no counting
semaphore, and no maintained asyncio library offers one, hence these few lines.

* ``TAKE``: token buckets (a hash per bucket: tokens and the time they were counted).
  It refills each bucket by the elapsed time, then takes ``cost`` tokens from *all* the
  buckets given, or none and answers the milliseconds to wait.
* ``THROTTLE``: one bucket, one token, never waits: ``{allowed, notify}``, where notify
  is 1 once per overflow (the per-user throttling of the bot).
* ``ACQUIRE`` / ``RENEW``: a sorted set of holder ids scored by their expiry time. A
  holder is admitted when fewer than ``cap`` unexpired holders remain; it renews while it
  holds and removes itself at the end (``ZREM``: safe twice). A holder whose process
  died stops renewing and drops out once its expiry passes.

redis itself is imported only inside functions (and for type checking): a plain
``pip install lumigram`` without the ``scale`` extra never loads it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from lumigram.limits.buckets import Limit, LimiterUnavailableError

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger(__name__)

T = TypeVar("T")

# Time in microseconds: exact in a Lua double (< 2^53), stored with %d.
_NOW = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
"""

TAKE = (
    _NOW
    + """
-- KEYS: the buckets. ARGV[1]: cost; ARGV[2i], ARGV[2i+1]: rate (tokens/s), burst of KEYS[i].
local cost = tonumber(ARGV[1])
local wait = 0
local left = {}
for i, key in ipairs(KEYS) do
  local rate = tonumber(ARGV[2 * i]) / 1000000
  local burst = tonumber(ARGV[2 * i + 1])
  local need = math.min(cost, burst)
  local state = redis.call('HMGET', key, 'tokens', 'stamp')
  local tokens = tonumber(state[1]) or burst
  local stamp = tonumber(state[2]) or now
  tokens = math.min(burst, tokens + math.max(0, now - stamp) * rate)
  left[i] = tokens - need
  if tokens < need then
    wait = math.max(wait, (need - tokens) / rate)
  end
end
if wait > 0 then
  return math.max(1, math.ceil(wait / 1000))
end
for i, key in ipairs(KEYS) do
  local rate = tonumber(ARGV[2 * i]) / 1000000
  local burst = tonumber(ARGV[2 * i + 1])
  redis.call('HSET', key, 'tokens', string.format('%.17g', left[i]),
             'stamp', string.format('%d', now))
  -- Once full again the bucket is the same as no bucket: let it go.
  redis.call('PEXPIRE', key, math.ceil((burst - left[i]) / rate / 1000) + 1000)
end
return 0
"""
)

THROTTLE = (
    _NOW
    + """
-- KEYS[1]: the bucket. ARGV[1]: rate (tokens/s), ARGV[2]: burst. Returns {allowed, notify}.
local rate = tonumber(ARGV[1]) / 1000000
local burst = tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'stamp', 'notified')
local tokens = tonumber(state[1]) or burst
local stamp = tonumber(state[2]) or now
local notified = tonumber(state[3]) or 0
tokens = math.min(burst, tokens + math.max(0, now - stamp) * rate)
local allowed, notify = 0, 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
  if tokens >= 1 then notified = 0 end
else
  if notified == 0 then notify = 1 end
  notified = 1
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens),
           'stamp', string.format('%d', now), 'notified', notified)
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate / 1000) + 1000)
return {allowed, notify}
"""
)

ACQUIRE = (
    _NOW
    + """
-- KEYS[1]: the holders (score: expiry, ms). ARGV: holder id, cap, ttl (ms). Returns 1 or 0.
local now_ms = math.floor(now / 1000)
local ttl = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms)
if not redis.call('ZSCORE', KEYS[1], ARGV[1])
   and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], now_ms + ttl, ARGV[1])
redis.call('PEXPIRE', KEYS[1], ttl)
return 1
"""
)

RENEW = (
    _NOW
    + """
-- KEYS[1]: the holders. ARGV: holder id, ttl (ms). Returns 1, or 0 when the slot was lost.
-- Still listed means nobody was admitted in its place (admission drops the expired first).
local now_ms = math.floor(now / 1000)
local ttl = tonumber(ARGV[2])
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  return 0
end
redis.call('ZADD', KEYS[1], now_ms + ttl, ARGV[1])
redis.call('PEXPIRE', KEYS[1], ttl)
return 1
"""
)


def open_redis(url: str) -> Redis:
    """A client for ``REDIS_URL`` (connections are made on first use)."""
    try:
        from redis.asyncio import Redis
    except ImportError:  # depends on the installed extras
        from lumigram.startup import StartupError

        raise StartupError(
            "REDIS_URL is set but redis is not installed: pip install 'lumigram[scale]'"
        ) from None
    return Redis.from_url(
        url, socket_timeout=10.0, socket_connect_timeout=10.0, health_check_interval=30
    )


async def _ask(call: Callable[[], Awaitable[T]]) -> T:
    """Run a Redis call; a connection problem becomes ``LimiterUnavailableError``."""
    from redis.exceptions import RedisError

    try:
        return await call()
    except (RedisError, OSError) as exc:
        raise LimiterUnavailableError(f"Redis: {exc}") from exc


class RedisRateBuckets:
    """``RateBuckets`` shared by every process using this Redis."""

    def __init__(self, redis: Redis) -> None:
        self._take = redis.register_script(TAKE)

    async def try_take(self, limits: Sequence[Limit], cost: float = 1.0) -> float:
        args: list[float] = [cost]
        for limit in limits:
            args += [limit.rate, limit.burst]
        keys = [limit.key for limit in limits]
        wait_ms = await _ask(lambda: self._call(keys, args))
        return int(wait_ms) / 1000.0

    async def _call(self, keys: list[str], args: list[float]) -> Any:
        return await self._take(keys=keys, args=[repr(float(a)) for a in args])


class RedisThrottle:
    """One token per call, never waiting: ``(allowed, notify)`` as ``THROTTLE`` answers."""

    def __init__(self, redis: Redis) -> None:
        self._script = redis.register_script(THROTTLE)

    async def take(self, key: str, rate: float, burst: int) -> tuple[bool, bool]:
        async def call() -> Any:
            return await self._script(keys=[key], args=[repr(float(rate)), str(burst)])

        allowed, notify = await _ask(call)
        return bool(int(allowed)), bool(int(notify))


class RedisSemaphore:
    """At most ``cap`` holders of ``key`` at once, across every process using this Redis.

    Waiting is polling with jittered backoff (``poll_min`` doubling up to ``poll_max``):
    there is no queue, so the order of admission is not first come, first served.
    """

    def __init__(
        self,
        redis: Redis,
        key: str,
        cap: int,
        *,
        ttl: float = 60.0,
        renew_every: float = 15.0,
        poll_min: float = 0.02,
        poll_max: float = 0.5,
    ) -> None:
        if cap < 1 or renew_every >= ttl:
            raise ValueError("cap must be >= 1 and renew_every shorter than ttl")
        self.key = key
        self.cap = cap
        self.ttl = ttl
        self.renew_every = renew_every
        self._poll = (poll_min, poll_max)
        self._acquire = redis.register_script(ACQUIRE)
        self._renew = redis.register_script(RENEW)
        self._redis = redis

    @property
    def _ttl_ms(self) -> str:
        return str(max(1, round(self.ttl * 1000)))

    async def try_acquire(self, holder: str) -> bool:
        async def call() -> Any:
            return await self._acquire(keys=[self.key], args=[holder, str(self.cap), self._ttl_ms])

        return bool(int(await _ask(call)))

    async def acquire(self, holder: str) -> None:
        delay = self._poll[0]
        while not await self.try_acquire(holder):
            await asyncio.sleep(delay * (0.5 + random.random() / 2))  # noqa: S311
            delay = min(delay * 2, self._poll[1])

    async def renew(self, holder: str) -> bool:
        async def call() -> Any:
            return await self._renew(keys=[self.key], args=[holder, self._ttl_ms])

        return bool(int(await _ask(call)))

    async def release(self, holder: str) -> None:
        await _ask(lambda: self._redis.zrem(self.key, holder))

    async def holders(self) -> int:
        """Holders now listed, the expired ones included until someone drops them."""
        return int(await _ask(lambda: self._redis.zcard(self.key)))

    @contextlib.asynccontextmanager
    async def hold(self) -> AsyncIterator[str]:
        """Wait for a place, keep it renewed while the block runs, give it back after."""
        holder = uuid.uuid4().hex
        await self.acquire(holder)
        renewer = asyncio.create_task(self._keep(holder), name=f"renew {self.key}")
        try:
            yield holder
        finally:
            renewer.cancel()
            await asyncio.wait([renewer])
            try:
                await self.release(holder)
            except LimiterUnavailableError as exc:  # it expires by itself
                log.warning(
                    "could not release %s (%s): it frees after %s s", self.key, exc, self.ttl
                )

    async def _keep(self, holder: str) -> None:
        while True:
            await asyncio.sleep(self.renew_every)
            try:
                if not await self.renew(holder):
                    log.error(
                        "lost a place in %s (not renewed for %s s): the cap may be exceeded "
                        "until this call ends",
                        self.key,
                        self.ttl,
                    )
                    return
            except LimiterUnavailableError as exc:
                log.warning("could not renew a place in %s: %s", self.key, exc)
