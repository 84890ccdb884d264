"""python-telegram-bot's examples/pollbot.py, ported to aiogram: /poll sends a regular
poll and reacts to every ``poll_answer``; /quiz sends a quiz and closes it from its
``poll`` updates; /preview asks the user for a poll (``request_poll``) and answers it with
a closed copy."""

from __future__ import annotations

from typing import Any

from aiogram import Bot, F, Router, html
from aiogram.filters import Command, CommandStart
from aiogram.types import (
    InputPollOption,
    KeyboardButton,
    KeyboardButtonPollType,
    Message,
    Poll,
    PollAnswer,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
)

TOTAL_VOTER_COUNT = 1


def make_router() -> Router:
    router = Router(name="polls")
    polls: dict[str, dict[str, Any]] = {}  # bot_data of the original
    quizzes: dict[str, dict[str, Any]] = {}

    @router.message(CommandStart())
    async def start(message: Message) -> None:
        await message.answer(
            "Please select /poll to get a Poll, /quiz to get a Quiz or /preview"
            " to generate a preview for your poll"
        )

    @router.message(Command("poll"))
    async def poll(message: Message) -> None:
        questions: list[InputPollOption | str] = ["Good", "Really good", "Fantastic", "Great"]
        sent = await message.answer_poll(
            "How are you?", questions, is_anonymous=False, allows_multiple_answers=True
        )
        assert sent.poll is not None
        polls[sent.poll.id] = {
            "questions": questions,
            "message_id": sent.message_id,
            "chat_id": message.chat.id,
            "answers": 0,
        }

    @router.poll_answer()
    async def receive_poll_answer(poll_answer: PollAnswer, bot: Bot) -> None:
        answered = polls.get(poll_answer.poll_id)
        if answered is None or poll_answer.user is None:  # this bot only answers its polls
            return
        selected = [answered["questions"][i] for i in poll_answer.option_ids]
        answer_string = " and ".join(selected) if selected else "nothing anymore"
        await bot.send_message(
            answered["chat_id"],
            f"{html.quote(poll_answer.user.full_name)} feels {answer_string}!",
        )
        answered["answers"] += 1
        # Close poll after three participants voted
        if answered["answers"] == TOTAL_VOTER_COUNT:
            await bot.stop_poll(answered["chat_id"], answered["message_id"])

    @router.message(Command("quiz"))
    async def quiz(message: Message) -> None:
        questions: list[InputPollOption | str] = ["1", "2", "4", "20"]
        sent = await message.answer_poll(
            "How many eggs do you need for a cake?", questions, type="quiz", correct_option_ids=[2]
        )
        assert sent.poll is not None
        quizzes[sent.poll.id] = {"chat_id": message.chat.id, "message_id": sent.message_id}

    @router.poll()
    async def receive_quiz_answer(poll: Poll, bot: Bot) -> None:
        # the bot can receive closed poll updates we don't care about
        if poll.is_closed:
            return
        if poll.total_voter_count == TOTAL_VOTER_COUNT:
            quiz_data = quizzes.get(poll.id)
            if quiz_data is None:  # this means this poll answer update is from an old poll
                return
            await bot.stop_poll(quiz_data["chat_id"], quiz_data["message_id"])

    @router.message(Command("preview"))
    async def preview(message: Message) -> None:
        button = [[KeyboardButton(text="Press me!", request_poll=KeyboardButtonPollType())]]
        await message.answer(
            "Press the button to let the bot generate a preview for your poll",
            reply_markup=ReplyKeyboardMarkup(keyboard=button, one_time_keyboard=True),
        )

    @router.message(F.poll)
    async def receive_poll(message: Message) -> None:
        actual_poll = message.poll
        assert actual_poll is not None
        await message.answer_poll(
            question=actual_poll.question,
            options=[o.text for o in actual_poll.options],
            # with is_closed true, the poll/quiz is immediately closed
            is_closed=True,
            reply_markup=ReplyKeyboardRemove(),
        )

    return router
