"""Polls, locations, venues, contacts, dice and stickers, both ways, over real HTTP.

The bot side goes through aiogram's Bot (so every answer must also parse as aiogram's
models); the raw client checks Telegram's exact error descriptions.
"""

from __future__ import annotations

import asyncio
import io
import json
import time
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import (
    BufferedInputFile,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputPollOption,
    Update,
)
from PIL import Image

from lumigram.emulator import TelegramEmulator, limits

from .conftest import RawApi, png_bytes

NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)


def keyboard(label: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text=label, callback_data=label)]]
    )


async def updates_of(bot: Bot) -> list[Update]:
    """Everything pending, confirmed."""
    updates = await bot.get_updates(timeout=0)
    if updates:
        await bot.get_updates(offset=updates[-1].update_id + 1, timeout=0)
    return updates


def webp_bytes(width: int = 512, height: int = 512) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGBA", (width, height), "yellow").save(buffer, format="WEBP")
    return buffer.getvalue()


# -- sendPoll --------------------------------------------------------------------------------


async def test_send_poll_answers_a_message_with_the_poll(bot: Bot, emu: TelegramEmulator) -> None:
    user = emu.user(1001, "Ann")
    sent = await bot.send_poll(
        user.id,
        "Best <b>season</b>?",
        [InputPollOption(text="Spring"), InputPollOption(text="<i>Summer</i>"), "Autumn"],
        is_anonymous=False,
        question_parse_mode="HTML",
        reply_markup=keyboard("Later"),
    )
    poll = sent.poll
    assert poll is not None
    assert sent.text is None
    assert poll.question == "Best season?"
    assert poll.question_entities is None  # only custom emoji survive in a question
    assert [o.text for o in poll.options] == ["Spring", "<i>Summer</i>", "Autumn"]
    assert [o.voter_count for o in poll.options] == [0, 0, 0]
    assert len({o.persistent_id for o in poll.options}) == 3
    assert poll.id.isdigit()
    assert (poll.type, poll.is_anonymous, poll.is_closed) == ("regular", False, False)
    assert (poll.allows_multiple_answers, poll.allows_revoting, poll.members_only) == (
        False,
        True,
        False,
    )
    assert poll.total_voter_count == 0
    assert poll.correct_option_ids is None
    message = user.transcript[-1]
    assert message.kind == "poll"
    assert message.buttons == [["Later"]]
    assert "regular: Best season? [Spring (0) | <i>Summer</i> (0) | Autumn (0)]" in user.render()
    emu.assert_no_errors()


async def test_send_quiz(bot: Bot, emu: TelegramEmulator, api: RawApi) -> None:
    chat = emu.user(1001).id
    quiz = await bot.send_poll(
        chat,
        "2 + 2?",
        ["3", "4", "5"],
        type="quiz",
        correct_option_ids=[1],
        explanation="<b>Four</b>, see https://example.com",
        explanation_parse_mode="HTML",
    )
    poll = quiz.poll
    assert poll is not None
    assert (poll.type, poll.is_anonymous, poll.allows_revoting) == ("quiz", True, False)
    assert poll.correct_option_ids == [1]
    assert poll.explanation == "Four, see https://example.com"
    assert [e.type for e in poll.explanation_entities or []] == ["bold", "url"]
    # Since Bot API 9.6 a quiz may have several correct answers and allow several choices.
    multi = await bot.send_poll(
        chat,
        "Primes?",
        ["2", "4", "5"],
        type="quiz",
        correct_option_ids=[0, 2],
        allows_multiple_answers=True,
    )
    assert multi.poll is not None
    assert multi.poll.correct_option_ids == [0, 2]
    assert multi.poll.allows_multiple_answers
    # The field of older libraries (Bot API < 9.6), as form fields with plain-string options.
    status, body = await api.form(
        "sendPoll",
        {
            "chat_id": str(chat),
            "question": "Capital of France?",
            "options": json.dumps(["Rome", "Paris", "Oslo"]),
            "type": "quiz",
            "correct_option_id": "1",
        },
    )
    assert status == 200, body
    assert body["result"]["poll"]["correct_option_ids"] == [1]
    assert [o["text"] for o in body["result"]["poll"]["options"]] == ["Rome", "Paris", "Oslo"]
    emu.assert_no_errors()


