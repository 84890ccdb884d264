"""The last line of defence: log the failure, tell the user politely, never a traceback."""

from __future__ import annotations

import contextlib
import logging

from aiogram import Bot, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.types import ErrorEvent
from aiogram.utils.i18n import I18n

from lumigram.bot import render
from lumigram.domain.users import User, pick_language

log = logging.getLogger(__name__)


async def on_error(event: ErrorEvent, bot: Bot, i18n: I18n, user: User | None = None) -> bool:
    update = event.update
    log.error(
        "update %s failed: %s",
        update.update_id,
        type(event.exception).__name__,
        exc_info=event.exception,
    )
    sender = update.event.from_user if hasattr(update.event, "from_user") else None
    locale = (
        user.language
        if user
        else pick_language(sender.language_code if sender else None, i18n.default_locale)
    )
    with i18n.context(), i18n.use_locale(locale):
        text = render.error_happened()
    # Telling the user is best effort: the failure may be Telegram itself.
    with contextlib.suppress(TelegramAPIError):
        if update.callback_query is not None:
            await update.callback_query.answer(text, show_alert=True)
        elif update.message is not None and update.message.chat.type == "private":
            await bot.send_message(update.message.chat.id, text)
    return True


def create_router() -> Router:
    router = Router(name=__name__)
    router.errors.register(on_error)
    return router
