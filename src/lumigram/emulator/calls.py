"""What a method handler gets, and the checks most sending methods share."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from . import limits
from .entities import format_text, utf16_len
from .errors import bad_request, forbidden, too_many_requests
from .markup import check_reply_markup, inline_of
from .media import MediaResolver
from .state import BotState, ChatState, EmulatorState, copy_json

JSON = dict[str, Any]


class Runtime(Protocol):
    """The parts of the server that handlers use besides the state."""

    state: EmulatorState
    media: MediaResolver

    def start_webhook(self, bot: BotState) -> None: ...

    def stop_webhook(self, bot: BotState) -> None: ...


@dataclass
class Answer:
    """A successful answer that also carries Telegram's optional ``description``."""

    result: Any
    description: str


@dataclass
class Call:
    runtime: Runtime
    bot: BotState
    method: str
    params: dict[str, Any]
    raw: Mapping[str, Any]

    @property
    def state(self) -> EmulatorState:
        return self.runtime.state

    def get(self, name: str, default: Any = None) -> Any:
        return self.params.get(name, default)


Handler = Callable[[Call], Awaitable[Any]]


def target_chat(call: Call, key: str = "chat_id") -> ChatState:
    """The chat a message goes to: it must exist and must not have blocked the bot."""
    chat = call.state.find_chat(call.bot, call.params[key])
    if chat is None:
        raise bad_request("chat not found")
    if chat.blocked:
        raise forbidden("bot was blocked by the user")
    return chat


def existing_chat(call: Call, key: str = "chat_id") -> ChatState:
    chat = call.state.find_chat(call.bot, call.params[key])
    if chat is None:
        raise bad_request("chat not found")
    return chat


def check_flood(call: Call, chat: ChatState, cost: int = 1, *, edit: bool = False) -> None:
    retry_after = call.state.flood.check(call.bot.id, chat.id, chat.type, cost, edit=edit)
    if retry_after is not None:
        raise too_many_requests(retry_after)


def text_content(call: Call) -> JSON:
    """``text`` + ``entities`` of a text message, limits checked after parsing."""
    plain, entities = format_text(call.params["text"], call.get("parse_mode"), call.get("entities"))
    if not plain:
        raise bad_request("text must be non-empty")
    if utf16_len(plain) > limits.TEXT_MAX:
        raise bad_request("message is too long")
    content: JSON = {"text": plain}
    if entities:
        content["entities"] = entities
    if call.get("link_preview_options") is not None:
        content["link_preview_options"] = call.params["link_preview_options"]
    return content


def caption_content(source: Mapping[str, Any], *, entities_key: str = "caption_entities") -> JSON:
    """``caption`` + ``caption_entities`` (empty dict when there is no caption)."""
    caption = source.get("caption")
    if not caption:
        return {}
    plain, entities = format_text(caption, source.get("parse_mode"), source.get(entities_key))
    if not plain:
        return {}
    if utf16_len(plain) > limits.CAPTION_MAX:
        raise bad_request("message caption is too long")
    content: JSON = {"caption": plain}
    if entities:
        content["caption_entities"] = entities
    if source.get("show_caption_above_media"):
        content["show_caption_above_media"] = True
    return content


def markup_content(call: Call, chat: ChatState | None = None, *, allow_pay: bool = False) -> JSON:
    """The inline keyboard stored on the message. A custom (reply) keyboard is not part
    of the message: it is remembered on the chat, where the user sees it."""
    markup = check_reply_markup(call.get("reply_markup"), allow_pay=allow_pay)
    if chat is not None and markup is not None:
        if "keyboard" in markup:
            chat.reply_keyboard = [[button["text"] for button in row] for row in markup["keyboard"]]
            chat.reply_keyboard_buttons = [
                [dict(button) for button in row] for row in markup["keyboard"]
            ]
        elif markup.get("remove_keyboard"):
            chat.reply_keyboard = []
            chat.reply_keyboard_buttons = []
    inline = inline_of(markup)
    return {"reply_markup": inline} if inline else {}


def reply_content(call: Call, chat: ChatState) -> JSON:
    parameters = call.get("reply_parameters")
    if parameters is None:
        return {}
    if "message_id" not in parameters:
        if "ephemeral_message_id" in parameters:
            return {}
        raise bad_request('can\'t find field "message_id"')
    source = chat
    if parameters.get("chat_id") is not None:
        other = call.state.find_chat(call.bot, parameters["chat_id"])
        if other is None:
            raise bad_request("chat not found")
        source = other
    replied = source.messages.get(parameters["message_id"])
    if replied is None:
        if parameters.get("allow_sending_without_reply"):
            return {}
        raise bad_request("message to be replied not found")
    quoted = copy_json(replied.raw)
    quoted.pop("reply_to_message", None)
    return {"reply_to_message": quoted}


def send_flags(call: Call) -> JSON:
    """Flags Telegram echoes on the sent message."""
    flags: JSON = {}
    if call.get("protect_content"):
        flags["has_protected_content"] = True
    if call.get("message_effect_id"):
        flags["effect_id"] = call.params["message_effect_id"]
    return flags
