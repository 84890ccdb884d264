"""Inline keyboards. Labels are translated with the current locale."""

from __future__ import annotations

from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder

from lumigram.bot.callbacks import LanguageCallback, MenuAction, MenuCallback
from lumigram.domain.users import LANGUAGE_NAMES, SUPPORTED_LANGUAGES


def main_menu() -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(text=_("🌐 Language"), callback_data=MenuCallback(action=MenuAction.LANGUAGE))
    builder.button(text=_("❓ Help"), callback_data=MenuCallback(action=MenuAction.HELP))
    builder.adjust(2)
    return builder.as_markup()


def languages(current: str | None = None) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for code in SUPPORTED_LANGUAGES:
        mark = "✅ " if code == current else ""
        builder.button(
            text=f"{mark}{LANGUAGE_NAMES[code]}", callback_data=LanguageCallback(code=code)
        )
    builder.button(text=_("⬅️ Back"), callback_data=MenuCallback(action=MenuAction.MAIN))
    builder.adjust(1)
    return builder.as_markup()


def back_to_menu() -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(text=_("⬅️ Back"), callback_data=MenuCallback(action=MenuAction.MAIN))
    return builder.as_markup()
