"""Sending, copying, editing and deleting messages; callbacks; chat actions; getFile."""

from __future__ import annotations

import secrets
from dataclasses import replace
from typing import Any

from . import limits, polls
from .calls import (
    Call,
    Handler,
    caption_content,
    check_flood,
    existing_chat,
    markup_content,
    reply_content,
    send_flags,
    target_chat,
    text_content,
)
from .errors import MESSAGE_NOT_MODIFIED, QUERY_TOO_OLD, ApiError, bad_request, forbidden
from .media import SentFile
from .spec import resolve_attach
from .state import ChatState, StoredMessage, copy_json, copy_value

JSON = dict[str, Any]

MEDIA_KEYS = ("photo", "document", "video", "animation", "audio")
# Contents without a caption that copyMessage copies as they are (a poll is copied as a
# new poll: see methods_polls.copy_poll).
PLAIN_KEYS = ("sticker", "location", "venue", "contact", "dice")
# Message fields that make up its content (what copyMessage copies).
CONTENT_KEYS = (
    "text",
    "entities",
    "link_preview_options",
    *MEDIA_KEYS,
    "caption",
    "caption_entities",
    "show_caption_above_media",
    "has_media_spoiler",
    *PLAIN_KEYS,
)
CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)


def media_fields(kind: str, sent: SentFile) -> JSON:
    if kind == "photo":
        return {"photo": [record.photo_size() for record in sent.records]}
    obj = sent.main.as_object()
    if kind == "animation":
        # "For backward compatibility, when this field is set, the document field will
        # also be set."
        document = {k: v for k, v in obj.items() if k not in ("width", "height", "duration")}
        return {"animation": obj, "document": document}
    return {kind: obj}


async def send_message(call: Call) -> Any:
    chat = target_chat(call)
    content = text_content(call) | markup_content(call, chat)
    reply = reply_content(call, chat)
    check_flood(call, chat)
    stored = call.state.bot_message(call.bot, chat, reply | content | send_flags(call))
    return copy_json(stored.raw)


def _media_sender(kind: str) -> Handler:
    async def handler(call: Call) -> Any:
        chat = target_chat(call)
        caption = caption_content(call.params)
        markup = markup_content(call, chat)
        reply = reply_content(call, chat)
        sent = await call.runtime.media.resolve(
            call.params[kind],
            kind=kind,
            width=call.get("width", 0),
            height=call.get("height", 0),
            duration=call.get("duration", 0),
        )
        check_flood(call, chat)
        content = reply | media_fields(kind, sent) | caption
        if call.get("has_spoiler"):
            content["has_media_spoiler"] = True
        stored = call.state.bot_message(call.bot, chat, content | markup | send_flags(call))
        return copy_json(stored.raw)

    return handler


async def send_media_group(call: Call) -> Any:
    chat = target_chat(call)
    items: list[JSON] = call.params["media"]
    if not limits.MEDIA_GROUP_MIN <= len(items) <= limits.MEDIA_GROUP_MAX:
        raise bad_request("media group must contain 2-10 items")
    kinds = {item["type"] for item in items}
    if "live_photo" in kinds:
        raise bad_request("live photos are not supported by the emulator")
    for exclusive in ("document", "audio"):
        if exclusive in kinds and len(kinds) > 1:
            raise bad_request(f"{exclusive} can't be mixed with other media types")
    captions = [caption_content(item) for item in items]
    reply = reply_content(call, chat)
    sent_files = [
        await call.runtime.media.resolve(
            resolve_attach(item["media"], call.raw),
            kind=item["type"],
            width=item.get("width", 0),
            height=item.get("height", 0),
            duration=item.get("duration", 0),
        )
        for item in items
    ]
    check_flood(call, chat, cost=len(items))
    group_id = str(13_000_000_000_000_000 + call.state.next_number())
    result = []
    for index, (item, sent, caption) in enumerate(zip(items, sent_files, captions, strict=True)):
        content = (reply if index == 0 else {}) | {"media_group_id": group_id}
        content |= media_fields(item["type"], sent) | caption
        if item.get("has_spoiler"):
            content["has_media_spoiler"] = True
        stored = call.state.bot_message(call.bot, chat, content | send_flags(call))
        result.append(copy_json(stored.raw))
    return result


