"""Sending, editing, copying and deleting messages with a real aiogram Bot."""

from __future__ import annotations

import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import (
    BotCommand,
    BotCommandScopeAllPrivateChats,
    BotCommandScopeChat,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    LinkPreviewOptions,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    ReplyParameters,
)

from lumigram.emulator import ChatMessage, TelegramEmulator

NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)


def keyboard(*labels: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [InlineKeyboardButton(text=label, callback_data=label.lower())] for label in labels
        ]
    )


async def test_send_message_is_shaped_like_telegram(bot: Bot, emu: TelegramEmulator) -> None:
    user = emu.user(1001, "Ann", username="ann")
    sent = await bot.send_message(
        user.id,
        "<b>Hello</b>, <i>Ann</i> 👋",
        parse_mode="HTML",
        reply_markup=keyboard("English", "Русский"),
    )
    assert sent.text == "Hello, Ann 👋"
    assert [(e.type, e.offset, e.length) for e in sent.entities or []] == [
        ("bold", 0, 5),
        ("italic", 7, 3),
    ]
    assert sent.chat.id == user.id
    assert sent.chat.type == "private"
    assert sent.chat.username == "ann"
    assert sent.from_user is not None
    assert sent.from_user.is_bot
    assert sent.from_user.username == "lumigram_bot"
    message = user.transcript[-1]
    assert isinstance(message, ChatMessage)
    assert message.from_bot
    assert message.kind == "text"
    assert message.text == "Hello, Ann 👋"
    assert message.buttons == [["English"], ["Русский"]]
    assert message.callback_data == [["english"], ["русский"]]
    assert message.entities[0]["type"] == "bold"
    assert "[English]" in user.render()


async def test_text_limits_count_utf16_after_parsing(bot: Bot, emu: TelegramEmulator) -> None:
    chat = emu.user(1001).id
    await bot.send_message(chat, "x" * 4096)
    await bot.send_message(chat, "<b>" + "x" * 4096 + "</b>", parse_mode="HTML")
    await bot.send_message(chat, "😀" * 2048)
    with pytest.raises(TelegramBadRequest, match="message is too long"):
        await bot.send_message(chat, "x" * 4097)
    with pytest.raises(TelegramBadRequest, match="message is too long"):
        await bot.send_message(chat, "😀" * 2049)
    with pytest.raises(TelegramBadRequest, match="text must be non-empty"):
        await bot.send_message(chat, "<b></b>", parse_mode="HTML")


async def test_parse_errors_reach_the_bot(bot: Bot, emu: TelegramEmulator) -> None:
    chat = emu.user(1001).id
    with pytest.raises(TelegramBadRequest) as caught:
        await bot.send_message(chat, "Done. Price 10.5!", parse_mode="MarkdownV2")
    assert caught.value.message == (
        "Bad Request: can't parse entities: Character '.' is reserved and must be escaped "
        "with the preceding '\\'"
    )
    with pytest.raises(TelegramBadRequest, match='Unsupported start tag "br"'):
        await bot.send_message(chat, "a<br>b", parse_mode="HTML")
    with pytest.raises(TelegramBadRequest, match="unsupported parse_mode"):
        await bot.send_message(chat, "x", parse_mode="BBCode")
    ok = await bot.send_message(chat, "Done\\. Price *10\\.5*\\!", parse_mode="MarkdownV2")
    assert ok.text == "Done. Price 10.5!"
    assert ok.entities
    assert ok.entities[0].type == "bold"


