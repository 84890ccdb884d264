"""The bot as users meet it: real aiogram polling the emulator over HTTP."""

from __future__ import annotations

import logging

import pytest
from aiogram import Router
from aiogram.filters import Command
from aiogram.types import Message
from sqlalchemy import select

from lumigram.container import Services
from lumigram.db import tables
from lumigram.db.engine import create_sessionmaker
from lumigram.emulator import TelegramEmulator
from tests.e2e.conftest import BotRunner

WELCOME = {"en": "I am Lumigram", "ru": "Я Lumigram", "uz": "Men Lumigram"}
LANGUAGE_BUTTON = {"en": "🌐 Language", "ru": "🌐 Язык", "uz": "🌐 Til"}


@pytest.mark.parametrize("language", ["en", "ru", "uz"])
async def test_start_greets_in_the_users_language(
    runner: BotRunner, emulator: TelegramEmulator, language: str
) -> None:
    await runner.start()
    user = emulator.user(user_id=100, first_name="Ann", language_code=language)
    await user.send_text("/start")
    welcome = await user.wait_for_text(WELCOME[language])
    assert "Ann" in (welcome.text or "")
    assert LANGUAGE_BUTTON[language] in [label for row in welcome.buttons for label in row]


async def test_unsupported_telegram_language_gets_the_default(
    runner: BotRunner, emulator: TelegramEmulator
) -> None:
    await runner.start(default_language="uz")
    user = emulator.user(user_id=101, first_name="Hans", language_code="de")
    await user.send_text("/start")
    await user.wait_for_text(WELCOME["uz"])


async def test_language_switch_sticks_across_restarts(
    runner: BotRunner, emulator: TelegramEmulator
) -> None:
    await runner.start()
    user = emulator.user(user_id=102, first_name="Olga", language_code="ru")
    await user.send_text("/start")
    menu = await user.wait_for_text(WELCOME["ru"])
    await user.press(LANGUAGE_BUTTON["ru"], message=menu)
    await user.wait_for_text("Выберите язык")
    await user.press("O'zbekcha")
    changed = await user.wait_for_text("Til o'zbekchaga o'zgartirildi")
    assert changed.message_id == menu.message_id  # navigation edits the same message
    assert changed.edited

    await runner.restart()
    await user.send_text("/menu")
    await user.wait_for_text("Bosh menyu")
    await user.send_text("/language")
    picker = await user.wait_for_text("Tilni tanlang")
    assert "✅ O'zbekcha" in [label for row in picker.buttons for label in row]


async def test_command_menus_are_registered_per_language(
    runner: BotRunner, emulator: TelegramEmulator
) -> None:
    await runner.start()
    by_language = {
        code: {
            c["command"]: c["description"]
            for c in emulator.commands(runner.token, language_code=code)
        }
        for code in ("en", "ru", "uz")
    }
    assert by_language["en"]["language"] == "Change the language"
    assert by_language["ru"]["language"] == "Сменить язык"
    assert by_language["uz"]["language"] == "Tilni o'zgartirish"
    default = {c["command"] for c in emulator.commands(runner.token)}
    assert default == {
        "start",
        "generate",
        "history",
        "cancel",
        "profile",
        "topup",
        "buy",
        "subscription",
        "referrals",
        "refund",
        "paysupport",
        "terms",
        "api",
        "menu",
        "language",
        "help",
    }


async def test_deep_link_payload_is_kept_and_referrer_attached(
    runner: BotRunner, emulator: TelegramEmulator
) -> None:
    app = await runner.start()
    referrer = emulator.user(user_id=200, first_name="Ref")
    await referrer.send_text("/start")
    await referrer.wait_for_text(WELCOME["en"])
    async with app.engine.connect() as conn:
        code = await conn.scalar(
            select(tables.users.c.referral_code).where(tables.users.c.id == 200)
        )

    newcomer = emulator.user(user_id=201, first_name="New")
    await newcomer.send_text(f"/start ref_{code}")
    await newcomer.wait_for_text(WELCOME["en"])
    async with app.engine.connect() as conn:
        row = (await conn.execute(select(tables.users).where(tables.users.c.id == 201))).one()
    assert row.start_payload == f"ref_{code}"
    assert row.referred_by_id == 200


async def test_banned_user_gets_one_polite_message_and_nothing_else(
    runner: BotRunner, emulator: TelegramEmulator
) -> None:
    app = await runner.start()
    user = emulator.user(user_id=300, first_name="Spam", language_code="ru")
    await user.send_text("/start")
    await user.wait_for_text(WELCOME["ru"])
    async with create_sessionmaker(app.engine)() as session:
        await Services(session, app.infra).users.set_ban(
            actor_id=None, user_id=300, banned=True, reason="спам"
        )
    before = len(user.bot_messages)
    await user.send_text("/help")
    notice = await user.wait_for_text("доступ к этому боту ограничен")
    await user.wait_idle()
    assert len(user.bot_messages) == before + 1
    assert "спам" in (notice.text or "")


async def test_throttling_drops_excess_with_a_single_notice(
    runner: BotRunner, emulator: TelegramEmulator
) -> None:
    await runner.start(throttle_rate=0.1, throttle_burst=2)
    user = emulator.user(user_id=400, first_name="Fast")
    for _ in range(6):
        await user.send_text("/help")
    await user.wait_idle(quiet=0.5)
    texts = [m.text or "" for m in user.bot_messages]
    assert sum("How to use Lumigram" in t for t in texts) == 2
    assert sum("Too many requests" in t for t in texts) == 1


async def test_error_handler_tells_the_user_and_logs_the_update(
    runner: BotRunner, emulator: TelegramEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    broken = Router(name="broken")

    @broken.message(Command("boom"))
    async def boom(message: Message) -> None:
        raise RuntimeError("handler exploded")

    await runner.start(extra_routers=[broken])
    user = emulator.user(user_id=500, first_name="Tess", language_code="uz")
    with caplog.at_level(logging.ERROR):
        await user.send_text("/boom")
        reply = await user.wait_for_text("nimadir xato ketdi")
    assert "Traceback" not in (reply.text or "")
    assert any("update" in r.getMessage() and "failed" in r.getMessage() for r in caplog.records)
    await user.send_text("/help")  # and the bot carries on
    await user.wait_for_text("Lumigram'dan qanday foydalanish")


async def test_malformed_update_and_forged_button_do_not_stop_the_bot(
    runner: BotRunner, emulator: TelegramEmulator
) -> None:
    await runner.start()
    user = emulator.user(user_id=600, first_name="Eve")
    await emulator.send_raw_update(runner.token, {"message": {"text": ["not", "a", "message"]}})
    await user.send_text("/start")
    await user.wait_for_text(WELCOME["en"])
    await emulator.send_raw_update(
        runner.token,
        {
            "callback_query": {
                "id": "forged-1",
                "from": {"id": 600, "is_bot": False, "first_name": "Eve"},
                "chat_instance": "1",
                "data": "lang:xx",
                "message": user.bot_messages[-1].raw,
            }
        },
    )
    answer = await user.wait_callback_answer("forged-1", timeout=5)
    assert "no longer valid" in (answer.text or "")
    await user.send_text("/menu")
    await user.wait_for_text("Main menu")


async def test_unknown_text_gets_a_hint(runner: BotRunner, emulator: TelegramEmulator) -> None:
    await runner.start()
    user = emulator.user(user_id=700, first_name="Q", language_code="ru")
    await user.send_text("привет")
    await user.wait_for_text("Я не понял")
