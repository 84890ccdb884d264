"""Webhook mode end to end: the emulator delivers updates to POST /telegram/webhook."""

from __future__ import annotations

import asyncio

from aiogram import F, Router
from aiogram.types import Message

from lumigram.emulator import TelegramEmulator
from tests.http.conftest import SECRET, HttpRunner
from tests.http.test_routes import sample


async def wait_for_attempts(emulator: TelegramEmulator, count: int) -> list[tuple[int, int]]:
    async with asyncio.timeout(5):
        while len(attempts := emulator.webhook_attempts()) < count:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    return attempts


async def test_start_is_answered_through_the_webhook(runner: HttpRunner) -> None:
    await runner.start(mode="webhook")
    assert runner.app is not None
    info = runner.emulator.webhook_info()
    assert info["url"] == f"{runner.app.settings.public_base_url}/telegram/webhook"
    assert info["max_connections"] == 40
    assert "message" in info["allowed_updates"]
    assert "callback_query" in info["allowed_updates"]
    user = runner.emulator.user(user_id=601, first_name="Ann", language_code="en")
    await user.send_text("/start")
    await user.wait_for_text("I am Lumigram")
    attempts = await wait_for_attempts(runner.emulator, 1)
    assert [status for _, status in attempts] == [200]
    assert runner.emulator.webhook_info()["pending_update_count"] == 0
    # getUpdates is refused while a webhook is set: the bot never polled.
    assert not any(r.method == "getUpdates" for r in runner.emulator.server.requests)


async def test_a_wrong_or_missing_secret_is_refused_and_nothing_is_handled(
    runner: HttpRunner,
) -> None:
    client = await runner.start(mode="webhook")
    update = {
        "update_id": 999_001,
        "message": {
            "message_id": 1,
            "date": 1_700_000_000,
            "chat": {"id": 602, "type": "private", "first_name": "Eve"},
            "from": {"id": 602, "is_bot": False, "first_name": "Eve", "language_code": "en"},
            "text": "/start",
            "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
        },
    }
    url = "/telegram/webhook"
    header = "X-Telegram-Bot-Api-Secret-Token"
    assert (await client.post(url, json=update)).status_code == 401
    assert (await client.post(url, json=update, headers={header: "wrong"})).status_code == 401
    assert (await client.post(url, json=update, headers={header: SECRET + "x"})).status_code == 401
    await asyncio.sleep(0.2)
    metrics = (await client.get("/metrics")).text
    assert sample(metrics, "lumigram_updates_total", type="message") is None
    assert not any(r.method == "sendMessage" for r in runner.emulator.server.requests)
    # With the right secret it is handled.
    user = runner.emulator.user(user_id=602, first_name="Eve", language_code="en")
    assert (await client.post(url, json=update, headers={header: SECRET})).status_code == 200
    assert sum("I am Lumigram" in (m.text or "") for m in user.bot_messages) == 1
    metrics = (await client.get("/metrics")).text
    assert sample(metrics, "lumigram_updates_total", type="message") == 1


async def test_an_update_retried_after_a_lost_answer_is_not_handled_twice(
    runner: HttpRunner,
) -> None:
    client = await runner.start(mode="webhook")
    user = runner.emulator.user(user_id=603, first_name="Bob", language_code="en")
    runner.emulator.lose_webhook_answers(1)
    await user.send_text("/start")
    await user.wait_for_text("I am Lumigram")
    attempts = await wait_for_attempts(runner.emulator, 2)
    assert attempts[0] == attempts[1]  # the same update, answered 200 both times
    assert attempts[0][1] == 200
    await user.wait_idle()
    assert sum("I am Lumigram" in (m.text or "") for m in user.bot_messages) == 1
    metrics = (await client.get("/metrics")).text
    assert sample(metrics, "lumigram_updates_total", type="message") == 1


async def test_a_failed_update_is_answered_500_and_handled_again(runner: HttpRunner) -> None:
    failures = [RuntimeError("flaky")]
    router = Router()

    @router.message(F.text == "flaky")
    async def flaky(message: Message) -> None:
        if failures:
            raise failures.pop()
        await message.answer("it worked")

    await runner.start(mode="webhook", extra_routers=[router])
    user = runner.emulator.user(user_id=604, first_name="Kim", language_code="en")
    await user.send_text("/start")
    await user.wait_for_text("I am Lumigram")
    await user.send_text("flaky")
    await user.wait_for_text("it worked")
    attempts = await wait_for_attempts(runner.emulator, 3)
    assert [status for _, status in attempts] == [200, 500, 200]
    assert attempts[1][0] == attempts[2][0]
    # aiogram's error handler told the user the first time.
    await user.wait_for_text("Something went wrong")
