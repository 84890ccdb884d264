"""What no feature router handled: stale or forged buttons, and unexpected messages."""

from __future__ import annotations

from aiogram import Router
from aiogram.types import CallbackQuery, Message

from lumigram.bot import render

router = Router(name=__name__)


@router.callback_query()
async def unknown_button(callback: CallbackQuery) -> None:
    await callback.answer(render.stale_button(), show_alert=True)


@router.message()
async def unknown_message(message: Message) -> None:
    if message.chat.type == "private":
        await message.answer(render.unknown_message())
