"""Translations: aiogram's gettext I18n over the Babel catalogs in ``lumigram/locales``.

The locale comes from the user's stored choice, so anything that knows the
user (a background worker included) can translate with
``i18n.gettext(text, locale=user.language)``.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Any

from aiogram.types import TelegramObject
from aiogram.types import User as TelegramUser
from aiogram.utils.i18n import I18n, I18nMiddleware

from lumigram.domain.users import User, pick_language

LOCALES_DIR = Path(str(files("lumigram") / "locales"))
DOMAIN = "messages"


def N_(text: str) -> str:  # noqa: N802 - the conventional gettext "mark only" name
    """Mark a string for extraction; it is translated later, with an explicit locale."""
    return text


def build_i18n(default_locale: str) -> I18n:
    return I18n(path=LOCALES_DIR, default_locale=default_locale, domain=DOMAIN)


class UserLocaleMiddleware(I18nMiddleware):
    """The stored language of the user; Telegram's language_code before they are known."""

    async def get_locale(self, event: TelegramObject, data: dict[str, Any]) -> str:
        user: User | None = data.get("user")
        if user is not None:
            return user.language
        sender: TelegramUser | None = data.get("event_from_user")
        return pick_language(sender.language_code if sender else None, self.i18n.default_locale)
