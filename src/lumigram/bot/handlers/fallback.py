"""What no feature router handled: stale or forged buttons, and unexpected messages."""

from __future__ import annotations

from aiogram import Router
from aiogram.types import CallbackQuery, Message

from lumigram.bot import render


async def unknown_button(callback: CallbackQuery) -> None:
    await callback.answer(render.stale_button(), show_alert=True)


async def unknown_message(message: Message) -> None:
    if message.chat.type == "private":
        await message.answer(render.unknown_message())


def create_router() -> Router:
    router = Router(name=__name__)
    router.callback_query.register(unknown_button)
    router.message.register(unknown_message)
    return router
