"""/subscription: the plan, its allowance and renewal date; subscribe, cancel or resume."""

from __future__ import annotations

import logging

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message

from lumigram.bot import keyboards_money, render_money
from lumigram.bot.callbacks import MenuAction, MenuCallback, MoneyAction, MoneyCallback
from lumigram.bot.messages import edit_or_send
from lumigram.container import Services
from lumigram.domain.users import User
from lumigram.services.ports import StarsRefusedError
from lumigram.services.subscriptions import NoSubscriptionError

log = logging.getLogger(__name__)


async def _screen(services: Services, user: User) -> tuple[str, InlineKeyboardMarkup]:
    view = await services.subscriptions.view(user.id)
    tiers = list(services.subscriptions.tiers.values())
    links: list[tuple[str, str]] = []
    stars = services.infra.stars
    if not view.active and stars is not None:
        for tier in tiers:
            invoice = services.payments.subscription_invoice(user.id, tier)
            url = await stars.subscription_link(tier, invoice.payload, user.language)
            links.append((render_money.subscribe_button(tier), url))
    renews = view.subscription.renews() if view.subscription else True
    return (
        render_money.subscription_screen(view, tiers),
        keyboards_money.subscription(links, active=view.active, renews=renews),
    )


async def subscription_command(message: Message, services: Services, user: User) -> None:
    text, markup = await _screen(services, user)
    await message.answer(text, reply_markup=markup)


async def subscription_button(callback: CallbackQuery, services: Services, user: User) -> None:
    text, markup = await _screen(services, user)
    await edit_or_send(callback, text, markup)


async def change_renewal(
    callback: CallbackQuery, callback_data: MoneyCallback, services: Services, user: User
) -> None:
    stars = services.infra.stars
    cancel = callback_data.action == MoneyAction.RENEWAL_CANCEL
    if stars is None:
        await callback.answer(render_money.no_subscription(), show_alert=True)
        return
    try:
        subscription = await services.subscriptions.set_renewal(user.id, cancel=cancel, stars=stars)
    except NoSubscriptionError:
        await callback.answer(render_money.no_subscription(), show_alert=True)
        return
    except StarsRefusedError as error:
        log.warning("editUserStarSubscription refused for user %s: %s", user.id, error.reason)
        await callback.answer(render_money.no_subscription(), show_alert=True)
        return
    text, markup = await _screen(services, user)
    await edit_or_send(
        callback,
        text,
        markup,
        notice=render_money.renewal_changed(cancel, subscription.expires_at),
    )


def create_router() -> Router:
    router = Router(name=__name__)
    router.message.register(subscription_command, Command("subscription"))
    router.callback_query.register(
        subscription_button, MenuCallback.filter(F.action == MenuAction.SUBSCRIPTION)
    )
    renewal = (MoneyAction.RENEWAL_CANCEL, MoneyAction.RENEWAL_RESUME)
    router.callback_query.register(change_renewal, MoneyCallback.filter(F.action.in_(renewal)))
    return router
