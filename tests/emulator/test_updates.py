"""Getting updates: long polling, offsets, allowed_updates, webhooks, a real Dispatcher."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiogram import Bot, Dispatcher, F, Router
from aiogram.exceptions import TelegramConflictError
from aiogram.filters import CommandObject, CommandStart
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web

from lumigram.emulator import TelegramEmulator

from .conftest import RawApi


async def test_long_poll_is_answered_as_soon_as_an_update_arrives(
    bot: Bot, emu: TelegramEmulator
) -> None:
    user = emu.user(1001, "Ann")
    started = time.monotonic()
    poll = asyncio.create_task(bot.get_updates(timeout=10))
    await asyncio.sleep(0.1)
    assert not poll.done()
    await user.send_text("/start ref_abc")
    [update] = await asyncio.wait_for(poll, 2)
    assert time.monotonic() - started < 2
    message = update.message
    assert message is not None
    assert message.text == "/start ref_abc"
    assert message.from_user is not None
    assert message.from_user.first_name == "Ann"
    assert message.from_user.language_code == "en"
    assert message.chat.type == "private"
    assert [(e.type, e.offset, e.length) for e in message.entities or []] == [("bot_command", 0, 6)]


async def test_empty_long_poll_waits_for_the_timeout(api: RawApi) -> None:
    started = time.monotonic()
    status, body = await api.call("getUpdates", timeout=1)
    assert (status, body) == (200, {"ok": True, "result": []})
    assert 0.9 < time.monotonic() - started < 3


async def test_offsets_limits_and_ids(bot: Bot, emu: TelegramEmulator) -> None:
    user = emu.user(1001)
    for text in ("a", "b", "c"):
        await user.send_text(text)
    updates = await bot.get_updates(limit=2)
    assert [u.message.text for u in updates if u.message] == ["a", "b"]
    ids = [u.update_id for u in updates]
    assert ids[1] == ids[0] + 1
    # Not confirmed yet: the same updates come back.
    assert [u.update_id for u in await bot.get_updates()] == [ids[0], ids[1], ids[1] + 1]
    rest = await bot.get_updates(offset=ids[1] + 1)
    assert [u.message.text for u in rest if u.message] == ["c"]
    assert [u.update_id for u in await bot.get_updates(offset=-1)] == [ids[1] + 1]
    assert await bot.get_updates(offset=ids[1] + 2) == []
    assert (await bot.get_webhook_info()).pending_update_count == 0


async def test_allowed_updates_are_remembered(bot: Bot, emu: TelegramEmulator) -> None:
    user = emu.user(1001)
    sent = await bot.send_message(
        user.id,
        "pick",
        reply_markup=InlineKeyboardMarkup(
            inline_keyboard=[[InlineKeyboardButton(text="Go", callback_data="go")]]
        ),
    )
    assert sent.message_id
    assert await bot.get_updates(allowed_updates=["callback_query"], timeout=0) == []
    await user.send_text("ignored: messages are not wanted")
    await user.press("Go")
    updates = await bot.get_updates(timeout=0)  # no allowed_updates: the previous setting stays
    assert [u.event_type for u in updates] == ["callback_query"]
    assert (await bot.get_webhook_info()).allowed_updates == ["callback_query"]
    await bot.get_updates(offset=updates[-1].update_id + 1, allowed_updates=[], timeout=0)
    await user.send_text("back to the default set")
    assert [u.event_type for u in await bot.get_updates(timeout=0)] == ["message"]


async def test_a_newer_get_updates_terminates_the_older(bot: Bot) -> None:
    older = asyncio.create_task(bot.get_updates(timeout=5))
    await asyncio.sleep(0.1)
    newer = asyncio.create_task(bot.get_updates(timeout=1))
    with pytest.raises(TelegramConflictError, match="terminated by other getUpdates request"):
        await asyncio.wait_for(older, 2)
    newer.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await newer


async def test_block_and_unblock_send_my_chat_member(bot: Bot, emu: TelegramEmulator) -> None:
    user = emu.user(1001)
    user.block_bot()
    user.unblock_bot()
    first, second = await bot.get_updates(timeout=0)
    assert first.my_chat_member is not None
    assert second.my_chat_member is not None
    assert (
        first.my_chat_member.old_chat_member.status,
        first.my_chat_member.new_chat_member.status,
    ) == ("member", "kicked")
    assert second.my_chat_member.new_chat_member.status == "member"


async def test_raw_updates_even_malformed(api: RawApi, emu: TelegramEmulator, token: str) -> None:
    update = await emu.send_raw_update(token, {"message": {"text": ["not", "a", "message"]}})
    status, body = await api.call("getUpdates")
    assert status == 200
    assert body["result"] == [update]
    await emu.send_raw_update(
        token,
        {
            "update_id": 500,
            "callback_query": {
                "id": "forged-1",
                "from": {"id": 5, "is_bot": False, "first_name": "E"},
                "chat_instance": "1",
                "data": "x",
            },
        },
    )
    status, body = await api.call(
        "answerCallbackQuery", callback_query_id="forged-1", text="no longer valid"
    )
    assert status == 200
    answer = await emu.user(5).wait_callback_answer("forged-1", timeout=1)
    assert answer.text == "no longer valid"


# -- webhooks ------------------------------------------------------------------------------


@dataclass
class Receiver:
    url: str
    received: list[tuple[dict[str, Any], str | None]] = field(default_factory=list)
    failures_left: int = 0
    reply: dict[str, Any] | None = None
    event: asyncio.Event = field(default_factory=asyncio.Event)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A webhook endpoint on 127.0.0.1 that records what it gets."""
    app = web.Application()
    box = Receiver(url="")

    async def hook(request: web.Request) -> web.Response:
        if box.failures_left > 0:
            box.failures_left -= 1
            return web.Response(status=500, text="boom")
        box.received.append(
            (await request.json(), request.headers.get("X-Telegram-Bot-Api-Secret-Token"))
        )
        box.event.set()
        if box.reply is not None:
            return web.json_response(box.reply)
        return web.Response(text="")

    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    box.url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    yield box
    await runner.cleanup()


