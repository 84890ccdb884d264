"""The Redis limits against a real redis-server (tests/redis_server.py).

Separate ``Redis`` clients stand for separate processes: they share nothing but Redis.
Timings have generous tolerances (a slow, shared machine); the bounds that matter are
the ones a broken limiter would cross by far (too fast, or more holders than the cap).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from redis.asyncio import Redis

from lumigram.config import Settings
from lumigram.domain.generation import ErrorKind, ProviderError
from lumigram.limits import (
    Limit,
    LocalRateBuckets,
    RateLimitedSlots,
    RedisProviderSlots,
    build_provider_slots,
    take_tokens,
)
from lumigram.limits.redis_scripts import RedisRateBuckets, RedisSemaphore, open_redis
from lumigram.services.worker import LocalProviderSlots
from tests.conftest import VALID_TOKEN


@pytest.fixture
def clients(redis_clients: list[Redis]) -> list[Redis]:
    """Three independent clients: three worker processes."""
    return redis_clients


async def test_token_bucket_burst_then_rate_shared_by_three_clients(clients: list[Redis]) -> None:
    limit = Limit("test:bucket", rate=20.0, burst=5)
    buckets = [RedisRateBuckets(client) for client in clients]
    # The burst is there at once, and then the bucket is empty for everyone.
    assert [await buckets[i % 3].try_take([limit]) for i in range(5)] == [0.0] * 5
    wait = await buckets[2].try_take([limit])
    assert 0 < wait <= 0.06  # one token at 20/s: 50 ms

    taken: list[float] = []

    async def client_loop(bucket: RedisRateBuckets, count: int) -> None:
        for _ in range(count):
            await take_tokens(bucket, [limit])
            taken.append(time.monotonic())

    started = time.monotonic()
    await asyncio.gather(*(client_loop(b, 15) for b in buckets))
    elapsed = time.monotonic() - started
    # 45 tokens at 20/s from an empty bucket: 2.25 s; never faster (Redis's clock decides),
    # and well under what a slow machine could add.
    assert elapsed >= 2.25 * 0.9, elapsed
    assert elapsed < 2.25 + 4.0, elapsed
    # No window of a second ever got more than the rate plus the burst.
    for i, stamp in enumerate(taken):
        assert sum(1 for t in taken[i:] if t - stamp < 1.0) <= 20 + 5


async def test_token_buckets_take_from_all_or_none(clients: list[Redis]) -> None:
    bucket = RedisRateBuckets(clients[0])
    chat = Limit("test:chat", rate=0.5, burst=1)
    overall = Limit("test:overall", rate=0.5, burst=2)
    assert await bucket.try_take([chat, overall]) == 0.0
    # The chat's bucket is empty: nothing is taken from the overall one either.
    for _ in range(3):
        assert await bucket.try_take([chat, overall]) > 1.0
    assert await bucket.try_take([overall]) == 0.0  # its second token is still there
    assert await bucket.try_take([overall]) > 1.0
    # Bucket keys expire once they would be full again.
    assert 0 < await clients[1].pttl("test:chat") <= 3000


async def test_token_bucket_cost_above_the_burst_takes_the_burst(clients: list[Redis]) -> None:
    bucket = RedisRateBuckets(clients[0])
    limit = Limit("test:album", rate=10.0, burst=3)
    assert await bucket.try_take([limit], cost=10) == 0.0  # an album of 10: the whole burst
    assert 0.05 < await bucket.try_take([limit], cost=1) <= 0.11


async def test_semaphore_cap_of_two_holds_across_three_clients(clients: list[Redis]) -> None:
    slots = [RedisProviderSlots(client, concurrency=2) for client in clients]
    inside = 0
    peak = 0
    calls = 0

    async def call(which: RedisProviderSlots) -> None:
        nonlocal inside, peak, calls
        async with which.hold("openai"):
            inside += 1
            peak = max(peak, inside)
            await asyncio.sleep(0.03)
            inside -= 1
            calls += 1

    await asyncio.wait_for(asyncio.gather(*(call(slots[i % 3]) for i in range(30))), timeout=60)
    assert calls == 30
    assert peak == 2  # never more than the cap, and the cap was used
    assert await clients[0].zcard("lumigram:limits:provider:slots:openai") == 0
    # Another provider has its own places.
    async with slots[0].hold("openai"), slots[1].hold("openai"):
        other = slots[2].semaphore("gemini")
        assert await other.try_acquire("probe")
        assert not await slots[2].semaphore("openai").try_acquire("probe")


async def test_a_dead_holder_frees_its_place_after_expiry(clients: list[Redis]) -> None:
    dead = RedisSemaphore(clients[0], "test:slots", 1, ttl=1.0, renew_every=0.3)
    alive = RedisSemaphore(clients[1], "test:slots", 1, ttl=1.0, renew_every=0.3)
    await dead.acquire("dead-worker")  # ... and the process dies: no renewal, no release
    await clients[0].aclose()
    started = time.monotonic()
    assert not await alive.try_acquire("other")
    async with asyncio.timeout(10):
        async with alive.hold():
            waited = time.monotonic() - started
    assert 0.7 <= waited < 5.0, waited


async def test_a_holder_renews_past_the_expiry(clients: list[Redis]) -> None:
    holder = RedisSemaphore(clients[0], "test:slots", 1, ttl=1.0, renew_every=0.25)
    other = RedisSemaphore(clients[1], "test:slots", 1, ttl=1.0, renew_every=0.25)
    async with holder.hold():
        for _ in range(5):  # 2.5 s: well past the 1 s expiry
            await asyncio.sleep(0.5)
            assert not await other.try_acquire("other")
    assert await other.try_acquire("other")


async def test_release_is_safe_twice(clients: list[Redis]) -> None:
    semaphore = RedisSemaphore(clients[0], "test:slots", 2)
    async with semaphore.hold() as holder:
        assert await semaphore.holders() == 1
    await semaphore.release(holder)  # already released by the block
    await semaphore.release(holder)
    assert await semaphore.holders() == 0
    await semaphore.acquire("a")
    await semaphore.acquire("a")  # the same holder again is a renewal, not a second place
    assert await semaphore.holders() == 1
    await semaphore.release("a")
    await semaphore.release("a")
    assert await semaphore.holders() == 0


async def test_redis_provider_slots_rate_limit(clients: list[Redis]) -> None:
    slots = [RedisProviderSlots(client, concurrency=8, rate_per_second=10.0) for client in clients]

    async def call(which: RedisProviderSlots) -> None:
        async with which.hold("replicate"):
            pass

    started = time.monotonic()
    await asyncio.gather(*(call(slots[i % 3]) for i in range(30)))
    elapsed = time.monotonic() - started
    assert elapsed >= (30 - 10) / 10.0 * 0.9, elapsed  # burst of 10, then 10/s
    assert elapsed < 2.0 + 4.0, elapsed


async def test_provider_slots_without_redis_fail_the_call_as_transient() -> None:
    dead = open_redis("redis://127.0.0.1:1/0")
    try:
        slots = RedisProviderSlots(dead, concurrency=2)
        called = False
        with pytest.raises(ProviderError) as caught:
            async with slots.hold("openai"):
                called = True
        assert caught.value.kind is ErrorKind.TRANSIENT
        assert not called  # the provider was not asked: retrying is safe
    finally:
        await dead.aclose()


def _settings(**values: Any) -> Settings:
    return Settings(bot_token=VALID_TOKEN, **values)


async def test_build_provider_slots(clients: list[Redis]) -> None:
    assert isinstance(build_provider_slots(_settings(), None), LocalProviderSlots)
    limited = build_provider_slots(_settings(provider_rate_limit=50.0), None)
    assert isinstance(limited, RateLimitedSlots)
    shared = build_provider_slots(_settings(provider_concurrency=3), clients[0])
    assert isinstance(shared, RedisProviderSlots)
    assert shared.concurrency == 3


async def test_local_rate_limited_slots_keep_the_rate() -> None:
    slots = RateLimitedSlots(LocalProviderSlots(4), LocalRateBuckets(), rate_per_second=20.0)

    async def call() -> None:
        async with slots.hold("demo"):
            pass

    started = time.monotonic()
    await asyncio.gather(*(call() for _ in range(40)))
    elapsed = time.monotonic() - started
    assert elapsed >= (40 - 20) / 20.0 * 0.9, elapsed
    assert elapsed < 1.0 + 4.0, elapsed


def test_local_buckets_all_or_none_with_a_clock() -> None:
    now = [0.0]
    buckets = LocalRateBuckets(clock=lambda: now[0])
    chat = Limit("chat", rate=1.0, burst=2)
    overall = Limit("all", rate=10.0, burst=3)
    assert buckets.try_take_now([chat, overall]) == 0.0
    assert buckets.try_take_now([chat, overall]) == 0.0
    assert buckets.try_take_now([chat, overall]) == pytest.approx(1.0)
    assert buckets.try_take_now([overall]) == 0.0  # its third token was not taken
    assert buckets.try_take_now([overall]) == pytest.approx(0.1)
    now[0] = 0.5
    assert buckets.try_take_now([chat]) == pytest.approx(0.5)
    now[0] = 1.0
    assert buckets.try_take_now([chat, overall]) == 0.0