async def copy_message(call: Call) -> Any:
    source_chat = existing_chat(call, "from_chat_id")
    source = source_chat.messages.get(call.params["message_id"])
    if source is None:
        raise bad_request("message to copy not found")
    source_poll = polls.poll_of(call.bot, source) if "poll" in source.raw else None
    if source_poll is None and not any(
        key in source.raw for key in ("text", *MEDIA_KEYS, *PLAIN_KEYS)
    ):
        raise bad_request("message can't be copied")
    chat = target_chat(call)
    content = {k: copy_value(v) for k, v in source.raw.items() if k in CONTENT_KEYS}
    if "dice" in content:  # a copy is a new throw: only a forward keeps the value
        emoji = content["dice"]["emoji"]
        content["dice"]["value"] = secrets.randbelow(limits.DICE_VALUES.get(emoji, 6)) + 1
    if "caption" in call.params and any(k in content for k in MEDIA_KEYS):
        for key in ("caption", "caption_entities", "show_caption_above_media"):
            content.pop(key, None)
        content |= caption_content(call.params)
    markup = markup_content(call, chat)
    reply = reply_content(call, chat)
    check_flood(call, chat)
    copied_poll = None
    if source_poll is not None:
        # "a copy shows a new poll that the copying bot owns, open and without votes"
        copied_poll = replace(
            source_poll,
            id=polls.new_poll_id(call.state),
            chat_id=chat.id,
            sent_by_bot=True,
            is_closed=False,
            votes={},
            timer=None,
            open_period=None,
            close_date=None,
        )
        content["poll"] = copied_poll.to_poll(in_message=True)
    stored = call.state.bot_message(call.bot, chat, reply | content | markup | send_flags(call))
    if copied_poll is not None:
        copied_poll.message_id = stored.message_id
        polls.register(call.state, call.bot, copied_poll)
    return {"message_id": stored.message_id}


# -- editing ---------------------------------------------------------------------------


def edit_target(call: Call) -> tuple[ChatState, StoredMessage]:
    if call.get("inline_message_id") is not None:
        raise bad_request("MESSAGE_ID_INVALID")  # inline mode is not emulated
    chat = existing_chat(call)
    if chat.blocked:
        raise forbidden("bot was blocked by the user")
    stored = chat.messages.get(call.params["message_id"])
    if stored is None:
        raise bad_request("message to edit not found")
    if not stored.from_bot:
        raise bad_request("message can't be edited")
    return chat, stored


def apply_edit(
    call: Call,
    chat: ChatState,
    stored: StoredMessage,
    content: JSON,
    compared: tuple[str, ...],
) -> Any:
    """Replace the compared fields with ``content``; refuse no-op edits as Telegram does."""
    current = {k: stored.raw[k] for k in compared if k in stored.raw}
    new = {k: content[k] for k in compared if k in content}
    if current == new:
        raise bad_request(MESSAGE_NOT_MODIFIED)
    check_flood(call, chat, edit=True)
    kept = {k: v for k, v in stored.raw.items() if k in CONTENT_KEYS and k not in compared}
    kept.update({k: v for k, v in stored.raw.items() if k in ("invoice", "poll")})
    call.state.replace_content(chat, stored, kept | content)
    return copy_json(stored.raw)


async def edit_message_text(call: Call) -> Any:
    chat, stored = edit_target(call)
    if "text" not in call.params:
        raise bad_request("rich messages are not supported by the emulator")
    if "text" not in stored.raw:
        raise bad_request("there is no text in the message to edit")
    content = text_content(call) | markup_content(call)
    return apply_edit(
        call, chat, stored, content, ("text", "entities", "link_preview_options", "reply_markup")
    )


async def edit_message_caption(call: Call) -> Any:
    chat, stored = edit_target(call)
    if not any(key in stored.raw for key in MEDIA_KEYS):
        raise bad_request("there is no caption in the message to edit")
    content = caption_content(call.params) | markup_content(call)
    return apply_edit(
        call,
        chat,
        stored,
        content,
        ("caption", "caption_entities", "show_caption_above_media", "reply_markup"),
    )


def _main_file_id(raw: JSON) -> str | None:
    if "photo" in raw:
        largest: str = raw["photo"][-1]["file_id"]
        return largest
    for key in MEDIA_KEYS:
        if key in raw:
            file_id: str = raw[key]["file_id"]
            return file_id
    return None


