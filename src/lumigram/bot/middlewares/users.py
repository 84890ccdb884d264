"""Registers the sender on first contact and stops banned users here."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import CallbackQuery, Message, PreCheckoutQuery, TelegramObject, Update
from aiogram.types import User as TelegramUser
from aiogram.utils.i18n import I18n

from lumigram.bot import render
from lumigram.bot.middlewares.money import moved_money
from lumigram.container import Services
from lumigram.services.users import Contact

log = logging.getLogger(__name__)


class UserMiddleware(BaseMiddleware):
    def __init__(self, i18n: I18n) -> None:
        self._i18n = i18n

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        sender: TelegramUser | None = data.get("event_from_user")
        if sender is None or sender.is_bot:
            return await handler(event, data)
        services: Services = data["services"]
        registration = await services.users.register_contact(
            Contact(
                user_id=sender.id,
                first_name=sender.first_name,
                username=sender.username,
                language_code=sender.language_code,
            )
        )
        data["user"] = registration.user
        data["registration"] = registration
        if registration.user.is_banned and not moved_money(event):
            await self._tell_banned(event, registration.user.language, registration.user.ban_reason)
            return None
        return await handler(event, data)

    async def _tell_banned(self, event: TelegramObject, locale: str, reason: str | None) -> None:
        inner = event.event if isinstance(event, Update) else event
        with self._i18n.context(), self._i18n.use_locale(locale):
            text = render.banned(reason)
        if isinstance(inner, PreCheckoutQuery):
            await inner.answer(ok=False, error_message=text[:255])
        elif isinstance(inner, Message):
            await inner.answer(text)
        elif isinstance(inner, CallbackQuery):
            await inner.answer(text, show_alert=True)
        else:
            log.info("dropped an update of a banned user")