async def wait_until(predicate: Any, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.01)


async def test_webhook_delivery_with_secret(
    bot: Bot, emu: TelegramEmulator, receiver: Receiver
) -> None:
    user = emu.user(1001)
    assert await bot.set_webhook(receiver.url, secret_token="s3cr3t_TOKEN-1")
    await user.send_text("hello hook")
    await wait_until(lambda: receiver.received)
    update, secret = receiver.received[0]
    assert secret == "s3cr3t_TOKEN-1"
    assert update["message"]["text"] == "hello hook"
    assert isinstance(update["update_id"], int)
    info = await bot.get_webhook_info()
    assert info.url == receiver.url
    assert info.pending_update_count == 0
    with pytest.raises(TelegramConflictError) as caught:
        await bot.get_updates()
    assert caught.value.message == (
        "Conflict: can't use getUpdates method while webhook is active; "
        "use deleteWebhook to delete the webhook first"
    )
    assert await bot.delete_webhook()
    assert (await bot.get_webhook_info()).url == ""


async def test_webhook_retries_and_reports_errors(
    bot: Bot, emu: TelegramEmulator, receiver: Receiver
) -> None:
    user = emu.user(1001)
    receiver.failures_left = 2
    await bot.set_webhook(receiver.url)
    await user.send_text("retry me")
    await wait_until(lambda: receiver.received)
    assert receiver.received[0][1] is None  # no secret configured, no header
    info = await bot.get_webhook_info()
    assert info.last_error_message == "Wrong response from the webhook: 500 Internal Server Error"
    assert info.last_error_date is not None
    assert info.pending_update_count == 0