async def test_send_poll_refuses_what_telegram_refuses(api: RawApi, emu: TelegramEmulator) -> None:
    chat = emu.user(1001).id

    def poll(**params: Any) -> dict[str, Any]:
        return {
            "chat_id": chat,
            "question": "Q?",
            "options": [{"text": "a"}, {"text": "b"}],
        } | params

    assert await api.error("sendPoll", **poll(options=[])) == (
        "Bad Request: poll must have at least one answer option"
    )
    assert await api.error("sendPoll", **poll(options=[{"text": str(i)} for i in range(13)])) == (
        "Bad Request: poll can't have more than 12 options"
    )
    assert await api.error("sendPoll", **poll(options=[{"text": "a"}, {"text": "  "}])) == (
        "Bad Request: text must be non-empty"
    )
    assert await api.error("sendPoll", **poll(options=[{"text": "x" * 101}])) == (
        "Bad Request: poll options length must not exceed 100"
    )
    assert await api.error("sendPoll", **poll(question="x" * 301)) == (
        "Bad Request: poll question length must not exceed 300"
    )
    assert await api.error("sendPoll", **poll(type="survey")) == (
        "Bad Request: unsupported poll type specified"
    )
    wrong = "Bad Request: wrong correct option ID specified"
    assert await api.error("sendPoll", **poll(type="quiz")) == wrong
    assert await api.error("sendPoll", **poll(type="quiz", correct_option_ids=[2])) == wrong
    assert await api.error("sendPoll", **poll(type="quiz", correct_option_ids=[-1])) == wrong
    assert await api.error("sendPoll", **poll(type="quiz", correct_option_ids=[1, 0])) == wrong
    assert await api.error("sendPoll", **poll(type="quiz", correct_option_id=5)) == wrong
    assert await api.error("sendPoll", **poll(options=[{"text": "a", "voter_count": 1}, 5])) == (
        "Bad Request: can't parse InputPollOption: Expected InputPollOption to be an Object"
    )
    assert await api.error("sendPoll", **poll(options=[{"text_parse_mode": "HTML"}])) == (
        "Bad Request: can't parse InputPollOption: Can't find field \"text\""
    )
    assert await api.error("sendPoll", **poll(options="[not json")) == (
        "Bad Request: can't parse options JSON object"
    )
    assert await api.error("sendPoll", chat_id=chat, question="Q?") == (
        'Bad Request: parameter "options" is required'
    )
    assert await api.error("sendPoll", **poll(chat_id=42)) == "Bad Request: chat not found"
    assert await api.error("sendPoll", **poll(reply_parameters={"message_id": 99}, options=[])) == (
        "Bad Request: message to be replied not found"
    )
    # Bot API 10.x: one option is a poll (more can be added later), unknown fields are ignored.
    status, body = await api.call("sendPoll", **poll(options=[{"text": "only", "voter_count": 3}]))
    assert status == 200, body
    assert body["result"]["poll"]["options"][0]["voter_count"] == 0
    assert [m.kind for m in emu.user(1001).transcript] == ["poll"]  # refused polls leave nothing


async def test_closed_polls_and_closing_times(bot: Bot, emu: TelegramEmulator) -> None:
    user = emu.user(1001)
    preview = await bot.send_poll(user.id, "Preview", ["a", "b"], is_closed=True)
    assert preview.poll is not None
    assert preview.poll.is_closed
    with pytest.raises(ValueError, match="closed"):
        await user.vote(user.transcript[-1], 0)
    started = time.time()
    timed = await bot.send_poll(user.id, "Quick!", ["a", "b"], open_period=5, close_date=1)
    assert timed.poll is not None
    assert timed.poll.open_period == 5  # open_period wins over close_date, as in TDLib
    assert timed.poll.close_date is not None
    assert abs(timed.poll.close_date.timestamp() - (started + 5)) <= 1.5
    await updates_of(bot)
    closed = await user.wait_for(lambda m: m.poll is not None and m.poll["is_closed"], timeout=7)
    assert closed.message_id == timed.message_id
    assert not closed.edited  # closing is no edit
    [update] = await updates_of(bot)
    assert update.poll is not None
    assert (update.poll.id, update.poll.is_closed) == (timed.poll.id, True)
    emu.assert_no_errors()


