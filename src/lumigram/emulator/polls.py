"""Polls after they are sent: votes, closing (stopPoll, ``open_period``/``close_date``).

As Telegram does, a bot hears about a poll only if it sent it: a vote in a non-anonymous
poll becomes a ``poll_answer`` update, and every change of the poll's state (new counts,
closed) a ``poll`` update with the whole Poll. The poll's message always shows the
current counts; closing it is a change of the message without an ``edit_date``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from .state import BotState, ChatState, EmulatorState, PollRecord, StoredMessage, UserProfile

JSON = dict[str, Any]
_KEEP: Any = object()


class VoteRefusedError(ValueError):
    """What the Telegram app would not let the user do (vote in a closed poll...)."""


def new_poll_id(state: EmulatorState) -> str:
    """A long decimal identifier, like Telegram's poll ids."""
    return str(5_300_000_000_000_000_000 + state.next_number() * 7_919_003 + int(time.time()))


def register(state: EmulatorState, bot: BotState, record: PollRecord) -> None:
    bot.polls[record.id] = record
    if record.close_date is not None and not record.is_closed:
        delay = max(0.0, record.close_date - time.time())
        record.timer = asyncio.get_running_loop().call_later(
            delay, _close_when_due, state, bot, record
        )


def poll_of(bot: BotState, stored: StoredMessage) -> PollRecord | None:
    poll = stored.raw.get("poll")
    if not isinstance(poll, dict):
        return None
    return bot.polls.get(str(poll.get("id")))


def _message(bot: BotState, record: PollRecord) -> tuple[ChatState, StoredMessage] | None:
    chat = bot.chats.get(record.chat_id)
    stored = chat.messages.get(record.message_id) if chat is not None else None
    if chat is None or stored is None:
        return None
    return chat, stored


def _push_state(bot: BotState, record: PollRecord) -> None:
    if record.sent_by_bot:
        bot.updates.push("poll", record.to_poll())


def close(
    state: EmulatorState, bot: BotState, record: PollRecord, reply_markup: Any = _KEEP
) -> None:
    """Close the poll (no more votes); ``reply_markup`` (an inline keyboard or None)
    replaces the message's keyboard, as stopPoll does."""
    record.is_closed = True
    if record.timer is not None:
        record.timer.cancel()
        record.timer = None
    found = _message(bot, record)
    if found is not None:
        chat, stored = found
        raw = dict(stored.raw)
        raw["poll"] = record.to_poll(in_message=True)
        if reply_markup is not _KEEP:
            raw.pop("reply_markup", None)
            if reply_markup:
                raw["reply_markup"] = reply_markup
        state.change_in_place(chat, stored, raw)
    _push_state(bot, record)


def _close_when_due(state: EmulatorState, bot: BotState, record: PollRecord) -> None:
    record.timer = None
    if not record.is_closed:
        close(state, bot, record)


def vote(
    bot: BotState,
    record: PollRecord,
    user: UserProfile,
    option_ids: list[int],
) -> bool:
    """The user chooses ``option_ids`` (empty: retracts the vote). Refused as the app
    refuses it; False when nothing changes (the same answer again)."""
    chosen = sorted(set(option_ids))
    if record.is_closed:
        raise VoteRefusedError("the poll is closed")
    if len(chosen) > 1 and not record.allows_multiple_answers:
        raise VoteRefusedError("the poll allows one answer only")
    if not chosen and not record.allows_revoting:
        raise VoteRefusedError("the poll does not allow to retract a vote")
    if any(not 0 <= index < len(record.options) for index in chosen):
        raise VoteRefusedError(f"the poll has options 0-{len(record.options) - 1} only")
    previous = record.votes.get(user.id)
    if previous is not None and not record.allows_revoting:
        raise VoteRefusedError("the poll does not allow to change a vote")
    if previous == chosen or (previous is None and not chosen):
        return False
    if chosen:
        record.votes[user.id] = chosen
    else:
        del record.votes[user.id]
    found = _message(bot, record)
    if found is not None:
        chat, stored = found
        stored.raw["poll"] = record.to_poll(in_message=True)
        chat.changed.notify()
    if record.sent_by_bot and not record.is_anonymous:
        bot.updates.push(
            "poll_answer",
            {
                "poll_id": record.id,
                "user": user.to_user(),
                "option_ids": chosen,
                "option_persistent_ids": [str(index) for index in chosen],
            },
        )
    _push_state(bot, record)
    return True


def cancel_timers(bot: BotState) -> None:
    for record in bot.polls.values():
        if record.timer is not None:
            record.timer.cancel()
            record.timer = None
