from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message

from lumigram.bot import keyboards, render
from lumigram.bot.callbacks import MenuAction, MenuCallback
from lumigram.bot.messages import edit_or_send


async def menu_command(message: Message, state: FSMContext) -> None:
    await state.clear()
    await message.answer(render.menu(), reply_markup=keyboards.main_menu())


async def menu_button(callback: CallbackQuery, state: FSMContext) -> None:
    await state.clear()
    await edit_or_send(callback, render.menu(), keyboards.main_menu())


def create_router() -> Router:
    router = Router(name=__name__)
    router.message.register(menu_command, Command("menu"))
    router.callback_query.register(menu_button, MenuCallback.filter(F.action == MenuAction.MAIN))
    return router