# -- votes ---------------------------------------------------------------------------------


async def test_votes_become_poll_answer_and_poll_updates(bot: Bot, emu: TelegramEmulator) -> None:
    user = emu.user(1001, "Ann")
    sent = await bot.send_poll(user.id, "Colour?", ["red", "green", "blue"], is_anonymous=False)
    assert sent.poll is not None
    poll_message = user.transcript[-1]
    await user.vote(poll_message, 1)
    answer, state = await updates_of(bot)
    assert answer.poll_answer is not None
    assert answer.poll_answer.poll_id == sent.poll.id
    assert answer.poll_answer.user is not None
    assert answer.poll_answer.user.first_name == "Ann"
    assert answer.poll_answer.option_ids == [1]
    assert answer.poll_answer.option_persistent_ids == [sent.poll.options[1].persistent_id]
    assert state.poll is not None
    assert [o.voter_count for o in state.poll.options] == [0, 1, 0]
    assert state.poll.total_voter_count == 1
    # The message shows the counts too.
    assert user.transcript[-1].poll == state.poll.model_dump(mode="json", exclude_none=True)
    await user.vote(poll_message, 1)  # the same answer: nothing happens
    assert await updates_of(bot) == []
    await user.vote(poll_message, [2])  # regular polls allow revoting
    await user.retract_vote(poll_message)
    updates = await updates_of(bot)
    assert [u.poll_answer.option_ids for u in updates if u.poll_answer] == [[2], []]
    assert [u.poll.total_voter_count for u in updates if u.poll] == [1, 0]
    with pytest.raises(ValueError, match="one answer"):
        await user.vote(poll_message, [0, 1])
    with pytest.raises(ValueError, match="options 0-2"):
        await user.vote(poll_message, 3)
    emu.assert_no_errors()


async def test_anonymous_polls_and_quizzes(bot: Bot, emu: TelegramEmulator) -> None:
    ann, bob = emu.user(1001, "Ann"), emu.user(1002, "Bob")
    await bot.send_poll(ann.id, "Anonymous?", ["yes", "no"], allows_multiple_answers=True)
    await ann.vote(ann.transcript[-1], [0, 1])
    [update] = await updates_of(bot)  # no poll_answer: bots never learn who voted
    assert update.poll is not None
    assert [o.voter_count for o in update.poll.options] == [1, 1]
    await bot.send_poll(bob.id, "Quiz", ["a", "b"], type="quiz", correct_option_ids=[0])
    await bob.vote(bob.transcript[-1], 1)
    with pytest.raises(ValueError, match="change a vote"):
        await bob.vote(bob.transcript[-1], 0)
    with pytest.raises(ValueError, match="retract"):
        await bob.retract_vote(bob.transcript[-1])
    [update] = await updates_of(bot)
    assert update.poll is not None
    assert update.poll.correct_option_ids == [0]
    text = await bob.send_text("not a poll")
    with pytest.raises(LookupError, match="not a poll"):
        await bob.vote(text, 0)
    emu.assert_no_errors()


