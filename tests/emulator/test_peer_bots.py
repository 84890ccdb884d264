"""Peer bots (``peer_bots/``: written as aiogram's and python-telegram-bot's examples
are) long-polling the emulator with aiogram's Dispatcher, driven by simulated users.

Each one must behave as its authors intended, and the emulator must refuse none of
their requests: that is what shows the emulator is faithful, not Lumigram's own tests.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
from aiogram import Bot, Dispatcher, Router
from aiogram.client.default import DefaultBotProperties
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode

from lumigram.emulator import ChatMessage, TelegramEmulator

from .conftest import FastSession, png_bytes
from .peer_bots import callback_bot, echo_bot, form_bot, location_bot, poll_bot


@asynccontextmanager
async def polling(emu: TelegramEmulator, token: str, router: Router) -> AsyncIterator[Bot]:
    """``dp.start_polling(bot)`` as the examples' ``main()`` does, with their defaults."""
    bot = Bot(
        token,
        session=FastSession(api=TelegramAPIServer.from_base(emu.base_url)),
        default=DefaultBotProperties(parse_mode=ParseMode.HTML),
    )
    dispatcher = Dispatcher()
    dispatcher.include_router(router)
    task = asyncio.create_task(
        dispatcher.start_polling(
            bot, handle_signals=False, polling_timeout=1, close_bot_session=False
        )
    )
    try:
        yield bot
    finally:
        await dispatcher.stop_polling()
        await task
        await bot.session.close()
    emu.assert_no_errors()


def newest(kind: str) -> Callable[[ChatMessage], bool]:
    return lambda m: m.kind == kind


async def test_echo_bot_copies_every_kind_of_message(emu: TelegramEmulator, token: str) -> None:
    async with polling(emu, token, echo_bot.make_router()):
        user = emu.user(1001, "Ann", last_name="Lee")
        start = await user.send_text("/start")
        hello = await user.wait_for_text("Hello")
        assert hello.text == "Hello, Ann Lee!"
        assert hello.entities == [{"type": "bold", "offset": 7, "length": 7}]

        await user.send_text("ping https://example.com")
        echoed = await user.wait_for_text("ping")
        assert echoed.text == "ping https://example.com"
        assert [e["type"] for e in echoed.entities] == ["url"]

        photo = await user.send_photo(png_bytes(), caption="a red square")
        echoed = await user.wait_for(newest("photo"))
        assert (echoed.file_id, echoed.text) == (photo.file_id, "a red square")

        sticker = await user.send_sticker("🦄")
        echoed = await user.wait_for(newest("sticker"))
        assert echoed.sticker is not None
        assert echoed.file_id == sticker.file_id
        assert echoed.sticker["emoji"] == "🦄"

        location = await user.send_location(59.9386, 30.3141)
        echoed = await user.wait_for(newest("location"))
        assert echoed.location == location.location

        venue = await user.send_venue(59.9398, 30.3146, "Hermitage", "Palace Square, 2")
        echoed = await user.wait_for(newest("venue"))
        assert echoed.venue is not None
        assert venue.venue is not None
        assert (echoed.venue["title"], echoed.venue["address"]) == ("Hermitage", "Palace Square, 2")

        contact = await user.send_contact("+79990001122", "Boris", "Ivanov")
        echoed = await user.wait_for(newest("contact"))
        assert echoed.contact == contact.contact

        poll = await user.send_poll("Tea or coffee?", ["Tea", "Coffee"])
        echoed = await user.wait_for(newest("poll"))
        assert echoed.poll is not None
        assert poll.poll is not None
        assert echoed.poll["question"] == "Tea or coffee?"
        assert [o["text"] for o in echoed.poll["options"]] == ["Tea", "Coffee"]
        assert echoed.poll["id"] != poll.poll["id"]

        await user.send_dice("🎯")
        echoed = await user.wait_for(newest("dice"))
        assert echoed.dice is not None
        assert echoed.dice["emoji"] == "🎲"  # send_copy can't choose the dice (aiogram's note)

        # An edit is no new message: the echo bot has no handler for it and stays silent.
        await user.edit_text(start, "/start again")
        await user.wait_idle(quiet=0.3)
        kinds = [m.kind for m in user.bot_messages]
        assert kinds == [
            "text",
            "text",
            "photo",
            "sticker",
            "location",
            "venue",
            "contact",
            "poll",
            "dice",
        ]


