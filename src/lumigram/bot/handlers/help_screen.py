from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.types import CallbackQuery, Message

from lumigram.bot import keyboards, render
from lumigram.bot.callbacks import MenuAction, MenuCallback
from lumigram.bot.messages import edit_or_send


async def help_command(message: Message) -> None:
    await message.answer(render.help_text(), reply_markup=keyboards.back_to_menu())


async def help_button(callback: CallbackQuery) -> None:
    await edit_or_send(callback, render.help_text(), keyboards.back_to_menu())


def create_router() -> Router:
    router = Router(name=__name__)
    router.message.register(help_command, Command("help"))
    router.callback_query.register(help_button, MenuCallback.filter(F.action == MenuAction.HELP))
    return router