async def test_stop_poll(bot: Bot, emu: TelegramEmulator, api: RawApi) -> None:
    user = emu.user(1001)
    sent = await bot.send_poll(
        user.id, "Lunch?", ["pizza", "sushi"], is_anonymous=False, reply_markup=keyboard("Vote")
    )
    await user.vote(user.transcript[-1], 0)
    await updates_of(bot)
    stopped = await bot.stop_poll(user.id, sent.message_id, reply_markup=keyboard("Results"))
    assert stopped.is_closed
    assert [o.voter_count for o in stopped.options] == [1, 0]
    [update] = await updates_of(bot)
    assert update.poll is not None
    assert update.poll.is_closed
    message = user.transcript[-1]
    assert message.poll is not None
    assert message.poll["is_closed"]
    assert message.buttons == [["Results"]]
    assert "edit_date" not in message.raw
    with pytest.raises(ValueError, match="closed"):
        await user.vote(message, 1)
    assert await api.error("stopPoll", chat_id=user.id, message_id=sent.message_id) == (
        "Bad Request: poll has already been closed"
    )
    text = await bot.send_message(user.id, "not a poll")
    assert await api.error("stopPoll", chat_id=user.id, message_id=text.message_id) == (
        "Bad Request: message is not a poll"
    )
    assert await api.error("stopPoll", chat_id=user.id, message_id=999) == (
        "Bad Request: message with poll to stop not found"
    )
    own = await user.send_poll("Mine", ["x", "y"])
    assert await api.error("stopPoll", chat_id=user.id, message_id=own.message_id) == (
        "Bad Request: poll can't be stopped"
    )
    # Stopping without a keyboard removes it, as an edit does.
    second = await bot.send_poll(user.id, "Again?", ["a", "b"], reply_markup=keyboard("x"))
    await bot.stop_poll(user.id, second.message_id)
    assert user.transcript[-1].buttons == []


async def test_user_polls_reach_the_bot_but_not_their_votes(
    bot: Bot, emu: TelegramEmulator
) -> None:
    user = emu.user(1001)
    mine = await user.send_poll("Tea or coffee?", ["tea", "coffee"], is_anonymous=False)
    quiz = await user.send_poll("1+1?", ["1", "2"], type="quiz", correct_option_ids=[1])
    await user.vote(mine, 0)
    first, second = await updates_of(bot)  # the two messages; no update about the vote
    assert first.message is not None
    assert first.message.poll is not None
    assert first.message.poll.question == "Tea or coffee?"
    assert not first.message.poll.is_anonymous
    assert second.message is not None
    assert second.message.poll is not None
    assert second.message.poll.correct_option_ids == [1]  # sent to the private chat with the bot
    assert quiz.kind == "poll"
    assert user.transcript[0].poll is not None
    assert user.transcript[0].poll["total_voter_count"] == 1


# -- locations, venues, contacts ---------------------------------------------------------------


async def test_locations_and_venues(bot: Bot, emu: TelegramEmulator, api: RawApi) -> None:
    user = emu.user(1001)
    sent = await bot.send_location(user.id, 48.8584, 2.2945, horizontal_accuracy=2000, heading=90)
    assert sent.location is not None
    assert (sent.location.latitude, sent.location.longitude) == (48.8584, 2.2945)
    assert sent.location.horizontal_accuracy == 1500  # "0-1500"
    assert sent.location.heading is None  # only live locations have one
    assert sent.location.live_period is None
    assert user.transcript[-1].kind == "location"
    venue = await bot.send_venue(user.id, 48.8584, 2.2945, "Eiffel Tower", "Champ de Mars")
    assert venue.venue is not None
    assert venue.venue.title == "Eiffel Tower"
    assert venue.venue.location.latitude == 48.8584
    assert venue.location is not None  # "the location field will also be set"
    assert user.transcript[-1].kind == "venue"
    assert "Eiffel Tower, Champ de Mars" in user.render()
    base = {"chat_id": user.id, "latitude": 10.0, "longitude": 20.0}
    assert await api.error("sendLocation", **(base | {"latitude": 90.5})) == (
        "Bad Request: wrong location specified"
    )
    assert await api.error(
        "sendVenue", **(base | {"longitude": -181, "title": "t", "address": "a"})
    ) == ("Bad Request: wrong location specified")
    assert await api.error("sendLocation", **(base | {"live_period": 59})) == (
        "Bad Request: wrong live location period specified"
    )
    assert await api.error("sendLocation", **(base | {"live_period": 60, "heading": 361})) == (
        "Bad Request: wrong live location heading specified"
    )
    assert await api.error(
        "sendLocation", **(base | {"live_period": 60, "proximity_alert_radius": 100001})
    ) == ("Bad Request: wrong live location proximity alert radius specified")
    assert await api.error("sendLocation", chat_id=user.id, latitude=1) == (
        'Bad Request: parameter "longitude" is required'
    )
    assert await api.error("sendVenue", **base, title="t") == (
        'Bad Request: parameter "address" is required'
    )


