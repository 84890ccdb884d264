"""The bot's HTTP session: Telegram's flood control and updates it cannot parse.

aiogram raises ``TelegramRetryAfter`` on a 429; ``RetryAfterMiddleware``
waits the ``retry_after`` Telegram asked for and sends again, a few times.
``SkipMalformedUpdates`` keeps long polling alive when an update does not
parse: it drops that update (logging its id) instead of asking for it forever.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.session.middlewares.base import (
    BaseRequestMiddleware,
    NextRequestMiddlewareType,
)
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import ClientDecodeError, TelegramRetryAfter
from aiogram.methods import GetUpdates, Response, TelegramMethod
from aiogram.methods.base import TelegramType
from aiogram.types import Update
from pydantic import ValidationError

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


def build_session(api_base: str, *, timeout: float = 60.0) -> AiohttpSession:
    session = AiohttpSession(api=TelegramAPIServer.from_base(api_base), timeout=timeout)
    session.middleware(SkipMalformedUpdates())
    session.middleware(RetryAfterMiddleware())
    return session
