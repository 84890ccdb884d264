"""sendPoll and stopPoll, with the checks of the Bot API server and TDLib (Bot API 10.x:
1-12 options, quizzes with ``correct_option_ids``, ``allows_revoting``)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from typing import Any

from . import limits, polls
from .calls import (
    Call,
    Handler,
    check_flood,
    existing_chat,
    markup_content,
    reply_content,
    send_flags,
    target_chat,
)
from .entities import format_text
from .errors import bad_request, forbidden
from .spec import scalar_param
from .state import PollRecord, copy_json, now

JSON = dict[str, Any]
WRONG_CORRECT_OPTION = "wrong correct option ID specified"
_NO_MEDIA = "poll media are not supported by the emulator"


def prepare_send_poll(raw: Mapping[str, Any]) -> Mapping[str, Any]:
    """Read ``options`` as the server does: a JSON array whose items are InputPollOption
    objects or plain strings (the Bot API before 7.3 had ``Array of String``, and the
    server still reads them), which become InputPollOption."""
    options = raw.get("options")
    if isinstance(options, str) and options:
        try:
            options = json.loads(options)
        except ValueError:
            raise bad_request("can't parse options JSON object") from None
    if not isinstance(options, list):
        return raw  # absent, or validation reports it
    for option in options:
        if not isinstance(option, (str, dict)):
            raise bad_request(
                "can't parse InputPollOption: Expected InputPollOption to be an Object"
            )
    fixed = dict(raw)
    fixed["options"] = [{"text": o} if isinstance(o, str) else o for o in options]
    return fixed


def _custom_emoji_only(entities: list[JSON]) -> list[JSON]:
    """ "Currently, only custom emoji entities are allowed" in questions and options."""
    return [e for e in entities if e["type"] == "custom_emoji"]


def _options(call: Call) -> list[JSON]:
    items: list[JSON] = call.params["options"]
    if len(items) < limits.POLL_OPTIONS_MIN:
        raise bad_request("poll must have at least one answer option")
    if len(items) > limits.POLL_OPTIONS_MAX:
        raise bad_request(f"poll can't have more than {limits.POLL_OPTIONS_MAX} options")
    options: list[JSON] = []
    for item in items:
        if item.get("media") is not None:
            raise bad_request(_NO_MEDIA)
        text, entities = format_text(
            item["text"], item.get("text_parse_mode"), item.get("text_entities")
        )
        if not text:
            raise bad_request("text must be non-empty")
        if len(text) > limits.POLL_OPTION_MAX:
            raise bad_request(f"poll options length must not exceed {limits.POLL_OPTION_MAX}")
        option: JSON = {"text": text}
        if kept := _custom_emoji_only(entities):
            option["text_entities"] = kept
        options.append(option)
    return options


def _correct_option_ids(call: Call, count: int) -> list[int]:
    ids: list[int] | None = call.get("correct_option_ids")
    if ids is None and call.raw.get("correct_option_id") not in (None, ""):
        # The field of Bot API < 9.6, still sent by older libraries.
        ids = [scalar_param("correct_option_id", "Integer", call.raw["correct_option_id"])]
    if not ids or any(not 0 <= i < count for i in ids):
        raise bad_request(WRONG_CORRECT_OPTION)
    if any(later <= earlier for earlier, later in itertools.pairwise(ids)):
        raise bad_request(WRONG_CORRECT_OPTION)  # "monotonically increasing"
    return list(ids)


def poll_from_params(call: Call, chat_id: int) -> PollRecord:
    question, question_entities = format_text(
        call.params["question"], call.get("question_parse_mode"), call.get("question_entities")
    )
    if not question:
        raise bad_request("text must be non-empty")
    if len(question) > limits.POLL_QUESTION_MAX:
        raise bad_request(f"poll question length must not exceed {limits.POLL_QUESTION_MAX}")
    options = _options(call)
    kind = call.get("type") or "regular"
    if kind not in ("regular", "quiz"):
        raise bad_request("unsupported poll type specified")
    if call.get("media") is not None or call.get("explanation_media") is not None:
        raise bad_request(_NO_MEDIA)
    record = PollRecord(
        id=polls.new_poll_id(call.state),
        chat_id=chat_id,
        sent_by_bot=True,
        question=question,
        question_entities=_custom_emoji_only(question_entities),
        options=options,
        type=kind,
        is_anonymous=bool(call.get("is_anonymous", True)),
        allows_multiple_answers=bool(call.get("allows_multiple_answers", False)),
        # "defaults to False for quizzes and to True for regular polls"
        allows_revoting=bool(call.get("allows_revoting", kind != "quiz")),
        is_closed=bool(call.get("is_closed", False)),
    )
    if kind == "quiz":
        record.correct_option_ids = _correct_option_ids(call, len(options))
        if call.get("explanation"):
            record.explanation, record.explanation_entities = format_text(
                call.params["explanation"],
                call.get("explanation_parse_mode"),
                call.get("explanation_entities"),
            )
    if call.get("description"):
        record.description, record.description_entities = format_text(
            call.params["description"],
            call.get("description_parse_mode"),
            call.get("description_entities"),
        )
    # open_period and close_date "can't be used together"; TDLib keeps open_period.
    if call.get("open_period"):
        record.open_period = int(call.params["open_period"])
        record.close_date = now() + record.open_period
    elif call.get("close_date"):
        record.close_date = int(call.params["close_date"])
    return record


async def send_poll(call: Call) -> Any:
    chat = target_chat(call)
    reply = reply_content(call, chat)  # the poll is checked once the replied message is found
    record = poll_from_params(call, chat.id)
    markup = markup_content(call, chat)
    check_flood(call, chat)
    content = reply | {"poll": record.to_poll(in_message=True)} | markup | send_flags(call)
    stored = call.state.bot_message(call.bot, chat, content)
    record.message_id = stored.message_id
    polls.register(call.state, call.bot, record)
    return copy_json(stored.raw)


async def stop_poll(call: Call) -> Any:
    markup = markup_content(call)
    chat = existing_chat(call)
    if chat.blocked:
        raise forbidden("bot was blocked by the user")
    stored = chat.messages.get(call.params["message_id"])
    if stored is None:
        raise bad_request("message with poll to stop not found")
    record = polls.poll_of(call.bot, stored)
    if record is None:
        raise bad_request("message is not a poll")
    if not stored.from_bot:
        raise bad_request("poll can't be stopped")
    if record.is_closed:
        raise bad_request("poll has already been closed")
    check_flood(call, chat, edit=True)
    polls.close(call.state, call.bot, record, markup.get("reply_markup"))
    return record.to_poll()


PREPARE = {"sendPoll": prepare_send_poll}
HANDLERS: dict[str, Handler] = {
    "sendPoll": send_poll,
    "stopPoll": stop_poll,
}