async def test_live_locations(bot: Bot, emu: TelegramEmulator, api: RawApi) -> None:
    user = emu.user(1001)
    live = await bot.send_location(
        user.id, 1.0, 2.0, live_period=600, heading=45, proximity_alert_radius=100
    )
    assert live.location is not None
    assert (live.location.live_period, live.location.heading) == (600, 45)
    assert live.location.proximity_alert_radius == 100
    moved = await bot.edit_message_live_location(
        latitude=1.5, longitude=2.5, chat_id=user.id, message_id=live.message_id, heading=90
    )
    assert not isinstance(moved, bool)
    assert moved.location is not None
    assert (moved.location.latitude, moved.location.live_period) == (1.5, 600)
    assert moved.edit_date is not None
    seen = user.transcript[-1]
    assert seen.edited
    assert seen.location == {
        "latitude": 1.5,
        "longitude": 2.5,
        "live_period": 600,
        "heading": 90,
    }
    same = {"chat_id": user.id, "message_id": live.message_id, "latitude": 1.5, "longitude": 2.5}
    assert await api.error("editMessageLiveLocation", **(same | {"heading": 90})) == NOT_MODIFIED
    stopped = await bot.stop_message_live_location(chat_id=user.id, message_id=live.message_id)
    assert not isinstance(stopped, bool)
    assert stopped.location is not None
    assert stopped.location.live_period is None
    cannot = "Bad Request: message can't be edited"
    assert await api.error("editMessageLiveLocation", **same) == cannot
    assert (
        await api.error("stopMessageLiveLocation", chat_id=user.id, message_id=live.message_id)
        == cannot
    )
    still = await bot.send_location(user.id, 1.0, 2.0)
    assert (
        await api.error("editMessageLiveLocation", **(same | {"message_id": still.message_id}))
        == cannot
    )
    assert await api.error("editMessageLiveLocation", **(same | {"message_id": 999})) == (
        "Bad Request: message to edit not found"
    )
    forever = await bot.send_location(user.id, 1.0, 2.0, live_period=0x7FFFFFFF)
    assert forever.location is not None
    assert forever.location.live_period == 0x7FFFFFFF


async def test_contacts(bot: Bot, emu: TelegramEmulator, api: RawApi) -> None:
    user = emu.user(1001)
    sent = await bot.send_contact(
        user.id, "+15551234567", "Jane", last_name="Doe", vcard="BEGIN:VCARD"
    )
    assert sent.contact is not None
    assert (sent.contact.phone_number, sent.contact.first_name) == ("+15551234567", "Jane")
    assert (sent.contact.last_name, sent.contact.vcard) == ("Doe", "BEGIN:VCARD")
    assert sent.contact.user_id is None
    assert "[contact] Jane Doe +15551234567" in user.render()
    assert await api.error("sendContact", chat_id=user.id, phone_number="+1") == (
        'Bad Request: parameter "first_name" is required'
    )


# -- dice and stickers ---------------------------------------------------------------------------


async def test_dice(bot: Bot, emu: TelegramEmulator, api: RawApi) -> None:
    user = emu.user(1001)
    default = await bot.send_dice(user.id)
    assert default.dice is not None
    assert default.dice.emoji == "🎲"
    seen: dict[str, set[int]] = {}
    for emoji, top in limits.DICE_VALUES.items():
        for _ in range(40):
            message = await bot.send_dice(user.id, emoji=emoji)
            assert message.dice is not None
            assert message.dice.emoji == emoji
            assert 1 <= message.dice.value <= top
            seen.setdefault(emoji, set()).add(message.dice.value)
    assert len(seen["🎲"]) > 1  # random, not a constant
    football = await bot.send_dice(user.id, emoji="⚽️")  # with a variation selector
    assert football.dice is not None
    assert football.dice.emoji == "⚽"
    assert (
        await api.error("sendDice", chat_id=user.id, emoji="🃏") == "Bad Request: EMOTICON_INVALID"
    )
    assert user.transcript[-1].kind == "dice"