async def test_poll_bot_reacts_to_answers_and_closes_its_polls(
    emu: TelegramEmulator, token: str
) -> None:
    async with polling(emu, token, poll_bot.make_router()):
        user = emu.user(1001, "Ann")
        await user.send_text("/poll")
        poll = await user.wait_for(newest("poll"))
        assert poll.poll is not None
        assert not poll.poll["is_anonymous"]
        assert poll.poll["allows_multiple_answers"]
        await user.vote(poll, [1, 3])
        await user.wait_for_text("Ann feels Really good and Great!")
        closed = await user.wait_for(lambda m: m.poll is not None and m.poll["is_closed"])
        assert closed.message_id == poll.message_id
        assert [o["voter_count"] for o in closed.poll["options"]] == [0, 1, 0, 1]  # type: ignore[index]
        with pytest.raises(ValueError, match="closed"):
            await user.vote(closed, 0)

        await user.send_text("/quiz")
        quiz = await user.wait_for(newest("poll"))
        assert quiz.poll is not None
        assert (quiz.poll["type"], quiz.poll["correct_option_ids"]) == ("quiz", [2])
        await user.vote(quiz, 2)
        closed = await user.wait_for(lambda m: m.poll is not None and m.poll["is_closed"])
        assert closed.message_id == quiz.message_id

        await user.send_text("/preview")
        await user.wait_for_text("Press the button")
        [[button]] = user.reply_keyboard_buttons
        assert button == {"text": "Press me!", "request_poll": {}}
        await user.send_poll("Pizza or pasta?", ["Pizza", "Pasta"], is_anonymous=False)
        preview = await user.wait_for(newest("poll"))
        assert preview.poll is not None
        assert preview.poll["is_closed"]
        assert preview.poll["question"] == "Pizza or pasta?"
        assert user.reply_keyboard == []  # ReplyKeyboardRemove
        await user.wait_idle(quiet=0.3)


async def test_location_bot_answers_locations_and_contacts(
    emu: TelegramEmulator, token: str
) -> None:
    async with polling(emu, token, location_bot.make_router()):
        user = emu.user(1001, "Ann")
        await user.send_text("/start")
        await user.wait_for_text("Where are you?")
        rows = user.reply_keyboard_buttons
        assert rows[0][0]["request_location"] is True
        assert rows[1][0]["request_contact"] is True
        await user.send_location(52.5163, 13.3777)  # the user presses "📍 Send my location"
        await user.wait_for_text("Got your location: 52.5163, 13.3777.")
        venue = await user.wait_for(newest("venue"))
        assert venue.venue is not None
        assert venue.venue["title"] == "Coffee Point"
        await user.send_location(52.5163, 13.3777, live_period=900)
        await user.wait_for_text("Got your live location")
        await user.send_contact("+4930123", "Someone", "Else")
        refused = await user.wait_for_text("your own")
        assert refused.entities == [{"type": "bold", "offset": 13, "length": 8}]
        assert user.reply_keyboard  # still shown
        await user.share_contact("+4930999")  # the user presses "☎️ Share my contact"
        await user.wait_for_text("Thanks, Ann! We will call +4930999.")
        assert user.reply_keyboard == []
        await user.wait_idle(quiet=0.3)


async def test_callback_bot_counts_with_inline_buttons(emu: TelegramEmulator, token: str) -> None:
    async with polling(emu, token, callback_bot.make_router()):
        user = emu.user(1001)
        await user.send_text("/numbers_fab")
        counter = await user.wait_for_text("Enter the number: 0")
        assert counter.buttons == [["-2", "-1", "+1", "+2"], ["Confirm"]]
        assert counter.callback_data[0][0] == "fabnum:change:-2"
        for label, shown in (("+2", "2"), ("+1", "3"), ("-2", "1")):
            query = await user.press(label)
            answer = await user.wait_callback_answer(query)
            assert answer.text is None
            edited = await user.wait_for_text(f"Enter the number: {shown}")
            assert edited.edited
            assert edited.message_id == counter.message_id
        query = await user.press("Confirm")
        answer = await user.wait_callback_answer(query)
        assert (answer.text, answer.show_alert) == ("Saved 1", True)
        total = await user.wait_for_text("Total: 1")
        assert total.buttons == []
        await user.wait_idle(quiet=0.3)


async def test_form_bot_walks_through_its_states(emu: TelegramEmulator, token: str) -> None:
    async with polling(emu, token, form_bot.make_router()):
        ann = emu.user(1001, "Ann")
        await ann.send_text("/start")
        await ann.wait_for_text("What's your name?")
        name = await ann.send_text("Ann <3")
        await ann.wait_for_text("Nice to meet you, Ann <3!")
        assert ann.reply_keyboard == [["Yes", "No"]]
        await ann.edit_text(name, "Anna")  # an edit is not an answer: the state stays
        await ann.send_text("Maybe")
        await ann.wait_for_text("I don't understand you :(")
        await ann.send_text("Yes")
        cool = await ann.wait_for_text("What programming language")
        assert cool.raw["reply_to_message"]["text"] == "Yes"
        assert ann.reply_keyboard == []
        await ann.send_text("Python")
        await ann.wait_for_text("makes my circuits light up")
        await ann.wait_for_text(
            "I'll keep in mind that, Ann <3, you like to write bots with Python."
        )

        bob = emu.user(1002, "Bob")
        await bob.send_text("/start")
        await bob.wait_for_text("What's your name?")
        await bob.send_text("Bob")
        await bob.wait_for_text("Did you like to write bots?")
        await bob.send_text("cancel")
        await bob.wait_for_text("Cancelled.")
        await bob.send_text("No")  # no state any more: nothing answers
        await bob.wait_idle(quiet=0.3)
        assert bob.last_bot_message is not None
        assert bob.last_bot_message.text == "Cancelled."
