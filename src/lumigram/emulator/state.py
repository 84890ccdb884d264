"""What the emulated Telegram knows: bots, users, chats, messages, files, payments.

Messages are stored as the ``Message`` objects Telegram returns (``raw``); every
change to a chat is also appended to the chat's event log, which the simulated
users read to wait for the bot's answers.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import mimetypes
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .flood import FloodControl, FloodLimits
from .spec import ApiSpec
from .updates import Notifier, UpdateQueue, WebhookConfig

JSON = dict[str, Any]


def now() -> int:
    return int(time.time())


def copy_json(value: JSON) -> JSON:
    """A deep copy of a JSON object (our stored messages are plain JSON)."""
    result: JSON = _copy(value)
    return result


def copy_value(value: Any) -> Any:
    """A deep copy of any JSON value."""
    return _copy(value)


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


# -- files -----------------------------------------------------------------------------

_FILE_ID_PREFIX = {
    "photo": b"\x02\x00\x02",
    "document": b"\x05\x00\x02",
    "video": b"\x04\x00\x02",
    "animation": b"\x0a\x00\x02",
    "audio": b"\x03\x00\x02",
    "sticker": b"\x08\x00\x02",
}
_FOLDERS = {
    "photo": "photos",
    "document": "documents",
    "video": "videos",
    "animation": "animations",
    "audio": "music",
    "sticker": "stickers",
}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


@dataclass
class FileRecord:
    file_id: str
    file_unique_id: str
    data: bytes = field(repr=False)
    kind: str
    file_path: str
    file_name: str | None = None
    mime_type: str | None = None
    width: int = 0
    height: int = 0
    duration: int = 0
    # stickers only
    emoji: str | None = None
    is_animated: bool = False
    is_video: bool = False
    set_name: str | None = None

    @property
    def size(self) -> int:
        return len(self.data)

    def photo_size(self) -> JSON:
        return {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "file_size": self.size,
            "width": self.width,
            "height": self.height,
        }

    def as_object(self) -> JSON:
        """The Document/Video/Animation/Audio/Sticker object describing this file."""
        obj: JSON = {"file_id": self.file_id, "file_unique_id": self.file_unique_id}
        if self.kind == "sticker":
            obj.update(
                type="regular",
                width=self.width,
                height=self.height,
                is_animated=self.is_animated,
                is_video=self.is_video,
            )
            if self.emoji:
                obj["emoji"] = self.emoji
            if self.set_name:
                obj["set_name"] = self.set_name
            obj["file_size"] = self.size
            return obj
        if self.kind in ("video", "animation"):
            obj.update(width=self.width, height=self.height, duration=self.duration)
        elif self.kind == "audio":
            obj["duration"] = self.duration
        if self.file_name:
            obj["file_name"] = self.file_name
        if self.mime_type:
            obj["mime_type"] = self.mime_type
        obj["file_size"] = self.size
        return obj


@dataclass
class FileFault:
    """A file Telegram fails to hand out (set by ``TelegramEmulator.fail_file``).

    ``on`` is ``"getFile"`` (the method answers ``code``/``description``) or
    ``"download"`` (``/file/bot<token>/<file_path>`` answers ``code``, or closes the
    connection without an answer when ``drop``). ``remaining`` counts the requests
    still to fail (None: every one).
    """

    on: str
    code: int
    description: str
    remaining: int | None = 1
    drop: bool = False


class FileStore:
    """Files by ``file_id`` and by ``file_path`` (the download URL's tail)."""

    def __init__(self) -> None:
        self._by_id: dict[str, FileRecord] = {}
        self._by_path: dict[str, FileRecord] = {}
        self._faults: dict[str, list[FileFault]] = {}
        self._counter = itertools.count(1)

    def add(
        self,
        data: bytes,
        *,
        kind: str,
        file_name: str | None = None,
        mime_type: str | None = None,
        width: int = 0,
        height: int = 0,
        duration: int = 0,
    ) -> FileRecord:
        number = next(self._counter)
        prefix = _FILE_ID_PREFIX.get(kind, b"\x05\x00\x02")
        file_id = _b64(prefix + b"\x00" + number.to_bytes(8, "big") + secrets.token_bytes(24))
        # Unique per stored file and stable for it (a reused file_id keeps it); not a
        # content hash, which would mean hashing up to 50 MB in the event loop.
        unique_id = "AQAD" + _b64(number.to_bytes(6, "big") + secrets.token_bytes(6))
        if mime_type is None and file_name:
            mime_type = mimetypes.guess_type(file_name)[0]
        extension = _extension(kind, file_name, mime_type)
        path = f"{_FOLDERS.get(kind, 'documents')}/file_{number}{extension}"
        record = FileRecord(
            file_id=file_id,
            file_unique_id=unique_id,
            data=data,
            kind=kind,
            file_path=path,
            file_name=file_name,
            mime_type=mime_type,
            width=width,
            height=height,
            duration=duration,
        )
        self._by_id[file_id] = record
        self._by_path[path] = record
        return record

    def get(self, file_id: str) -> FileRecord | None:
        return self._by_id.get(file_id)

    def by_path(self, path: str) -> FileRecord | None:
        return self._by_path.get(path)

    def add_fault(self, file_id: str, fault: FileFault) -> None:
        self._faults.setdefault(file_id, []).append(fault)

    def take_fault(self, file_id: str, on: str) -> FileFault | None:
        """The fault this request of the file meets, counted; None: it succeeds."""
        for fault in self._faults.get(file_id, []):
            if fault.on == on and (fault.remaining is None or fault.remaining > 0):
                if fault.remaining is not None:
                    fault.remaining -= 1
                return fault
        return None


def _extension(kind: str, file_name: str | None, mime_type: str | None) -> str:
    if kind == "photo":
        return ".jpg"
    if file_name and "." in file_name:
        return "." + file_name.rsplit(".", 1)[1][:10]
    guessed = mimetypes.guess_extension(mime_type) if mime_type else None
    return guessed or ""


# -- people and chats ------------------------------------------------------------------


@dataclass
class UserProfile:
    id: int
    first_name: str
    last_name: str | None = None
    username: str | None = None
    language_code: str | None = None
    is_premium: bool = False

    def to_user(self) -> JSON:
        user: JSON = {"id": self.id, "is_bot": False, "first_name": self.first_name}
        if self.last_name:
            user["last_name"] = self.last_name
        if self.username:
            user["username"] = self.username
        if self.language_code:
            user["language_code"] = self.language_code
        if self.is_premium:
            user["is_premium"] = True
        return user


@dataclass
class StoredMessage:
    raw: JSON
    from_bot: bool
    edited: bool = False
    invoice_id: str | None = None

    @property
    def message_id(self) -> int:
        value: int = self.raw["message_id"]
        return value


@dataclass
class ChatEvent:
    """One change in a chat: a message appeared, was edited or was deleted."""

    seq: int
    kind: str
    message_id: int
    from_bot: bool
    raw: JSON
    edited: bool


class ChatState:
    def __init__(
        self,
        chat_id: int,
        chat_type: str,
        *,
        user: UserProfile | None = None,
        title: str | None = None,
    ) -> None:
        self.id = chat_id
        self.type = chat_type
        self.user = user
        self.title = title
        self.messages: dict[int, StoredMessage] = {}
        self.next_message_id = 1
        self.events: list[ChatEvent] = []
        self.changed = Notifier()
        self.last_bot_activity = time.monotonic()
        self.chat_actions: list[str] = []
        self.reply_keyboard: list[list[str]] = []  # the custom keyboard shown, if any
        # The same keyboard's buttons as the bot sent them (request_location...).
        self.reply_keyboard_buttons: list[list[JSON]] = []
        self.blocked = False

    def to_chat(self) -> JSON:
        chat: JSON = {"id": self.id, "type": self.type}
        if self.user is not None and self.type == "private":
            chat["first_name"] = self.user.first_name
            if self.user.last_name:
                chat["last_name"] = self.user.last_name
            if self.user.username:
                chat["username"] = self.user.username
        elif self.title:
            chat["title"] = self.title
        return chat


# -- payments --------------------------------------------------------------------------


@dataclass
class InvoiceRecord:
    id: str
    title: str
    description: str
    payload: str
    currency: str
    amount: int
    label: str
    start_parameter: str = ""
    subscription_period: int | None = None
    link: str | None = None
    photo_url: str | None = None


@dataclass
class ChargeRecord:
    charge_id: str
    user_id: int
    amount: int
    payload: str
    date: int
    invoice_id: str
    subscription_period: int | None = None
    expiration_date: int | None = None
    first_charge_id: str | None = None  # set on renewals: the subscription's first charge
    refunded: bool = False
    canceled: bool = False


@dataclass
class CallbackQueryRecord:
    id: str
    user_id: int
    chat_id: int
    message_id: int
    data: str | None
    answer: asyncio.Future[JSON]


@dataclass
class PollRecord:
    """A poll and its votes; :meth:`to_poll` is the Poll object the Bot API shows."""

    id: str
    chat_id: int
    sent_by_bot: bool
    question: str
    options: list[JSON]  # {"text", "text_entities"?}, as sent
    type: str = "regular"
    is_anonymous: bool = True
    allows_multiple_answers: bool = False
    allows_revoting: bool = True
    question_entities: list[JSON] = field(default_factory=list)
    correct_option_ids: list[int] | None = None
    explanation: str | None = None
    explanation_entities: list[JSON] = field(default_factory=list)
    description: str | None = None
    description_entities: list[JSON] = field(default_factory=list)
    open_period: int | None = None
    close_date: int | None = None
    is_closed: bool = False
    message_id: int = 0
    votes: dict[int, list[int]] = field(default_factory=dict)  # user id -> option ids
    timer: asyncio.TimerHandle | None = field(default=None, repr=False)

    def counts(self) -> list[int]:
        result = [0] * len(self.options)
        for chosen in self.votes.values():
            for index in chosen:
                result[index] += 1
        return result

    def to_poll(self, *, in_message: bool = False) -> JSON:
        counts = self.counts()
        options: list[JSON] = []
        for index, option in enumerate(self.options):
            item: JSON = {"persistent_id": str(index), "text": option["text"]}
            if option.get("text_entities"):
                item["text_entities"] = option["text_entities"]
            item["voter_count"] = counts[index]
            options.append(item)
        poll: JSON = {"id": self.id, "question": self.question}
        if self.question_entities:
            poll["question_entities"] = self.question_entities
        poll.update(
            options=options,
            total_voter_count=len(self.votes),
            is_closed=self.is_closed,
            is_anonymous=self.is_anonymous,
            type=self.type,
            allows_multiple_answers=self.allows_multiple_answers,
            allows_revoting=self.allows_revoting,
            members_only=False,
        )
        if self.type == "quiz" and self.correct_option_ids is not None:
            poll["correct_option_ids"] = list(self.correct_option_ids)
        if self.explanation:
            poll["explanation"] = self.explanation
            if self.explanation_entities:
                poll["explanation_entities"] = self.explanation_entities
        if self.open_period is not None:
            poll["open_period"] = self.open_period
        if self.close_date is not None:
            poll["close_date"] = self.close_date
        if in_message and self.description:  # "for polls inside the Message object only"
            poll["description"] = self.description
            if self.description_entities:
                poll["description_entities"] = self.description_entities
        return copy_json(poll)


@dataclass
class PreCheckoutRecord:
    id: str
    user_id: int
    invoice_id: str
    answer: asyncio.Future[JSON]
    expired: bool = False


# -- bots ------------------------------------------------------------------------------


class BotState:
    def __init__(
        self, bot_id: int, token: str, username: str, first_name: str, update_types: Iterable[str]
    ) -> None:
        self.id = bot_id
        self.token = token
        self.username = username
        self.first_name = first_name
        self.updates = UpdateQueue(update_types)
        self.webhook: WebhookConfig | None = None
        self.commands: dict[tuple[str, str], list[JSON]] = {}
        self.chats: dict[int, ChatState] = {}
        self.invoices: dict[str, InvoiceRecord] = {}
        self.invoice_links: dict[str, str] = {}
        self.charges: dict[str, ChargeRecord] = {}
        self.transactions: list[JSON] = []
        self.callback_queries: dict[str, CallbackQueryRecord] = {}
        self.pre_checkouts: dict[str, PreCheckoutRecord] = {}
        self.polls: dict[str, PollRecord] = {}
        self.profile: dict[tuple[str, Any], Any] = {}

    def to_user(self) -> JSON:
        return {
            "id": self.id,
            "is_bot": True,
            "first_name": self.first_name,
            "username": self.username,
        }

    def get_me(self) -> JSON:
        return {
            **self.to_user(),
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }


def scope_key(scope: JSON | None) -> str:
    """A stable key for a BotCommandScope (commands are stored per scope + language)."""
    if not scope or scope.get("type", "default") == "default":
        return "default"
    kind = str(scope["type"])
    if kind in ("chat", "chat_administrators"):
        return f"{kind}:{scope.get('chat_id')}"
    if kind == "chat_member":
        return f"{kind}:{scope.get('chat_id')}:{scope.get('user_id')}"
    return kind


class EmulatorState:
    """All mutable state, shared by the HTTP handlers and the simulated users."""

    def __init__(self, spec: ApiSpec, flood: FloodLimits) -> None:
        self.spec = spec
        self.files = FileStore()
        self.flood = FloodControl(flood)
        self.bots_by_token: dict[str, BotState] = {}
        self.bots_by_id: dict[int, BotState] = {}
        self.users: dict[int, UserProfile] = {}
        self._seq = itertools.count(1)
        self._ids = itertools.count(1)
        self.pre_checkout_timeout = 10.0

    def next_number(self) -> int:
        return next(self._ids)

    def new_id(self, prefix: str = "") -> str:
        """A unique identifier (callback query ids, charge ids, invoice slugs...)."""
        return f"{prefix}{next(self._ids)}{secrets.token_hex(6)}"

    def create_bot(self, username: str, first_name: str) -> BotState:
        bot_id = 7_000_000_000 + len(self.bots_by_id) * 1_000 + secrets.randbelow(1_000)
        while bot_id in self.bots_by_id:
            bot_id += 1
        token = f"{bot_id}:AA{secrets.token_urlsafe(24).replace('-', 'x').replace('_', 'y')}"
        bot = BotState(bot_id, token, username, first_name, self.spec.update_types())
        self.bots_by_token[token] = bot
        self.bots_by_id[bot_id] = bot
        return bot

    # -- chats and messages --------------------------------------------------------------

    def private_chat(self, bot: BotState, user: UserProfile) -> ChatState:
        chat = bot.chats.get(user.id)
        if chat is None:
            chat = ChatState(user.id, "private", user=user)
            bot.chats[user.id] = chat
        return chat

    def add_group(self, bot: BotState, chat_id: int, title: str, chat_type: str) -> ChatState:
        chat = ChatState(chat_id, chat_type, title=title)
        bot.chats[chat_id] = chat
        return chat

    def find_chat(self, bot: BotState, chat_id: int | str) -> ChatState | None:
        if isinstance(chat_id, int):
            return bot.chats.get(chat_id)
        name = chat_id.lstrip("@").lower()
        for chat in bot.chats.values():
            if chat.user is not None and (chat.user.username or "").lower() == name:
                return chat
        return None

    def _record(self, chat: ChatState, kind: str, stored: StoredMessage) -> None:
        chat.events.append(
            ChatEvent(
                seq=next(self._seq),
                kind=kind,
                message_id=stored.message_id,
                from_bot=stored.from_bot,
                raw=copy_json(stored.raw),
                edited=stored.edited,
            )
        )
        if stored.from_bot:
            chat.last_bot_activity = time.monotonic()
        chat.changed.notify()

    def add_message(
        self,
        bot: BotState,
        chat: ChatState,
        *,
        sender: JSON,
        from_bot: bool,
        content: JSON,
        invoice_id: str | None = None,
    ) -> StoredMessage:
        raw: JSON = {
            "message_id": chat.next_message_id,
            "from": sender,
            "chat": chat.to_chat(),
            "date": now(),
            **content,
        }
        chat.next_message_id += 1
        stored = StoredMessage(raw=raw, from_bot=from_bot, invoice_id=invoice_id)
        chat.messages[stored.message_id] = stored
        self._record(chat, "new", stored)
        return stored

    def bot_message(
        self, bot: BotState, chat: ChatState, content: JSON, *, invoice_id: str | None = None
    ) -> StoredMessage:
        return self.add_message(
            bot, chat, sender=bot.to_user(), from_bot=True, content=content, invoice_id=invoice_id
        )

    def replace_content(self, chat: ChatState, stored: StoredMessage, content: JSON) -> None:
        """Apply an edit: ``content`` replaces every content field of the message."""
        keep = {
            "message_id",
            "from",
            "chat",
            "date",
            "media_group_id",
            "reply_to_message",
            "has_protected_content",
            "effect_id",
        }
        raw = {k: v for k, v in stored.raw.items() if k in keep}
        raw.update(content)
        raw["edit_date"] = now()
        stored.raw = raw
        stored.edited = True
        self._record(chat, "edit", stored)

    def change_in_place(self, chat: ChatState, stored: StoredMessage, raw: JSON) -> None:
        """A change Telegram makes without an ``edit_date`` (a stopped poll, say)."""
        stored.raw = raw
        self._record(chat, "edit", stored)

    def delete_message(self, chat: ChatState, stored: StoredMessage) -> None:
        del chat.messages[stored.message_id]
        self._record(chat, "delete", stored)

    def touch(self, chat: ChatState) -> None:
        """Note bot activity in a chat that changed no message (chat actions...)."""
        chat.last_bot_activity = time.monotonic()
        chat.changed.notify()
