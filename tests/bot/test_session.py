"""The bot's HTTP session against the emulator's flood control."""

from __future__ import annotations

import time

from aiogram import Bot

from lumigram.bot.session import build_session
from lumigram.emulator import FloodLimits, TelegramEmulator


async def test_session_waits_out_429_retry_after() -> None:
    emulator = TelegramEmulator(flood=FloodLimits(private_per_second=1.0, private_burst=1))
    await emulator.start(host="127.0.0.1", port=0)
    try:
        token = emulator.create_bot(username="flood_bot", first_name="Flood")
        user = emulator.user(user_id=900, first_name="U")
        await user.send_text("/start")  # the chat must exist before the bot writes to it
        bot = Bot(token, session=build_session(emulator.base_url))
        started = time.monotonic()
        for i in range(3):
            await bot.send_message(900, f"message {i}")
        elapsed = time.monotonic() - started
        await bot.session.close()
        assert [m.text for m in user.bot_messages] == ["message 0", "message 1", "message 2"]
        throttled = [e for e in emulator.errors if e.status == 429]
        assert throttled, "the emulator should have answered 429 at least once"
        assert elapsed >= 1.0  # it really waited for retry_after
    finally:
        await emulator.stop()


async def test_a_callback_answered_before_does_not_fail_the_update() -> None:
    """The same update handled twice (a webhook retried after a replica stopped mid-answer):
    the second answerCallbackQuery is refused by Telegram and is moot; other refusals
    still raise."""
    import pytest
    from aiogram.exceptions import TelegramBadRequest

    emulator = TelegramEmulator(flood=FloodLimits.unlimited())
    await emulator.start(host="127.0.0.1", port=0)
    try:
        token = emulator.create_bot(username="twice_bot", first_name="Twice")
        user = emulator.user(user_id=901, first_name="U")
        await user.send_text("/start")
        bot = Bot(token, session=build_session(emulator.base_url))
        try:
            assert await bot.answer_callback_query("4000000000000000001", text="done") is True
            assert any("query is too old" in e.description for e in emulator.errors)
            with pytest.raises(TelegramBadRequest):
                await bot.send_message(901, "")  # an empty text is still an error
        finally:
            await bot.session.close()
    finally:
        await emulator.stop()
