"""``TelegramEmulator``: the Bot API server plus the test-facing controls."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from http import HTTPStatus
from types import TracebackType
from typing import Any

from .flood import FloodLimits
from .messages import ChatMessage
from .server import BotApiServer, RecordedRequest
from .spec import ApiSpec, load_spec
from .state import (
    BotState,
    CallbackQueryRecord,
    EmulatorState,
    FileFault,
    PreCheckoutRecord,
    UserProfile,
    copy_json,
    scope_key,
)
from .users import SimUser


class TelegramEmulator:
    """An in-process Telegram: point an unmodified bot at :attr:`base_url`.

    ::

        emu = TelegramEmulator()
        await emu.start()
        token = emu.create_bot(username="lumigram_bot")
        bot = Bot(token, session=AiohttpSession(api=TelegramAPIServer.from_base(emu.base_url)))
        user = emu.user(1001, "Ann")
        await user.send_text("/start")
        await user.wait_for_text("Welcome")
    """

    def __init__(
        self,
        flood: FloodLimits | None = None,
        pre_checkout_timeout: float = 10.0,
        *,
        webhook_retry_delays: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 1.0),
        spec: ApiSpec | None = None,
    ) -> None:
        self.spec = spec or load_spec()
        self.state = EmulatorState(self.spec, flood or FloodLimits())
        self.state.pre_checkout_timeout = pre_checkout_timeout
        self.server = BotApiServer(self.state, webhook_retry_delays=webhook_retry_delays)
        self._users: dict[tuple[int, int], SimUser] = {}
        self.base_url = ""

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self.base_url = await self.server.start(host, port)
        return self.base_url

    async def stop(self) -> None:
        await self.server.stop()

    async def __aenter__(self) -> TelegramEmulator:
        if not self.base_url:
            await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def pre_checkout_timeout(self) -> float:
        return self.state.pre_checkout_timeout

    @pre_checkout_timeout.setter
    def pre_checkout_timeout(self, value: float) -> None:
        self.state.pre_checkout_timeout = value

    # -- bots and users ----------------------------------------------------------------------

    def create_bot(self, username: str = "lumigram_bot", first_name: str = "Lumigram") -> str:
        """Register a bot; returns its token ``"<bot_id>:<secret>"``."""
        return self.state.create_bot(username, first_name).token

    def bot(self, token: str | None = None) -> BotState:
        if token is None:
            if not self.state.bots_by_token:
                raise LookupError("no bot yet: call create_bot() first")
            return next(iter(self.state.bots_by_token.values()))
        bot = self.state.bots_by_token.get(token)
        if bot is None:
            raise LookupError("unknown bot token")
        return bot

    def user(
        self,
        user_id: int = 1001,
        first_name: str = "Test",
        language_code: str | None = "en",
        username: str | None = None,
        token: str | None = None,
        *,
        last_name: str | None = None,
        is_premium: bool = False,
    ) -> SimUser:
        """A simulated user in a private chat with the bot (``token`` None: the first)."""
        bot = self.bot(token)
        existing = self._users.get((bot.id, user_id))
        if existing is not None:
            return existing
        profile = self.state.users.get(user_id)
        if profile is None:
            profile = UserProfile(
                user_id, first_name, last_name, username, language_code, is_premium
            )
            self.state.users[user_id] = profile
        sim = SimUser(self.state, bot, profile, self.server.media)
        self._users[(bot.id, user_id)] = sim
        return sim

    def create_group(
        self,
        chat_id: int = -1001234567890,
        title: str = "Test group",
        chat_type: str = "supergroup",
        token: str | None = None,
    ) -> int:
        """A group chat the bot is a member of (for group flood limits and the like)."""
        self.state.add_group(self.bot(token), chat_id, title, chat_type)
        return chat_id

    # -- inspection --------------------------------------------------------------------------

    def commands(
        self,
        token: str | None = None,
        language_code: str | None = None,
        scope: dict[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """What setMyCommands stored for this scope and language ("" / None: all)."""
        bot = self.bot(token)
        return [dict(c) for c in bot.commands.get((scope_key(scope), language_code or ""), [])]

    @property
    def requests(self) -> list[RecordedRequest]:
        return self.server.requests

    @property
    def errors(self) -> list[RecordedRequest]:
        return self.server.errors

    def calls(self, method: str) -> list[RecordedRequest]:
        return [r for r in self.server.requests if r.method == method]

    def assert_no_errors(self, allow: Iterable[str] = ()) -> None:
        """Fail if the bot got any error answer, except those whose method name or
        description contains one of ``allow``."""
        allowed = list(allow)
        unexpected = [
            r
            for r in self.server.errors
            if not any(a == r.method or a in r.description for a in allowed)
        ]
        if unexpected:
            lines = "\n".join(f"  {r}" for r in unexpected)
            raise AssertionError(f"the bot broke the Bot API rules {len(unexpected)}x:\n{lines}")

    def clear_log(self) -> None:
        self.server.requests.clear()
        self.server.errors.clear()

    def file_bytes(self, file_id: str) -> bytes:
        record = self.state.files.get(file_id)
        if record is None:
            raise LookupError(f"unknown file_id {file_id!r}")
        return record.data

    def webhook_info(self, token: str | None = None) -> dict[str, Any]:
        bot = self.bot(token)
        if bot.webhook is None:
            return {"url": "", "pending_update_count": len(bot.updates.pending)}
        return bot.webhook.info(len(bot.updates.pending), bot.updates.allowed_updates)

    def webhook_attempts(self, token: str | None = None) -> list[tuple[int, int]]:
        """Every webhook POST so far: (update_id, HTTP status; 0 = connection failed)."""
        bot = self.bot(token)
        return list(bot.webhook.attempts) if bot.webhook is not None else []

    def lose_webhook_answers(self, times: int = 1, token: str | None = None) -> None:
        """The next ``times`` 2xx answers of the webhook are lost on the way back (as a
        timeout or a broken connection would lose them): Telegram, not knowing the
        update arrived, delivers it again after a delay."""
        bot = self.bot(token)
        if bot.webhook is None:
            raise RuntimeError("no webhook is set")
        bot.webhook.lose_answers += times

    def transactions(self, token: str | None = None) -> list[dict[str, Any]]:
        return [copy_json(t) for t in self.bot(token).transactions]

    def subscription_canceled(self, charge_id: str, token: str | None = None) -> bool:
        """The flag set by editUserStarSubscription (or by the user) for a subscription."""
        bot = self.bot(token)
        charge = bot.charges[charge_id]
        first = bot.charges.get(charge.first_charge_id or charge.charge_id, charge)
        return first.canceled

    # -- control -------------------------------------------------------------------------------

    def set_flood(self, limits: FloodLimits) -> None:
        self.state.flood.reset(limits)

    def fail_file(
        self,
        file: str | ChatMessage,
        *,
        on: str = "download",
        status: int | None = None,
        description: str | None = None,
        times: int | None = 1,
        drop: bool = False,
    ) -> None:
        """Make Telegram fail to hand out a file, as it does for one it lost or cannot serve.

        ``file`` is a ``file_id`` or a message (all its files: every size of a photo).
        ``on="download"``: ``GET /file/bot<token>/<file_path>`` answers ``status`` (404
        Not Found by default) in Telegram's error shape, or, with ``drop=True``, closes
        the connection without an answer (a network failure). ``on="getFile"``: the
        method answers ``status`` (400 by default) with ``description`` ("Bad Request:
        file is too big" by default; Telegram also says "Bad Request: wrong file_id or
        the file is temporarily unavailable"). ``times``: how many requests fail
        (None: every one); later requests succeed.
        """
        if on not in ("download", "getFile"):
            raise ValueError('on must be "download" or "getFile"')
        if on == "getFile":
            code = status or 400
            text = description or "Bad Request: file is too big"
        else:
            code = status or 404
            text = description or HTTPStatus(code).phrase
        file_ids = file.media if isinstance(file, ChatMessage) else [file]
        for file_id in file_ids:
            if self.state.files.get(file_id) is None:
                raise LookupError(f"unknown file_id {file_id!r}")
            self.state.files.add_fault(file_id, FileFault(on, code, text, times, drop))

    async def send_raw_update(self, token: str | None, update: dict[str, Any]) -> dict[str, Any]:
        """Queue an arbitrary (even malformed) update; ``update_id`` is added if absent.

        A well-formed callback or pre-checkout query in it is registered, so that the
        bot can answer it and :meth:`SimUser.wait_callback_answer` can see the answer.
        """
        bot = self.bot(token)
        loop = asyncio.get_running_loop()
        query = _dict(update.get("callback_query"))
        if isinstance(query.get("id"), str):
            sender = _dict(query.get("from"))
            message = _dict(query.get("message"))
            chat = _dict(message.get("chat"))
            bot.callback_queries[query["id"]] = CallbackQueryRecord(
                query["id"],
                _int(sender.get("id")),
                _int(chat.get("id")),
                _int(message.get("message_id")),
                query.get("data") if isinstance(query.get("data"), str) else None,
                loop.create_future(),
            )
        checkout = _dict(update.get("pre_checkout_query"))
        if isinstance(checkout.get("id"), str):
            sender = _dict(checkout.get("from"))
            bot.pre_checkouts[checkout["id"]] = PreCheckoutRecord(
                checkout["id"], _int(sender.get("id")), "", loop.create_future()
            )
        return bot.updates.push_raw(update)

    def pre_checkout_answer(self, query_id: str, token: str | None = None) -> dict[str, Any] | None:
        """The bot's answer to a pre-checkout query (None while unanswered)."""
        record = self.bot(token).pre_checkouts.get(query_id)
        if record is None or not record.answer.done():
            return None
        return dict(record.answer.result())


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
