"""The Redis stream dispatcher (taskiq-redis RedisStreamBroker) against a real Redis."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from redis.asyncio import Redis

from lumigram.queue.stream import GROUP, StreamQueue
from lumigram.startup import StartupError


async def wait_until(condition, timeout: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_each_job_id_goes_to_one_of_several_workers(redis_url: str) -> None:
    sender = StreamQueue(redis_url)
    workers = [StreamQueue(redis_url, concurrency=4) for _ in range(3)]
    seen: list[Counter[int]] = [Counter() for _ in workers]
    for worker, counts in zip(workers, seen, strict=True):

        async def step(job_id: int, counts: Counter[int] = counts) -> None:
            counts[job_id] += 1
            await asyncio.sleep(0.01)

        await worker.open()
        worker.start(step)
    try:
        await sender.open()
        for job_id in range(1, 61):
            await sender.dispatch(job_id)
        await wait_until(lambda: sum(sum(c.values()) for c in seen) >= 60)
        await asyncio.sleep(0.3)  # nothing more arrives
        total = sum(seen, Counter())
        assert total == Counter(range(1, 61)), "every id exactly once"
        assert sum(1 for c in seen if c) >= 2, "the work is shared"
        # Acknowledged entries are trimmed: Redis memory stays bounded.
        async with Redis.from_url(redis_url) as redis:
            assert await redis.xlen(sender.stream) == 60
            await wait_until(lambda: all(not w._running for w in workers))
            removed = await sender.trim()
            assert removed == 60
            assert await redis.xlen(sender.stream) == 0
            pending = await redis.xpending(sender.stream, GROUP)
            assert pending["pending"] == 0
    finally:
        for queue in (*workers, sender):
            await queue.stop(drain_timeout=1)


async def test_a_message_of_a_dead_consumer_is_delivered_again(redis_url: str) -> None:
    sender = StreamQueue(redis_url)
    await sender.open()
    await sender.dispatch(7)
    # A worker reads the message and dies before acknowledging it.
    async with Redis.from_url(redis_url) as redis:
        taken = await redis.xreadgroup(GROUP, "dead-worker", {sender.stream: ">"}, count=10)
        assert len(taken[0][1]) == 1
    got: list[int] = []

    async def step(job_id: int) -> None:
        got.append(job_id)

    survivor = StreamQueue(redis_url, redeliver_after=1.0)
    await survivor.open()
    survivor.start(step)
    try:
        await asyncio.sleep(1.2)
        await sender.dispatch(8)  # taskiq-redis reclaims idle messages after a read
        await wait_until(lambda: sorted(got) == [7, 8])
        # The trim keeps nothing: both are acknowledged now.
        await wait_until(lambda: not survivor._running)
        await sender.trim()
        async with Redis.from_url(redis_url) as redis:
            assert (await redis.xpending(sender.stream, GROUP))["pending"] == 0
    finally:
        await survivor.stop(drain_timeout=1)
        await sender.stop(drain_timeout=1)


async def test_delayed_dispatch_and_a_worker_shutting_down_takes_no_new_steps(
    redis_url: str,
) -> None:
    started = asyncio.Event()
    release = asyncio.Event()
    got: list[int] = []

    async def slow(job_id: int) -> None:
        started.set()
        await release.wait()
        got.append(job_id)

    leaving = StreamQueue(redis_url, concurrency=1)
    await leaving.open()
    leaving.start(slow)
    await leaving.dispatch(1, delay=0.2)
    await asyncio.wait_for(started.wait(), 10)
    stopping = asyncio.create_task(leaving.stop(drain_timeout=0.5))
    await asyncio.sleep(0.1)
    await leaving.dispatch(2)  # a process shutting down sends nothing new
    await stopping
    assert got == []  # the running step was stopped after the grace

    taken: list[int] = []

    async def quick(job_id: int) -> None:
        taken.append(job_id)

    other = StreamQueue(redis_url)
    await other.open()
    other.start(quick)
    try:
        await other.dispatch(3)
        await wait_until(lambda: 3 in taken)
        assert 2 not in taken
    finally:
        await other.stop(drain_timeout=1)


async def test_unreachable_redis_is_one_line_naming_redis_url() -> None:
    queue = StreamQueue("redis://:secret-password@127.0.0.1:1/0")
    with pytest.raises(StartupError) as caught:
        await queue.open()
    message = str(caught.value)
    assert "REDIS_URL" in message
    assert "127.0.0.1:1" in message
    assert "secret-password" not in message
    assert "\n" not in message
