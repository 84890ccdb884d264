from __future__ import annotations

from aiogram import Router
from aiogram.filters import CommandObject, CommandStart
from aiogram.types import Message

from lumigram.bot import keyboards, render
from lumigram.container import Services
from lumigram.domain.users import User
from lumigram.services.users import Registration

router = Router(name=__name__)


@router.message(CommandStart())
async def start(
    message: Message,
    command: CommandObject,
    services: Services,
    user: User,
    registration: Registration,
) -> None:
    if registration.created:
        await services.users.remember_start_payload(user, command.args)
    await message.answer(render.welcome(user), reply_markup=keyboards.main_menu())
