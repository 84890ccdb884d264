"""/api: the user's API keys for the HTTP API. Only in a private chat: a key is a secret."""

from __future__ import annotations

from aiogram import Bot, F, Router
from aiogram.enums import ChatType
from aiogram.filters import Command
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message

from lumigram.bot import keyboards_api, render_api
from lumigram.bot.callbacks import ApiKeyAction, ApiKeyCallback
from lumigram.bot.messages import edit_or_send
from lumigram.container import Services
from lumigram.domain.users import User
from lumigram.services.api_keys import TooManyKeysError


def docs_url(services: Services) -> str | None:
    base = services.infra.settings.public_base_url
    return f"{base}/docs" if base else None


async def _screen(services: Services, user: User) -> tuple[str, InlineKeyboardMarkup]:
    keys = await services.api_keys.list(user.id)
    return render_api.overview(keys, docs_url(services)), keyboards_api.overview(keys)


async def api_command(message: Message, services: Services, user: User) -> None:
    text, markup = await _screen(services, user)
    await message.answer(text, reply_markup=markup)


async def api_command_elsewhere(message: Message) -> None:
    await message.reply(render_api.private_only())


async def list_button(callback: CallbackQuery, services: Services, user: User) -> None:
    text, markup = await _screen(services, user)
    await edit_or_send(callback, text, markup)


async def create_button(callback: CallbackQuery, services: Services, user: User, bot: Bot) -> None:
    try:
        created = await services.api_keys.create(user.id)
    except TooManyKeysError as exc:
        await callback.answer(render_api.too_many(exc.limit), show_alert=True)
        return
    text, markup = await _screen(services, user)
    await edit_or_send(callback, text, markup)
    # Its own message, below the list: the user copies it, and may delete it.
    await bot.send_message(user.id, render_api.created(created))


async def revoke_button(
    callback: CallbackQuery, callback_data: ApiKeyCallback, services: Services, user: User
) -> None:
    keys = await services.api_keys.list(user.id)
    key = next((key for key in keys if key.id == callback_data.key_id), None)
    if key is None or key.id is None:
        await edit_or_send(
            callback,
            render_api.overview(keys, docs_url(services)),
            keyboards_api.overview(keys),
            notice=render_api.key_gone(),
        )
        return
    await edit_or_send(
        callback, render_api.confirm_revoke(key), keyboards_api.confirm_revoke(key.id)
    )


async def confirm_revoke_button(
    callback: CallbackQuery, callback_data: ApiKeyCallback, services: Services, user: User
) -> None:
    done = await services.api_keys.revoke(user.id, callback_data.key_id)
    text, markup = await _screen(services, user)
    notice = render_api.revoked() if done else render_api.key_gone()
    await edit_or_send(callback, text, markup, notice=notice)


def create_router() -> Router:
    router = Router(name=__name__)
    private = F.chat.type == ChatType.PRIVATE
    router.message.register(api_command, Command("api"), private)
    router.message.register(api_command_elsewhere, Command("api"))
    in_private = F.message.chat.type == ChatType.PRIVATE
    buttons = ApiKeyCallback.filter
    router.callback_query.register(list_button, buttons(F.action == ApiKeyAction.LIST), in_private)
    router.callback_query.register(
        create_button, buttons(F.action == ApiKeyAction.CREATE), in_private
    )
    router.callback_query.register(
        revoke_button, buttons(F.action == ApiKeyAction.REVOKE), in_private
    )
    router.callback_query.register(
        confirm_revoke_button, buttons(F.action == ApiKeyAction.CONFIRM_REVOKE), in_private
    )
    return router
