from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.types import CallbackQuery, Message

from lumigram.bot import keyboards, render
from lumigram.bot.callbacks import MenuAction, MenuCallback
from lumigram.bot.messages import edit_or_send

router = Router(name=__name__)


@router.message(Command("menu"))
async def menu_command(message: Message) -> None:
    await message.answer(render.menu(), reply_markup=keyboards.main_menu())


@router.callback_query(MenuCallback.filter(F.action == MenuAction.MAIN))
async def menu_button(callback: CallbackQuery) -> None:
    await edit_or_send(callback, render.menu(), keyboards.main_menu())
