"""Inline keyboards of /api."""

from __future__ import annotations

from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder

from lumigram.bot import render_api
from lumigram.bot.callbacks import ApiKeyAction, ApiKeyCallback, MenuAction, MenuCallback
from lumigram.domain.api_keys import ApiKey


def overview(keys: list[ApiKey]) -> InlineKeyboardMarkup:
    """Create, one Revoke per key, and back to the main menu."""
    builder = InlineKeyboardBuilder()
    builder.button(
        text=render_api.create_button(), callback_data=ApiKeyCallback(action=ApiKeyAction.CREATE)
    )
    for key in keys:
        if key.id is None:
            continue
        builder.button(
            text=render_api.revoke_button(key),
            callback_data=ApiKeyCallback(action=ApiKeyAction.REVOKE, key_id=key.id),
        )
    builder.button(text=_("⬅️ Back"), callback_data=MenuCallback(action=MenuAction.MAIN))
    builder.adjust(1)
    return builder.as_markup()


def confirm_revoke(key_id: int) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(
        text=render_api.confirm_revoke_button(),
        callback_data=ApiKeyCallback(action=ApiKeyAction.CONFIRM_REVOKE, key_id=key_id),
    )
    builder.button(text=_("✖️ Cancel"), callback_data=ApiKeyCallback(action=ApiKeyAction.LIST))
    builder.adjust(2)
    return builder.as_markup()