async def test_stickers(bot: Bot, emu: TelegramEmulator, api: RawApi) -> None:
    user = emu.user(1001)
    uploaded = await bot.send_sticker(
        user.id, BufferedInputFile(webp_bytes(512, 384), "cat.webp"), emoji="🐱"
    )
    sticker = uploaded.sticker
    assert sticker is not None
    assert (sticker.type, sticker.width, sticker.height) == ("regular", 512, 384)
    assert (sticker.is_animated, sticker.is_video, sticker.emoji) == (False, False, "🐱")
    again = await bot.send_sticker(user.id, sticker.file_id, emoji="🐶")
    assert again.sticker is not None
    assert again.sticker.file_id == sticker.file_id
    assert again.sticker.emoji == "🐱"  # the emoji is "only for just uploaded stickers"
    animated = await bot.send_sticker(user.id, BufferedInputFile(b"{}", "hi.tgs"))
    assert animated.sticker is not None
    assert (animated.sticker.is_animated, animated.sticker.is_video) == (True, False)
    video = await bot.send_sticker(user.id, BufferedInputFile(b"\x1aE\xdf\xa3", "hi.webm"))
    assert video.sticker is not None
    assert (video.sticker.is_animated, video.sticker.is_video) == (False, True)
    file = await bot.get_file(sticker.file_id)
    assert file.file_path is not None
    assert file.file_path.startswith("stickers/")
    photo = await bot.send_photo(user.id, BufferedInputFile(png_bytes(), "p.png"))
    assert photo.photo is not None
    with pytest.raises(TelegramBadRequest, match="type of file mismatch"):
        await bot.send_sticker(user.id, photo.photo[-1].file_id)
    assert await api.error("sendSticker", chat_id=user.id, sticker="nope") == (
        "Bad Request: wrong file identifier/HTTP URL specified"
    )
    assert (
        await api.error("sendSticker", chat_id=user.id)
        == "Bad Request: there is no sticker in the request"
    )
    assert user.transcript[0].kind == "sticker"
    assert user.transcript[0].file_id == sticker.file_id


# -- copies and edits of the new contents -----------------------------------------------------


async def test_copy_message_copies_the_new_contents(bot: Bot, emu: TelegramEmulator) -> None:
    user = emu.user(1001)
    location = await user.send_location(51.5, -0.12)
    sticker = await user.send_sticker("🙂")
    contact = await user.share_contact("+441234")
    poll = await user.send_poll("Q?", ["a", "b"], type="quiz", correct_option_ids=[1])
    await user.vote(poll, 1)
    dice = await user.send_dice("🎰")
    for source in (location, sticker, contact, poll, dice):
        await bot.copy_message(user.id, user.id, source.message_id, caption="ignored")
    copies = user.transcript[-5:]
    assert [m.kind for m in copies] == ["location", "sticker", "contact", "poll", "dice"]
    assert copies[4].dice is not None
    assert copies[4].dice["emoji"] == "🎰"
    assert 1 <= copies[4].dice["value"] <= 64  # a copy is a new throw
    assert all(m.from_bot for m in copies)
    assert copies[0].location == location.location
    assert copies[1].file_id == sticker.file_id
    assert copies[2].contact == contact.contact
    assert copies[3].poll is not None
    assert poll.poll is not None
    assert copies[3].poll["id"] != poll.poll["id"]  # a new poll, the bot's, without votes
    assert copies[3].poll["total_voter_count"] == 0
    assert copies[3].poll["correct_option_ids"] == [1]
    await user.vote(copies[3], 0)
    updates = await updates_of(bot)
    assert updates[-1].poll is not None
    assert updates[-1].poll.id == copies[3].poll["id"]
    # A reply keyboard markup edit keeps the poll.
    await bot.edit_message_reply_markup(
        chat_id=user.id, message_id=copies[3].message_id, reply_markup=keyboard("k")
    )
    assert user.transcript[-2].poll is not None
    assert user.transcript[-2].buttons == [["k"]]
    emu.assert_no_errors()


# -- what users send ---------------------------------------------------------------------------