async def test_webhook_pending_updates_and_drop(
    bot: Bot, emu: TelegramEmulator, api: RawApi
) -> None:
    user = emu.user(1001)
    await bot.set_webhook("http://127.0.0.1:9/unreachable")
    await user.send_text("one")
    await user.send_text("two")
    await wait_until(lambda: emu.webhook_info().get("last_error_message"))
    assert (await bot.get_webhook_info()).pending_update_count == 2
    _, body = await api.call("deleteWebhook", drop_pending_updates=True)
    assert body == {"ok": True, "result": True, "description": "Webhook was deleted"}
    assert await bot.get_updates(timeout=0) == []


async def test_webhook_reply_executes_a_method(
    bot: Bot, emu: TelegramEmulator, receiver: Receiver
) -> None:
    user = emu.user(1001)
    receiver.reply = {"method": "sendMessage", "chat_id": user.id, "text": "answered in the reply"}
    await bot.set_webhook(receiver.url)
    await user.send_text("hi")
    reply = await user.wait_for_text("answered in the reply", timeout=3)
    assert reply.from_bot
    assert [r.via for r in emu.calls("sendMessage")] == ["webhook_reply"]


# -- a real Dispatcher -----------------------------------------------------------------------


def demo_router() -> Router:
    router = Router()

    @router.message(CommandStart())
    async def start(message: Message, command: CommandObject) -> None:
        await message.answer(
            f"Welcome! ref={command.args}",
            reply_markup=InlineKeyboardMarkup(
                inline_keyboard=[
                    [
                        InlineKeyboardButton(text="English", callback_data="lang:en"),
                        InlineKeyboardButton(text="Docs", url="https://example.com/docs"),
                    ]
                ]
            ),
        )

    @router.callback_query(F.data.startswith("lang:"))
    async def language(query: CallbackQuery) -> None:
        await query.answer("Language saved")
        assert isinstance(query.message, Message)
        await query.message.edit_text("Language: English")

    @router.message(F.text)
    async def echo(message: Message) -> None:
        await message.answer(f"echo: {message.text}")

    return router


async def test_dispatcher_long_polling_end_to_end(bot: Bot, emu: TelegramEmulator) -> None:
    dispatcher = Dispatcher()
    dispatcher.include_router(demo_router())
    polling = asyncio.create_task(
        dispatcher.start_polling(
            bot, handle_signals=False, polling_timeout=1, close_bot_session=False
        )
    )
    try:
        user = emu.user(1001, "Ann")
        await user.send_text("/start ref_abc")
        welcome = await user.wait_for_text("Welcome! ref=ref_abc")
        assert welcome.buttons == [["English", "Docs"]]
        assert welcome.urls == [[None, "https://example.com/docs"]]
        with pytest.raises(ValueError, match="url button"):
            await user.press("Docs")
        query = await user.press("English")
        assert (await user.wait_callback_answer(query)).text == "Language saved"
        assert (await user.wait_for_text("Language: English")).edited
        await user.send_text("hello")
        await user.wait_for_text("echo: hello")
        await user.wait_idle(quiet=0.1, timeout=3)
        assert [m.text for m in user.transcript] == [
            "/start ref_abc",
            "Language: English",
            "hello",
            "echo: hello",
        ]
    finally:
        await dispatcher.stop_polling()
        await polling
    emu.assert_no_errors()


async def test_dispatcher_behind_a_webhook(bot: Bot, emu: TelegramEmulator) -> None:
    dispatcher = Dispatcher()
    dispatcher.include_router(demo_router())
    app = web.Application()
    SimpleRequestHandler(dispatcher, bot, secret_token="hook-secret").register(app, path="/tg")
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        await bot.set_webhook(
            f"http://127.0.0.1:{runner.addresses[0][1]}/tg", secret_token="hook-secret"
        )
        user = emu.user(1001)
        await user.send_text("/start")
        await user.wait_for_text("Welcome! ref=None")
        await user.press("English")
        await user.wait_for_text("Language: English")
    finally:
        await runner.cleanup()
    emu.assert_no_errors()
