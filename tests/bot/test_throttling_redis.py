"""Per-user throttling shared by bot replicas through Redis (RedisTokenBuckets)."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest
from aiogram import Bot
from aiogram.types import Message, Update
from aiogram.types import User as TelegramUser
from redis.asyncio import Redis

from lumigram.bot.i18n import build_i18n
from lumigram.bot.middlewares.throttling import (
    RedisTokenBuckets,
    ThrottlingMiddleware,
    TokenBuckets,
    build_user_buckets,
)
from lumigram.bot.session import build_session
from lumigram.config import Settings
from lumigram.emulator import FloodLimits, TelegramEmulator
from lumigram.limits.redis_scripts import open_redis
from tests.conftest import VALID_TOKEN


@pytest.fixture
def replicas(redis_clients: list[Redis]) -> list[Redis]:
    """Two bot replicas' clients."""
    return redis_clients[:2]


async def test_two_replicas_share_the_bucket_and_the_notice(replicas: list[Redis]) -> None:
    a, b = (RedisTokenBuckets(client, rate=1.0, burst=3) for client in replicas)
    assert [await a.take(1), await b.take(1), await a.take(1)] == [(True, False)] * 3
    assert await b.take(1) == (False, True)  # first excess, on either replica: notify
    assert await a.take(1) == (False, False)  # further excess: silent everywhere
    assert await b.take(2) == (True, False)  # other users unaffected
    await asyncio.sleep(1.1)
    assert await a.take(1) == (True, False)  # one token back
    assert await b.take(1) == (False, False)  # still the same overflow: no second notice
    await asyncio.sleep(2.2)  # calmed down: at least two tokens
    assert await a.take(1) == (True, False)
    assert await b.take(1) == (True, False)
    while (taken := await a.take(1))[0]:
        pass
    assert taken == (False, True)  # a new overflow after calming down: notify again
    # The state goes away once the bucket would be full again.
    assert 0 < await replicas[0].pttl("lumigram:limits:user:1") <= 5000


async def test_throttling_lets_updates_through_when_redis_is_down() -> None:
    dead = open_redis("redis://127.0.0.1:1/0")
    try:
        buckets = RedisTokenBuckets(dead, rate=1.0, burst=1)
        assert [await buckets.take(1) for _ in range(3)] == [(True, False)] * 3
    finally:
        await dead.aclose()


async def test_build_user_buckets(replicas: list[Redis]) -> None:
    settings = Settings(bot_token=VALID_TOKEN, throttle_rate=3.0, throttle_burst=7)
    local = build_user_buckets(settings)
    assert isinstance(local, TokenBuckets)
    assert (local.rate, local.burst) == (3.0, 7)
    shared = build_user_buckets(settings, replicas[0])
    assert isinstance(shared, RedisTokenBuckets)
    assert (shared.rate, shared.burst) == (3.0, 7)


async def test_middlewares_of_two_replicas_throttle_one_user_once(replicas: list[Redis]) -> None:
    emulator = TelegramEmulator(flood=FloodLimits.disabled())
    await emulator.start(host="127.0.0.1", port=0)
    token = emulator.create_bot(username="throttle_bot", first_name="T")
    user = emulator.user(4242)
    bot = Bot(token, session=build_session(emulator.base_url))
    i18n = build_i18n("en")
    middlewares = [
        ThrottlingMiddleware(RedisTokenBuckets(client, rate=0.5, burst=2), i18n)
        for client in replicas
    ]
    handled: list[int] = []

    async def handler(event: Any, data: dict[str, Any]) -> None:
        handled.append(event.update_id)

    sender = TelegramUser(id=4242, is_bot=False, first_name="U", language_code="en")
    try:
        for update_id in range(5):  # alternately on each replica, as a load balancer would
            message = Message(
                message_id=update_id + 1,
                date=dt.datetime.now(dt.UTC),
                chat={"id": 4242, "type": "private"},  # type: ignore[arg-type]
                from_user=sender,
                text="/start",
            ).as_(bot)
            update = Update(update_id=update_id, message=message)
            middleware = middlewares[update_id % 2]
            await middleware(handler, update, {"event_from_user": sender})
    finally:
        await bot.session.close()
        await emulator.stop()
    assert handled == [0, 1]
    assert [m.text for m in user.bot_messages] == ["⏳ Too many requests. Please wait a moment."]
