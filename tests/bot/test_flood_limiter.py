"""Outgoing Bot API calls under Telegram's flood limits, against the emulator's flood
control (which answers 429 like Telegram).

Several aiogram ``Bot`` objects with the same token stand for several processes of one
bot; with Redis each has its own client, sharing nothing but the Redis server. Each
"with the limiter, no 429" test has a twin that sends the same burst without it and
does get 429s, so the emulator really would have caught a limiter that let too much out.
"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramBadRequest, TelegramRetryAfter
from aiogram.methods import (
    AnswerPreCheckoutQuery,
    CopyMessages,
    EditForumTopic,
    EditMessageText,
    GetUpdates,
    SendChatAction,
    SendMediaGroup,
    SendMessage,
)
from aiogram.types import BufferedInputFile, InputMediaPhoto
from PIL import Image
from redis.asyncio import Redis

from lumigram.bot.session import (
    FloodLimitMiddleware,
    build_flood_limiter,
    build_session,
    flood_cost,
)
from lumigram.config import Settings
from lumigram.emulator import FloodLimits, TelegramEmulator
from lumigram.limits.redis_scripts import open_redis
from tests.conftest import VALID_TOKEN

# Telegram's own numbers (the emulator's defaults), and the settings' defaults to match.
TELEGRAM = FloodLimits()


def settings(**values: Any) -> Settings:
    return Settings(bot_token=VALID_TOKEN, **values)


@pytest.fixture
async def emulator() -> AsyncIterator[TelegramEmulator]:
    emu = TelegramEmulator(flood=TELEGRAM)
    await emu.start(host="127.0.0.1", port=0)
    yield emu
    await emu.stop()


@pytest.fixture
def token(emulator: TelegramEmulator) -> str:
    return emulator.create_bot(username="flood_bot", first_name="Flood")


class Bots:
    """Bot objects to close at the end."""

    def __init__(self) -> None:
        self.made: list[Bot] = []

    def limited(self, emu: TelegramEmulator, token: str, flood: FloodLimitMiddleware) -> Bot:
        bot = Bot(token, session=build_session(emu.base_url, flood=flood))
        self.made.append(bot)
        return bot

    def plain(self, emu: TelegramEmulator, token: str) -> Bot:
        """No limiter and no retries: every 429 surfaces."""
        bot = Bot(token, session=AiohttpSession(api=TelegramAPIServer.from_base(emu.base_url)))
        self.made.append(bot)
        return bot


@pytest.fixture
async def bots() -> AsyncIterator[Bots]:
    made = Bots()
    yield made
    for bot in made.made:
        await bot.session.close()


def throttled(emu: TelegramEmulator) -> list[Any]:
    return [e for e in emu.errors if e.status == 429]


async def burst(sends: Sequence[tuple[Bot, int | str]], text: str = "hi") -> list[Any]:
    """Every (bot, chat) sends at once; results or exceptions."""
    return await asyncio.gather(
        *(bot.send_message(chat, f"{text} {i}") for i, (bot, chat) in enumerate(sends)),
        return_exceptions=True,
    )


# -- shared by processes (Redis) -----------------------------------------------------------


async def test_three_processes_one_chat_no_429(
    emulator: TelegramEmulator, token: str, redis_clients: list[Redis], bots: Bots
) -> None:
    processes = [
        bots.limited(emulator, token, build_flood_limiter(settings(), r)) for r in redis_clients
    ]
    user = emulator.user(900)
    started = time.monotonic()
    results = await burst([(bot, user.id) for bot in processes for _ in range(2)])
    elapsed = time.monotonic() - started
    assert not [r for r in results if isinstance(r, BaseException)], results
    assert throttled(emulator) == []
    assert len(user.bot_messages) == 6
    # A burst of 3, then the other 3 at 85 % of 1/s: about 3.5 s.
    assert elapsed >= 3.0, elapsed


async def test_three_processes_one_chat_without_the_limiter_get_429(
    emulator: TelegramEmulator, token: str, bots: Bots
) -> None:
    processes = [bots.plain(emulator, token) for _ in range(3)]
    user = emulator.user(900)
    results = await burst([(bot, user.id) for bot in processes for _ in range(2)])
    assert any(isinstance(r, TelegramRetryAfter) for r in results)
    assert throttled(emulator)


async def test_three_processes_many_chats_no_429(
    emulator: TelegramEmulator, token: str, redis_clients: list[Redis], bots: Bots
) -> None:
    processes = [
        bots.limited(emulator, token, build_flood_limiter(settings(), r)) for r in redis_clients
    ]
    chats = [emulator.user(3000 + i).id for i in range(20)]
    started = time.monotonic()
    # 60 messages, 3 per chat (its burst): the bot's 30/s overall is what holds them back.
    results = await burst([(bot, chat) for chat in chats for bot in processes])
    elapsed = time.monotonic() - started
    assert not [r for r in results if isinstance(r, BaseException)], results
    assert throttled(emulator) == []
    assert len(emulator.calls("sendMessage")) == 60
    assert elapsed >= 1.2, elapsed  # (60 - 15) at 25.5/s: about 1.8 s


async def test_three_processes_many_chats_without_the_limiter_get_429(
    emulator: TelegramEmulator, token: str, bots: Bots
) -> None:
    processes = [bots.plain(emulator, token) for _ in range(3)]
    chats = [emulator.user(3000 + i).id for i in range(20)]
    results = await burst([(bot, chat) for chat in chats for bot in processes])
    assert any(isinstance(r, TelegramRetryAfter) for r in results)
    assert throttled(emulator)


async def test_shared_limiter_survives_redis_going_away(
    emulator: TelegramEmulator, token: str, bots: Bots
) -> None:
    # Nothing listens there: messages go out unlimited (with a warning), not stuck.
    dead = open_redis("redis://127.0.0.1:1/0")
    try:
        bot = bots.limited(emulator, token, build_flood_limiter(settings(), dead))
        async with asyncio.timeout(30):
            await bot.send_message(emulator.user(900).id, "still sent")
    finally:
        await dead.aclose()


# -- one process (no Redis) ----------------------------------------------------------------


async def test_in_process_limiter_private_and_group_no_429(
    emulator: TelegramEmulator, token: str, bots: Bots
) -> None:
    # A group bucket as small as ours (3), so the emulator would catch a 4th too early.
    emulator.set_flood(FloodLimits(group_per_minute=20, group_burst=3))
    limiter = build_flood_limiter(settings())  # one per process, shared by its bots
    two = [bots.limited(emulator, token, limiter) for _ in range(2)]
    user = emulator.user(900)
    group = emulator.create_group(-100777, "Group")
    started = time.monotonic()
    results = await burst(
        [(two[0], user.id), (two[1], user.id)] * 3 + [(two[0], group), (two[1], group)] * 2
    )
    elapsed = time.monotonic() - started
    assert not [r for r in results if isinstance(r, BaseException)], results
    assert throttled(emulator) == []
    # The group's 4th message waits for 20/min (at 85 %): about 3.5 s.
    assert elapsed >= 3.0, elapsed


async def test_in_process_group_burst_without_the_limiter_gets_429(
    emulator: TelegramEmulator, token: str, bots: Bots
) -> None:
    emulator.set_flood(FloodLimits(group_per_minute=20, group_burst=3))
    bot = bots.plain(emulator, token)
    group = emulator.create_group(-100777, "Group")
    results = await burst([(bot, group)] * 4)
    assert any(isinstance(r, TelegramRetryAfter) for r in results)


async def test_album_counts_as_its_items(
    emulator: TelegramEmulator, token: str, bots: Bots
) -> None:
    limiter = build_flood_limiter(settings())
    bot = bots.limited(emulator, token, limiter)
    user = emulator.user(900)
    image = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(image, format="PNG")
    photo = BufferedInputFile(image.getvalue(), "a.png")
    await bot.send_media_group(user.id, [InputMediaPhoto(media=photo) for _ in range(2)])
    started = time.monotonic()
    await bot.send_media_group(user.id, [InputMediaPhoto(media=photo) for _ in range(2)])
    assert time.monotonic() - started >= 0.8  # 1 token left of 3: waited for the second
    assert throttled(emulator) == []


async def test_calls_that_do_not_send_are_never_delayed(
    emulator: TelegramEmulator, token: str, bots: Bots
) -> None:
    # One message every 2 minutes overall: the second send waits, nothing else does.
    limiter = build_flood_limiter(settings(telegram_rate_limit=0.01))
    bot = bots.limited(emulator, token, limiter)
    user = emulator.user(900)
    await bot.send_message(user.id, "one")
    waiting = asyncio.create_task(bot.send_message(user.id, "two"))
    try:
        started = time.monotonic()
        await bot.get_me()
        await bot.get_updates(timeout=0)
        await bot.send_chat_action(user.id, "typing")
        await bot.delete_webhook()
        # Refused by the emulator (no such query); a stale callback answer is moot and
        # does not raise (bot.session.StaleCallbackAnswers), but it was sent at once.
        assert await bot.answer_callback_query("no-such-query") is True
        assert any(e.method == "answerCallbackQuery" for e in emulator.errors)
        with pytest.raises(TelegramBadRequest):
            await bot.answer_pre_checkout_query("no-such-query", ok=True)
        assert time.monotonic() - started < 5.0
        assert not waiting.done()
    finally:
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
    assert [m.text for m in user.bot_messages] == ["one"]


def test_what_counts() -> None:
    photo = InputMediaPhoto(media="https://example.com/a.png")
    assert flood_cost(SendMessage(chat_id=5, text="x")) == (5, 1)
    assert flood_cost(SendMediaGroup(chat_id=-100, media=[photo] * 4)) == (-100, 4)
    assert flood_cost(CopyMessages(chat_id=5, from_chat_id=6, message_ids=[1, 2, 3])) == (5, 3)
    assert flood_cost(EditMessageText(chat_id=5, message_id=1, text="x")) == (5, 1)
    assert flood_cost(EditMessageText(inline_message_id="abc", text="x")) == (None, 1)
    assert flood_cost(SendChatAction(chat_id=5, action="typing")) is None
    assert flood_cost(GetUpdates()) is None
    assert flood_cost(AnswerPreCheckoutQuery(pre_checkout_query_id="q", ok=True)) is None
    assert flood_cost(EditForumTopic(chat_id=-100, message_thread_id=1, name="x")) is None


def test_limits_per_chat_kind() -> None:
    limiter = build_flood_limiter(settings())
    overall, private = limiter.limits_for(42, 900)
    assert overall.key.endswith(":42:global")
    assert overall.rate == pytest.approx(30 * 0.85)
    assert overall.burst == 15
    assert private.rate == pytest.approx(0.85)
    assert private.burst == 3
    group = limiter.limits_for(42, -100123)[1]
    assert group.rate == pytest.approx(20 / 60 * 0.85)
    assert limiter.limits_for(42, "@channel")[1].rate == group.rate
    assert len(limiter.limits_for(42, None)) == 1
