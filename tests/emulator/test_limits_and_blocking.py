"""Flood control (429 with retry_after) and users who blocked the bot (403)."""

from __future__ import annotations

from typing import Any

import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramForbiddenError, TelegramRetryAfter
from aiogram.types import BufferedInputFile, InputMediaPhoto

from lumigram.emulator import FloodLimits, TelegramEmulator
from lumigram.emulator.flood import FloodControl

from .conftest import RawApi, png_bytes


async def test_private_chat_flood_answers_429(api: RawApi, emu: TelegramEmulator) -> None:
    emu.set_flood(FloodLimits(private_per_second=0.5, private_burst=2))
    chat = emu.user(1001).id
    for _ in range(2):
        assert (await api.call("sendMessage", chat_id=chat, text="hi"))[0] == 200
    status, body = await api.call("sendMessage", chat_id=chat, text="too fast")
    assert status == 429
    assert body == {
        "ok": False,
        "error_code": 429,
        "description": "Too Many Requests: retry after 2",
        "parameters": {"retry_after": 2},
    }
    assert emu.errors[-1].status == 429
    # Another chat has its own bucket.
    assert (await api.call("sendMessage", chat_id=emu.user(1002).id, text="hi"))[0] == 200


async def test_aiogram_sees_retry_after(bot: Bot, emu: TelegramEmulator) -> None:
    emu.set_flood(FloodLimits(private_per_second=1, private_burst=1))
    chat = emu.user(1001).id
    await bot.send_message(chat, "one")
    with pytest.raises(TelegramRetryAfter) as caught:
        await bot.send_message(chat, "two")
    assert caught.value.retry_after == 1
    with pytest.raises(TelegramRetryAfter):  # edits count as well
        await bot.edit_message_text("edited", chat_id=chat, message_id=1)


async def test_group_and_global_limits(api: RawApi, emu: TelegramEmulator) -> None:
    group = emu.create_group(-100555, "Group")
    emu.set_flood(
        FloodLimits(group_per_minute=20, group_burst=3, global_per_second=100, global_burst=100)
    )
    for _ in range(3):
        assert (await api.call("sendMessage", chat_id=group, text="hi"))[0] == 200
    status, body = await api.call("sendMessage", chat_id=group, text="hi")
    assert status == 429
    assert body["parameters"]["retry_after"] == 3
    emu.set_flood(
        FloodLimits(global_per_second=2, global_burst=2, private_burst=10, private_per_second=10)
    )
    users = [emu.user(2000 + i).id for i in range(3)]
    assert (await api.call("sendMessage", chat_id=users[0], text="a"))[0] == 200
    assert (await api.call("sendMessage", chat_id=users[1], text="b"))[0] == 200
    assert (await api.call("sendMessage", chat_id=users[2], text="c"))[0] == 429


async def test_media_groups_cost_one_message_per_item(bot: Bot, emu: TelegramEmulator) -> None:
    chat = emu.user(1001).id
    photo = await bot.send_photo(chat, BufferedInputFile(png_bytes(), "p.png"))
    assert photo.photo is not None
    album: list[Any] = [InputMediaPhoto(media=photo.photo[-1].file_id)] * 2
    emu.set_flood(FloodLimits(private_per_second=0.1, private_burst=3))
    assert len(await bot.send_media_group(chat, album)) == 2
    with pytest.raises(TelegramRetryAfter):
        await bot.send_media_group(chat, album)
    await bot.send_message(chat, "one token was left")


def test_token_bucket_refills_and_disabled_limits() -> None:
    now = [0.0]
    control = FloodControl(FloodLimits(private_per_second=1, private_burst=2), clock=lambda: now[0])
    assert control.check(1, 10, "private") is None
    assert control.check(1, 10, "private") is None
    assert control.check(1, 10, "private") == 1
    now[0] += 1.0
    assert control.check(1, 10, "private") is None
    assert control.check(1, 10, "private", cost=5) == 2
    unlimited = FloodControl(FloodLimits.disabled())
    assert all(unlimited.check(1, 10, "private") is None for _ in range(1000))
    assert FloodLimits.unlimited() == FloodLimits.disabled()
    assert (
        FloodControl(FloodLimits(count_edits=False)).check(1, 1, "private", 100, edit=True) is None
    )


async def test_blocked_user(bot: Bot, emu: TelegramEmulator) -> None:
    user = emu.user(1001)
    sent = await bot.send_message(user.id, "hello")
    user.block_bot()
    with pytest.raises(TelegramForbiddenError) as caught:
        await bot.send_message(user.id, "are you there?")
    assert caught.value.message == "Forbidden: bot was blocked by the user"
    with pytest.raises(TelegramForbiddenError):
        await bot.send_chat_action(user.id, "typing")
    with pytest.raises(TelegramForbiddenError):
        await bot.edit_message_text("x", chat_id=user.id, message_id=sent.message_id)
    assert emu.errors[-1].status == 403
    user.unblock_bot()
    await bot.send_message(user.id, "welcome back")
    user.block_bot()
    await user.send_text("/start")  # writing to the bot again restarts it
    await bot.send_message(user.id, "hi again")
    assert [m.text for m in user.bot_messages] == ["hello", "welcome back", "hi again"]
