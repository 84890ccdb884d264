"""The profile, topping up with credit packages, and the referral screen."""

from __future__ import annotations

from aiogram import Bot, F, Router
from aiogram.filters import Command
from aiogram.types import CallbackQuery, LabeledPrice, Message

from lumigram.bot import keyboards_money, render_money
from lumigram.bot.callbacks import MenuAction, MenuCallback, MoneyAction, MoneyCallback
from lumigram.bot.messages import edit_or_send
from lumigram.container import Services
from lumigram.domain.users import REFERRAL_PREFIX, User
from lumigram.services.payments import STARS


async def referral_link(bot: Bot, user: User) -> str:
    me = await bot.me()
    return f"https://t.me/{me.username}?start={REFERRAL_PREFIX}{user.referral_code}"


async def _profile(services: Services, user: User, bot: Bot) -> str:
    overview = await services.account.overview(user.id)
    return render_money.profile(overview, await referral_link(bot, user))


async def profile_command(message: Message, services: Services, user: User, bot: Bot) -> None:
    await message.answer(
        await _profile(services, user, bot), reply_markup=keyboards_money.profile()
    )


async def profile_button(callback: CallbackQuery, services: Services, user: User, bot: Bot) -> None:
    await edit_or_send(callback, await _profile(services, user, bot), keyboards_money.profile())


async def _top_up(services: Services, user: User) -> str:
    balances = await services.account.balances(user.id)
    return render_money.top_up(balances["credits"])


async def top_up_command(message: Message, services: Services, user: User) -> None:
    await message.answer(
        await _top_up(services, user),
        reply_markup=keyboards_money.packages(services.payments.packages),
    )


async def top_up_button(callback: CallbackQuery, services: Services, user: User) -> None:
    await edit_or_send(
        callback,
        await _top_up(services, user),
        keyboards_money.packages(services.payments.packages),
    )


async def buy_package(
    callback: CallbackQuery, callback_data: MoneyCallback, services: Services, user: User, bot: Bot
) -> None:
    offer = services.payments.package_invoice(user.id, callback_data.value)
    if offer is None:
        await callback.answer(render_money.refusal_stale(), show_alert=True)
        return
    package, invoice = offer
    await send_terms_if_first(bot, services, user)
    await bot.send_invoice(
        chat_id=user.id,
        title=render_money.package_invoice_title(package),
        description=render_money.package_invoice_description(package),
        payload=invoice.payload,
        currency=STARS,
        prices=[
            LabeledPrice(label=render_money.package_invoice_title(package), amount=package.stars)
        ],
    )
    await callback.answer()


async def send_terms_if_first(bot: Bot, services: Services, user: User) -> None:
    """The terms are shown before a user's first purchase."""
    if not await services.payments.has_paid_before(user.id):
        await bot.send_message(user.id, render_money.terms_before_first_purchase())


async def _referrals(services: Services, user: User, bot: Bot) -> str:
    stats = await services.account.referrals(user.id)
    percent = services.infra.settings.referral_percent
    return render_money.referrals(stats, await referral_link(bot, user), percent)


async def referrals_command(message: Message, services: Services, user: User, bot: Bot) -> None:
    await message.answer(await _referrals(services, user, bot), reply_markup=keyboards_money.back())


async def referrals_button(
    callback: CallbackQuery, services: Services, user: User, bot: Bot
) -> None:
    await edit_or_send(callback, await _referrals(services, user, bot), keyboards_money.back())


def create_router() -> Router:
    router = Router(name=__name__)
    menu = MenuCallback.filter
    router.message.register(profile_command, Command("profile", "balance"))
    router.callback_query.register(profile_button, menu(F.action == MenuAction.PROFILE))
    router.message.register(top_up_command, Command("topup", "buy"))
    router.callback_query.register(top_up_button, menu(F.action == MenuAction.TOP_UP))
    router.callback_query.register(
        buy_package, MoneyCallback.filter(F.action == MoneyAction.PACKAGE)
    )
    router.message.register(referrals_command, Command("referrals", "invite"))
    router.callback_query.register(referrals_button, menu(F.action == MenuAction.REFERRALS))
    return router