async def test_edit_text_and_not_modified(bot: Bot, emu: TelegramEmulator) -> None:
    user = emu.user(1001)
    sent = await bot.send_message(user.id, "Generating…", reply_markup=keyboard("Cancel"))
    edited = await bot.edit_message_text(
        "Generating… 50%",
        chat_id=user.id,
        message_id=sent.message_id,
        reply_markup=keyboard("Cancel"),
    )
    assert isinstance(edited, type(sent))
    assert edited.edit_date is not None
    with pytest.raises(TelegramBadRequest) as caught:
        await bot.edit_message_text(
            "Generating… 50%",
            chat_id=user.id,
            message_id=sent.message_id,
            reply_markup=keyboard("Cancel"),
        )
    assert caught.value.message == NOT_MODIFIED
    # No reply_markup in an edit removes the keyboard, as in Telegram.
    await bot.edit_message_text("Generating… 50%", chat_id=user.id, message_id=sent.message_id)
    [message] = user.bot_messages
    assert message.text == "Generating… 50%"
    assert message.buttons == []
    assert message.edited
    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await bot.edit_message_text("x", chat_id=user.id, message_id=999)
    with pytest.raises(TelegramBadRequest, match="message is too long"):
        await bot.edit_message_text("x" * 4097, chat_id=user.id, message_id=sent.message_id)


async def test_edit_reply_markup_and_user_messages(bot: Bot, emu: TelegramEmulator) -> None:
    user = emu.user(1001)
    own = await user.send_text("hello")
    sent = await bot.send_message(user.id, "Pick", reply_markup=keyboard("A"))
    await bot.edit_message_reply_markup(
        chat_id=user.id, message_id=sent.message_id, reply_markup=keyboard("B")
    )
    assert user.bot_messages[0].buttons == [["B"]]
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_reply_markup(
            chat_id=user.id, message_id=sent.message_id, reply_markup=keyboard("B")
        )
    with pytest.raises(TelegramBadRequest, match="message can't be edited"):
        await bot.edit_message_text("x", chat_id=user.id, message_id=own.message_id)
    with pytest.raises(TelegramBadRequest, match="there is no caption in the message to edit"):
        await bot.edit_message_caption(chat_id=user.id, message_id=sent.message_id, caption="c")


async def test_delete_and_transcript(bot: Bot, emu: TelegramEmulator) -> None:
    user = emu.user(1001)
    await user.send_text("/start")
    first = await bot.send_message(user.id, "one")
    await bot.send_message(user.id, "two")
    assert await bot.delete_message(user.id, first.message_id) is True
    assert [m.text for m in user.transcript] == ["/start", "two"]
    with pytest.raises(TelegramBadRequest, match="message to delete not found"):
        await bot.delete_message(user.id, first.message_id)


async def test_copy_message_and_reply(bot: Bot, emu: TelegramEmulator) -> None:
    user = emu.user(1001)
    original = await user.send_text("copy me https://example.com")
    copied = await bot.copy_message(
        user.id, user.id, original.message_id, reply_markup=keyboard("Again")
    )
    copy = user.transcript[-1]
    assert copy.message_id == copied.message_id
    assert copy.from_bot
    assert copy.text == "copy me https://example.com"
    assert copy.buttons == [["Again"]]
    reply = await bot.send_message(
        user.id, "re", reply_parameters=ReplyParameters(message_id=original.message_id)
    )
    assert reply.reply_to_message is not None
    assert reply.reply_to_message.message_id == original.message_id
    with pytest.raises(TelegramBadRequest, match="message to copy not found"):
        await bot.copy_message(user.id, user.id, 999)


async def test_reply_keyboard_is_shown_to_the_user(bot: Bot, emu: TelegramEmulator) -> None:
    user = emu.user(1001)
    markup = ReplyKeyboardMarkup(keyboard=[[KeyboardButton(text="Yes"), KeyboardButton(text="No")]])
    sent = await bot.send_message(user.id, "Continue?", reply_markup=markup)
    assert sent.reply_markup is None  # only inline keyboards are part of a message
    assert user.reply_keyboard == [["Yes", "No"]]
    await bot.send_message(user.id, "Ok", reply_markup=ReplyKeyboardRemove())
    assert user.reply_keyboard == []