async def edit_message_media(call: Call) -> Any:
    chat, stored = edit_target(call)
    if not any(key in stored.raw for key in MEDIA_KEYS):
        raise bad_request("there is no media in the message to edit")
    media: JSON = call.params["media"]
    kind = media["type"]
    if kind == "live_photo":
        raise bad_request("live photos are not supported by the emulator")
    caption = caption_content(media)
    markup = markup_content(call)
    sent = await call.runtime.media.resolve(
        resolve_attach(media["media"], call.raw),
        kind=kind,
        width=media.get("width", 0),
        height=media.get("height", 0),
        duration=media.get("duration", 0),
    )
    if (
        sent.main.file_id == _main_file_id(stored.raw)
        and caption.get("caption") == stored.raw.get("caption")
        and caption.get("caption_entities") == stored.raw.get("caption_entities")
        and markup.get("reply_markup") == stored.raw.get("reply_markup")
    ):
        raise bad_request(MESSAGE_NOT_MODIFIED)
    check_flood(call, chat, edit=True)
    content = media_fields(kind, sent) | caption | markup
    if media.get("has_spoiler"):
        content["has_media_spoiler"] = True
    call.state.replace_content(chat, stored, content)
    return copy_json(stored.raw)


async def edit_message_reply_markup(call: Call) -> Any:
    chat, stored = edit_target(call)
    return apply_edit(call, chat, stored, markup_content(call), ("reply_markup",))


async def delete_message(call: Call) -> Any:
    chat = existing_chat(call)
    stored = chat.messages.get(call.params["message_id"])
    if stored is None:
        raise bad_request("message to delete not found")
    call.state.delete_message(chat, stored)
    return True


async def delete_messages(call: Call) -> Any:
    chat = existing_chat(call)
    ids = call.params["message_ids"]
    if not 1 <= len(ids) <= 100:
        raise bad_request("too many messages to delete")
    for message_id in ids:
        stored = chat.messages.get(message_id)
        if stored is not None:
            call.state.delete_message(chat, stored)
    return True


async def answer_callback_query(call: Call) -> Any:
    record = call.bot.callback_queries.get(call.params["callback_query_id"])
    if record is None or record.answer.done():
        raise bad_request(QUERY_TOO_OLD)
    text = call.get("text")
    if text is not None and len(text) > limits.CALLBACK_ANSWER_TEXT_MAX:
        raise bad_request("MESSAGE_TOO_LONG")
    answer = {
        "text": text,
        "show_alert": bool(call.get("show_alert", False)),
        "url": call.get("url"),
        "cache_time": call.get("cache_time", 0),
    }
    record.answer.set_result(answer)
    chat = call.bot.chats.get(record.chat_id)
    if chat is not None:
        call.state.touch(chat)
    return True


async def send_chat_action(call: Call) -> Any:
    chat = target_chat(call)
    action = call.params["action"]
    if action not in CHAT_ACTIONS:
        raise bad_request("wrong parameter action in request")
    chat.chat_actions.append(action)
    call.state.touch(chat)
    return True


async def get_file(call: Call) -> Any:
    record = call.state.files.get(call.params["file_id"])
    if record is None:
        raise bad_request("invalid file_id")
    if record.size > limits.DOWNLOAD_MAX:
        raise bad_request("file is too big")
    fault = call.state.files.take_fault(record.file_id, "getFile")
    if fault is not None:
        raise ApiError(fault.code, fault.description)
    return {
        "file_id": record.file_id,
        "file_unique_id": record.file_unique_id,
        "file_size": record.size,
        "file_path": record.file_path,
    }


HANDLERS: dict[str, Handler] = {
    "sendMessage": send_message,
    "sendPhoto": _media_sender("photo"),
    "sendDocument": _media_sender("document"),
    "sendVideo": _media_sender("video"),
    "sendAnimation": _media_sender("animation"),
    "sendAudio": _media_sender("audio"),
    "sendMediaGroup": send_media_group,
    "copyMessage": copy_message,
    "editMessageText": edit_message_text,
    "editMessageCaption": edit_message_caption,
    "editMessageMedia": edit_message_media,
    "editMessageReplyMarkup": edit_message_reply_markup,
    "deleteMessage": delete_message,
    "deleteMessages": delete_messages,
    "answerCallbackQuery": answer_callback_query,
    "sendChatAction": send_chat_action,
    "getFile": get_file,
}
