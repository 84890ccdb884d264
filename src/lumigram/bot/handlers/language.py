from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import I18n

from lumigram.bot import keyboards, render
from lumigram.bot.callbacks import LanguageCallback, MenuAction, MenuCallback
from lumigram.bot.messages import edit_or_send
from lumigram.container import Services
from lumigram.domain.users import SUPPORTED_LANGUAGES, User


async def language_command(message: Message, user: User) -> None:
    await message.answer(render.language_prompt(), reply_markup=keyboards.languages(user.language))


async def language_button(callback: CallbackQuery, user: User) -> None:
    await edit_or_send(callback, render.language_prompt(), keyboards.languages(user.language))


async def choose_language(
    callback: CallbackQuery,
    callback_data: LanguageCallback,
    services: Services,
    user: User,
    i18n: I18n,
) -> None:
    await services.users.set_language(user, callback_data.code)
    # From here on this update speaks the new language.
    with i18n.use_locale(user.language):
        await edit_or_send(
            callback,
            f"{render.language_changed()}\n\n{render.menu()}",
            keyboards.main_menu(),
            notice=render.language_changed(),
        )


def create_router() -> Router:
    router = Router(name=__name__)
    router.message.register(language_command, Command("language"))
    router.callback_query.register(
        language_button, MenuCallback.filter(F.action == MenuAction.LANGUAGE)
    )
    router.callback_query.register(
        choose_language, LanguageCallback.filter(F.code.in_(SUPPORTED_LANGUAGES))
    )
    return router