async def test_link_preview_options_and_auto_entities(bot: Bot, emu: TelegramEmulator) -> None:
    chat = emu.user(1001).id
    sent = await bot.send_message(
        chat, "See https://example.com", link_preview_options=LinkPreviewOptions(is_disabled=True)
    )
    assert sent.link_preview_options is not None
    assert sent.link_preview_options.is_disabled
    assert sent.entities
    assert sent.entities[0].type == "url"


async def test_chat_action_and_callback_answers(bot: Bot, emu: TelegramEmulator) -> None:
    user = emu.user(1001)
    assert await bot.send_chat_action(user.id, "upload_photo") is True
    assert user.chat_actions == ["upload_photo"]
    with pytest.raises(TelegramBadRequest, match="wrong parameter action in request"):
        await bot.send_chat_action(user.id, "dancing")
    await bot.send_message(user.id, "Choose", reply_markup=keyboard("English", "Deutsch"))
    query_id = await user.press("Deutsch")
    [update] = await bot.get_updates(timeout=0)
    assert update.callback_query is not None
    assert update.callback_query.id == query_id
    assert update.callback_query.data == "deutsch"
    assert update.callback_query.message is not None
    assert update.callback_query.message.chat.id == user.id
    await bot.answer_callback_query(query_id, text="Saved", show_alert=True)
    answer = await user.wait_callback_answer(query_id, timeout=1)
    assert (answer.text, answer.show_alert) == ("Saved", True)
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        await bot.answer_callback_query(query_id)
    with pytest.raises(LookupError, match="English \\| Deutsch"):
        await user.press("Français")
    other = await user.press("Eng")  # substring match
    with pytest.raises(TimeoutError):
        await user.wait_callback_answer(other, timeout=0.05)


async def test_commands_per_scope_and_language(bot: Bot, emu: TelegramEmulator, token: str) -> None:
    await bot.set_my_commands([BotCommand(command="start", description="Start")])
    await bot.set_my_commands(
        [BotCommand(command="start", description="Начать")], language_code="ru"
    )
    await bot.set_my_commands(
        [BotCommand(command="help", description="Help")], scope=BotCommandScopeAllPrivateChats()
    )
    await bot.set_my_commands(
        [BotCommand(command="vip", description="VIP")], scope=BotCommandScopeChat(chat_id=7)
    )
    assert emu.commands(token) == [{"command": "start", "description": "Start"}]
    assert emu.commands(token, language_code="ru") == [
        {"command": "start", "description": "Начать"}
    ]
    assert emu.commands(token, scope={"type": "all_private_chats"})[0]["command"] == "help"
    assert emu.commands(token, scope={"type": "chat", "chat_id": 7})[0]["command"] == "vip"
    got = await bot.get_my_commands(language_code="ru")
    assert [c.description for c in got] == ["Начать"]
    with pytest.raises(TelegramBadRequest, match="BOT_COMMAND_INVALID"):
        await bot.set_my_commands([BotCommand(command="Start-Now", description="x")])
    await bot.delete_my_commands(language_code="ru")
    assert emu.commands(token, language_code="ru") == []


async def test_wait_helpers(bot: Bot, emu: TelegramEmulator) -> None:
    user = emu.user(1001)
    await user.send_text("/gen cat")
    progress = await bot.send_message(user.id, "Working… 0%")
    await bot.edit_message_text("Working… 100%", chat_id=user.id, message_id=progress.message_id)
    assert (await user.wait_for_text("100%")).edited
    assert (await user.wait_for_text("0%")).text == "Working… 0%"
    with pytest.raises(TimeoutError, match="Working"):
        await user.wait_for_text("never", timeout=0.05)
    await bot.get_updates(timeout=0)
    update_ids = [u.update_id for u in await bot.get_updates(timeout=0)]
    await bot.get_updates(offset=update_ids[-1] + 1, timeout=0)
    await user.wait_idle(quiet=0.05, timeout=1)