async def test_user_locations_contacts_stickers_and_dice(bot: Bot, emu: TelegramEmulator) -> None:
    user = emu.user(1001, "Ann", last_name="Lee")
    await user.send_location(55.75, 37.62, horizontal_accuracy=20)
    await user.send_location(55.75, 37.62, live_period=900, heading=10)
    await user.send_venue(55.75, 37.62, "Red Square", "Moscow")
    await user.send_contact("+7000", "Bob", user_id=2002)
    await user.share_contact("+7999")
    await user.send_sticker("🔥", set_name="Fire")
    await user.send_sticker("🎬", is_video=True)
    await user.send_dice("🎯")
    with pytest.raises(ValueError, match="wrong location specified"):
        await user.send_location(100, 0)
    with pytest.raises(ValueError, match="dice"):
        await user.send_dice("🃏")
    messages = [u.message for u in await updates_of(bot)]
    assert all(m is not None and m.from_user is not None for m in messages)
    first, live, venue, contact, own, fire, video, dice = messages
    assert first is not None
    assert first.location is not None
    assert (first.location.latitude, first.location.horizontal_accuracy) == (55.75, 20)
    assert live is not None
    assert live.location is not None
    assert (live.location.live_period, live.location.heading) == (900, 10)
    assert venue is not None
    assert venue.venue is not None
    assert venue.location is not None
    assert contact is not None
    assert contact.contact is not None
    assert (contact.contact.first_name, contact.contact.user_id) == ("Bob", 2002)
    assert own is not None
    assert own.contact is not None
    assert (own.contact.first_name, own.contact.last_name, own.contact.user_id) == (
        "Ann",
        "Lee",
        user.id,
    )
    assert fire is not None
    assert fire.sticker is not None
    assert (fire.sticker.emoji, fire.sticker.set_name, fire.sticker.type) == (
        "🔥",
        "Fire",
        "regular",
    )
    assert (fire.sticker.width, fire.sticker.height, fire.sticker.is_animated) == (512, 512, False)
    assert await bot.download(fire.sticker.file_id) is not None
    assert video is not None
    assert video.sticker is not None
    assert video.sticker.is_video
    assert dice is not None
    assert dice.dice is not None
    assert dice.dice.emoji == "🎯"
    assert 1 <= dice.dice.value <= 6
    # The user re-sends a sticker by its file_id (from the recent stickers panel).
    again = await user.send_sticker(file_id=fire.sticker.file_id)
    assert again.sticker is not None
    assert again.sticker["file_id"] == fire.sticker.file_id
    with pytest.raises(LookupError):
        await user.send_sticker(file_id="nope")


async def test_user_edits_their_message(bot: Bot, emu: TelegramEmulator) -> None:
    user = emu.user(1001)
    original = await user.send_text("helo wrld")
    photo = await user.send_photo(png_bytes(), caption="first caption")
    await updates_of(bot)
    edited = await user.edit_text(original, "hello @world /start")
    assert edited.text == "hello @world /start"
    assert edited.edited
    await user.edit_text(photo, "second caption")
    first, second = await updates_of(bot)
    assert first.edited_message is not None
    assert first.message is None
    assert first.edited_message.message_id == original.message_id
    assert first.edited_message.text == "hello @world /start"
    assert [e.type for e in first.edited_message.entities or []] == ["mention", "bot_command"]
    assert first.edited_message.edit_date is not None
    assert user.transcript[0].raw["edit_date"] >= user.transcript[0].raw["date"]
    assert second.edited_message is not None
    assert second.edited_message.caption == "second caption"
    assert second.edited_message.photo is not None
    assert user.transcript[0].text == "hello @world /start"
    assert "(edited)" in user.render()
    with pytest.raises(ValueError, match="same"):
        await user.edit_text(edited, "hello @world /start")
    with pytest.raises(ValueError, match="empty"):
        await user.edit_text(edited, " ")
    sent = await bot.send_message(user.id, "from the bot")
    with pytest.raises(LookupError):
        await user.edit_text(user.transcript[-1], "mine now")
    sticker = await user.send_sticker()
    with pytest.raises(ValueError, match="no text"):
        await user.edit_text(sticker, "x")
    assert sent.message_id


