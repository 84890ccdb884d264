"""Navigation helpers: edit the current message instead of sending a new one."""

from __future__ import annotations

from aiogram.exceptions import TelegramBadRequest
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message


async def edit_or_send(
    callback: CallbackQuery,
    text: str,
    markup: InlineKeyboardMarkup | None = None,
    *,
    notice: str | None = None,
) -> None:
    """Show ``text`` in the message the button belongs to; send a new one if it can't be edited."""
    message = callback.message
    if isinstance(message, Message) and message.text is not None:
        if message.html_text != text or message.reply_markup != markup:
            try:
                await message.edit_text(text, reply_markup=markup)
            except TelegramBadRequest as exc:
                if "message is not modified" not in exc.message:
                    await message.answer(text, reply_markup=markup)
    elif callback.message is not None:
        await callback.bot.send_message(callback.message.chat.id, text, reply_markup=markup)  # type: ignore[union-attr]
    await callback.answer(notice)
