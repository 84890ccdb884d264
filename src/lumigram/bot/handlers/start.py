from __future__ import annotations

from aiogram import Router
from aiogram.filters import CommandObject, CommandStart
from aiogram.fsm.context import FSMContext
from aiogram.types import Message

from lumigram.bot import keyboards, render
from lumigram.container import Services
from lumigram.domain.users import User
from lumigram.services.users import Registration


async def start(
    message: Message,
    command: CommandObject,
    services: Services,
    user: User,
    registration: Registration,
    state: FSMContext,
) -> None:
    await state.clear()  # /start always begins afresh
    if registration.created:
        await services.users.remember_start_payload(user, command.args)
    overview = await services.account.overview(user.id)  # what the profile shows, too
    await message.answer(render.welcome(user, overview), reply_markup=keyboards.main_menu())


def create_router() -> Router:
    router = Router(name=__name__)
    router.message.register(start, CommandStart())
    return router