async def test_reply_keyboard_buttons_are_visible(bot: Bot, emu: TelegramEmulator) -> None:
    from aiogram.types import KeyboardButton, KeyboardButtonPollType, ReplyKeyboardMarkup

    user = emu.user(1001)
    await bot.send_message(
        user.id,
        "Share?",
        reply_markup=ReplyKeyboardMarkup(
            keyboard=[
                [KeyboardButton(text="📍 Location", request_location=True)],
                [KeyboardButton(text="☎️ Contact", request_contact=True)],
                [KeyboardButton(text="📊 Poll", request_poll=KeyboardButtonPollType(type="quiz"))],
            ]
        ),
    )
    assert user.reply_keyboard == [["📍 Location"], ["☎️ Contact"], ["📊 Poll"]]
    buttons = [row[0] for row in user.reply_keyboard_buttons]
    assert buttons[0]["request_location"] is True
    assert buttons[1]["request_contact"] is True
    assert buttons[2]["request_poll"] == {"type": "quiz"}


async def test_methods_still_missing_answer_501(api: RawApi, emu: TelegramEmulator) -> None:
    status, body = await api.call("sendVideoNote", chat_id=1, video_note="x")
    assert status == 501
    assert "sendVideoNote" in body["description"]
    assert emu.errors[-1].method == "sendVideoNote"


async def test_wait_idle_waits_for_poll_updates(bot: Bot, emu: TelegramEmulator) -> None:
    user = emu.user(1001)
    await bot.send_poll(user.id, "Q", ["a", "b"], is_anonymous=False)
    await user.vote(user.transcript[-1], 0)
    with pytest.raises(TimeoutError):
        await user.wait_idle(quiet=0.05, timeout=0.3)  # the bot has not fetched them yet
    fetch = asyncio.create_task(updates_of(bot))
    await user.wait_idle(quiet=0.05, timeout=3)
    assert len(await fetch) == 2


# -- the limits are the documentation's ---------------------------------------------------------

SHARED_SCHEMA = (
    Path(__file__).resolve().parents[3] / "shared" / "botapi" / "aiogram-butcher-schema.json"
)


@cache
def _prose() -> dict[tuple[str, str], str]:
    schema = json.loads(SHARED_SCHEMA.read_text(encoding="utf-8"))
    return {
        (child["name"], annotation["name"]): annotation["description"]
        for section in schema["items"]
        for child in section["children"]
        for annotation in child.get("annotations") or []
    }


@pytest.mark.skipif(not SHARED_SCHEMA.exists(), reason="shared Bot API schema not available")
def test_poll_and_location_limits_match_the_documentation() -> None:
    prose = _prose()
    assert f"1-{limits.POLL_QUESTION_MAX} characters" in prose[("sendPoll", "question")]
    assert (
        f"{limits.POLL_OPTIONS_MIN}-{limits.POLL_OPTIONS_MAX} answer options"
        in prose[("sendPoll", "options")]
    )
    assert f"1-{limits.POLL_OPTION_MAX} characters" in prose[("InputPollOption", "text")]
    live = prose[("sendLocation", "live_period")]
    assert f"between {limits.LIVE_PERIOD_MIN} and {limits.LIVE_PERIOD_MAX}" in live
    assert hex(limits.LIVE_PERIOD_FOREVER).upper().replace("X", "x") in live
    assert f"between 1 and {limits.HEADING_MAX}" in prose[("sendLocation", "heading")]
    assert (
        f"between 1 and {limits.PROXIMITY_ALERT_RADIUS_MAX}"
        in prose[("sendLocation", "proximity_alert_radius")]
    )
    assert f"0-{limits.HORIZONTAL_ACCURACY_MAX}" in prose[("sendLocation", "horizontal_accuracy")]
    dice = prose[("sendDice", "emoji")]  # (this copy of the schema lost the emoji)
    assert "must be one of '', '', '', '', '', or ''" in dice
    assert len(limits.DICE_VALUES) == 6
    assert sorted(limits.DICE_VALUES.values()) == [5, 5, 6, 6, 6, 64]
    for top in (6, 5, 64):
        assert f"values 1-{top} for" in dice
