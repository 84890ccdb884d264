"""The bot's HTTP session: Telegram's flood control and updates it cannot parse.

``FloodLimitMiddleware`` keeps outgoing messages under Telegram's limits before they
leave: a token per message from the chat's bucket and the bot's global bucket (in
Redis, shared by every process of the bot, when it is configured). aiogram raises
``TelegramRetryAfter`` on a 429 all the same; ``RetryAfterMiddleware``
waits the ``retry_after`` Telegram asked for and sends again, a few times.
``SkipMalformedUpdates`` keeps long polling alive when an update does not
parse: it drops that update (logging its id) instead of asking for it forever.
``StaleCallbackAnswers`` lets an update delivered twice (a webhook retried after a
replica stopped mid-answer) through when its callback query was answered already.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.session.middlewares.base import (
    BaseRequestMiddleware,
    NextRequestMiddlewareType,
)
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import ClientDecodeError, TelegramBadRequest, TelegramRetryAfter
from aiogram.methods import AnswerCallbackQuery, GetUpdates, Response, TelegramMethod
from aiogram.methods.base import TelegramType
from aiogram.types import Update
from pydantic import ValidationError

from lumigram.config import Settings
from lumigram.limits.buckets import (
    Limit,
    LimiterUnavailableError,
    LocalRateBuckets,
    RateBuckets,
    take_tokens,
)
from lumigram.limits.redis_scripts import RedisRateBuckets

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger(__name__)


class RetryAfterMiddleware(BaseRequestMiddleware):
    def __init__(self, *, max_retries: int = 5, max_wait: float = 60.0) -> None:
        self.max_retries = max_retries
        self.max_wait = max_wait

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        for attempt in range(self.max_retries + 1):
            try:
                return await make_request(bot, method)
            except TelegramRetryAfter as exc:
                if attempt == self.max_retries or exc.retry_after > self.max_wait:
                    raise
                log.warning(
                    "flood control on %s: retrying in %s s", method.__api_method__, exc.retry_after
                )
                await asyncio.sleep(exc.retry_after)
        raise AssertionError("unreachable")


class SkipMalformedUpdates(BaseRequestMiddleware):
    """Parse getUpdates results one by one and move the offset past the broken ones."""

    def __init__(self) -> None:
        self._skip_to: int | None = None

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        get_updates = method if isinstance(method, GetUpdates) else None
        if get_updates is None:
            return await make_request(bot, method)
        if self._skip_to is not None and (get_updates.offset or 0) < self._skip_to:
            get_updates.offset = self._skip_to
        try:
            return await make_request(bot, method)
        except ClientDecodeError as exc:
            if not isinstance(exc.data, dict) or not isinstance(exc.data.get("result"), list):
                raise
            return self._salvage(bot, exc.data["result"])  # type: ignore[return-value]

    def _salvage(self, bot: Bot, raw_updates: list[Any]) -> list[Update]:
        # make_request hands back ``response.result`` (despite its annotation): the updates.
        good: list[Update] = []
        for raw in raw_updates:
            try:
                good.append(Update.model_validate(raw, context={"bot": bot}))
            except ValidationError:
                update_id = raw.get("update_id") if isinstance(raw, dict) else None
                log.error("dropped a malformed update %s", update_id)
                if isinstance(update_id, int):
                    self._skip_to = max(self._skip_to or 0, update_id + 1)
        return good


# Methods that put a message in a chat (or change one) and count against its limits:
# every send* but sendChatAction (a status, not a message; Telegram does not count it),
# editMessage*, stopPoll / stopMessageLiveLocation, copy* and forward*. Everything else
# (getUpdates, answerCallbackQuery, answerPreCheckoutQuery, which must come within
# 10 s, setWebhook, getMe, deleteMessage, ...) is never delayed.
_COUNTED_PREFIXES = ("send", "editMessage", "stopPoll", "stopMessage", "copyMessage", "forward")
_NOT_COUNTED = frozenset({"sendChatAction"})
# Telegram: "no more than 20 messages per minute" in a group (or channel).
GROUP_PER_MINUTE = 20.0


def flood_cost(method: TelegramMethod[Any]) -> tuple[int | str | None, int] | None:
    """(chat, messages) a call counts as, or None for calls that are not limited.

    The chat is None when there is none (an inline message's edit: global only)."""
    name = method.__api_method__
    if name in _NOT_COUNTED or not name.startswith(_COUNTED_PREFIXES):
        return None
    chat_id = getattr(method, "chat_id", None)
    cost = 1
    for many in ("media", "message_ids"):  # sendMediaGroup; copyMessages, forwardMessages
        items = getattr(method, many, None)
        if isinstance(items, list):
            cost = max(1, len(items))
    return chat_id, cost


class FloodLimitMiddleware(BaseRequestMiddleware):
    """Waits for the tokens of a message before it is sent: one from the chat's bucket
    (``chat_rate`` a second, bursts of ``chat_burst``; groups, whose ids are negative,
    ``group_per_minute``) and one from the bot's (``global_rate``, bursts of half a
    second's worth). An album counts as its number of items (capped at the burst).

    The buckets aim at ``headroom`` (85 %) of those rates: Telegram counts messages as
    they arrive, we as they leave, and the network's jitter in between would otherwise
    push some over. Without the limiter's store (Redis down) messages go out unlimited,
    with a warning, and ``RetryAfterMiddleware`` handles the 429s."""

    def __init__(
        self,
        buckets: RateBuckets,
        *,
        global_rate: float,
        chat_rate: float,
        chat_burst: int,
        group_per_minute: float = GROUP_PER_MINUTE,
        headroom: float = 0.85,
        prefix: str = "lumigram:limits:telegram",
    ) -> None:
        if not 0 < headroom <= 1:
            raise ValueError("headroom must be in (0, 1]")
        self.buckets = buckets
        self.global_rate = global_rate * headroom
        self.global_burst = max(1.0, float(round(global_rate / 2)))
        self.chat_rate = chat_rate * headroom
        self.group_rate = group_per_minute / 60.0 * headroom
        self.chat_burst = float(chat_burst)
        self.prefix = prefix
        self._warned_at = -1e9

    def limits_for(self, bot_id: int, chat_id: int | str | None) -> list[Limit]:
        base = f"{self.prefix}:{bot_id}"
        limits = [Limit(f"{base}:global", self.global_rate, self.global_burst)]
        if chat_id is not None:
            group = isinstance(chat_id, str) or chat_id < 0  # "@channel" or a group's id
            rate = self.group_rate if group else self.chat_rate
            limits.append(Limit(f"{base}:chat:{chat_id}", rate, self.chat_burst))
        return limits

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        counted = flood_cost(method)
        if counted is not None:
            chat_id, cost = counted
            await self._wait(self.limits_for(bot.id, chat_id), cost, method.__api_method__)
        return await make_request(bot, method)

    async def _wait(self, limits: Sequence[Limit], cost: int, name: str) -> None:
        try:
            waited = await take_tokens(self.buckets, limits, cost)
        except LimiterUnavailableError as exc:
            now = time.monotonic()
            if now - self._warned_at > 60:
                self._warned_at = now
                log.warning("flood limiter unavailable, sending unlimited: %s", exc)
            return
        if waited > 5:
            log.info("%s waited %.1f s for Telegram's flood limits", name, waited)


def build_flood_limiter(settings: Settings, redis: Redis | None = None) -> FloodLimitMiddleware:
    """The limiter of the settings' rates: shared by every process through ``redis``,
    or this process's own without it."""
    buckets: RateBuckets = LocalRateBuckets() if redis is None else RedisRateBuckets(redis)
    return FloodLimitMiddleware(
        buckets,
        global_rate=settings.telegram_rate_limit,
        chat_rate=settings.telegram_chat_rate_limit,
        chat_burst=settings.telegram_chat_burst,
    )


def build_session(
    api_base: str, *, timeout: float = 60.0, flood: BaseRequestMiddleware | None = None
) -> AiohttpSession:
    """The session; ``flood`` (``build_flood_limiter``) runs inside ``RetryAfterMiddleware``,
    so a retry waits for its tokens too."""
    session = AiohttpSession(api=TelegramAPIServer.from_base(api_base), timeout=timeout)
    session.middleware(SkipMalformedUpdates())
    session.middleware(RetryAfterMiddleware())
    if flood is not None:
        session.middleware(flood)
    session.middleware(StaleCallbackAnswers())
    return session


class StaleCallbackAnswers(BaseRequestMiddleware):
    """answerCallbackQuery only stops the button's spinner (and shows a notice). Telegram
    refuses it for a query answered before or older than its deadline, which happens
    when the same update is handled twice (at-least-once webhook delivery): that answer
    is moot, so the refusal is logged and the update goes on instead of failing."""

    STALE = "query is too old"

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        try:
            return await make_request(bot, method)
        except TelegramBadRequest as exc:
            if not isinstance(method, AnswerCallbackQuery) or self.STALE not in exc.message:
                raise
            log.info("callback query %s was answered before; going on", method.callback_query_id)
            return True  # type: ignore[return-value]  # make_request hands back the result
