"""The inline-keyboard counter of aiogram's guide ("callback data factory"): buttons
change a number by editing the message, "Confirm" shows the total."""

from __future__ import annotations

import contextlib

from aiogram import F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command
from aiogram.filters.callback_data import CallbackData
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.keyboard import InlineKeyboardBuilder


class NumbersCallbackFactory(CallbackData, prefix="fabnum"):
    action: str
    value: int | None = None


def get_keyboard_fab() -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(text="-2", callback_data=NumbersCallbackFactory(action="change", value=-2))
    builder.button(text="-1", callback_data=NumbersCallbackFactory(action="change", value=-1))
    builder.button(text="+1", callback_data=NumbersCallbackFactory(action="change", value=1))
    builder.button(text="+2", callback_data=NumbersCallbackFactory(action="change", value=2))
    builder.button(text="Confirm", callback_data=NumbersCallbackFactory(action="finish"))
    # Align the buttons 4 in a row to get 4 + 1
    builder.adjust(4)
    return builder.as_markup()


def make_router() -> Router:
    router = Router(name="callbacks")
    user_data: dict[int, int] = {}

    async def update_num_text_fab(message: Message, new_value: int) -> None:
        with contextlib.suppress(TelegramBadRequest):
            await message.edit_text(
                f"Enter the number: {new_value}", reply_markup=get_keyboard_fab()
            )

    @router.message(Command("numbers_fab"))
    async def cmd_numbers_fab(message: Message) -> None:
        assert message.from_user is not None
        user_data[message.from_user.id] = 0
        await message.answer("Enter the number: 0", reply_markup=get_keyboard_fab())

    @router.callback_query(NumbersCallbackFactory.filter(F.action == "change"))
    async def callbacks_num_change_fab(
        callback: CallbackQuery, callback_data: NumbersCallbackFactory
    ) -> None:
        user_value = user_data.get(callback.from_user.id, 0)
        user_data[callback.from_user.id] = user_value + (callback_data.value or 0)
        assert isinstance(callback.message, Message)
        await update_num_text_fab(callback.message, user_value + (callback_data.value or 0))
        await callback.answer()

    @router.callback_query(NumbersCallbackFactory.filter(F.action == "finish"))
    async def callbacks_num_finish_fab(callback: CallbackQuery) -> None:
        user_value = user_data.get(callback.from_user.id, 0)
        assert isinstance(callback.message, Message)
        await callback.message.edit_text(f"Total: {user_value}")
        await callback.answer(text=f"Saved {user_value}", show_alert=True)

    return router
