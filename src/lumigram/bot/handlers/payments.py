"""Telegram Stars payment updates: pre-checkout, successful payment, subscription changes."""

from __future__ import annotations

import logging

from aiogram import Bot, F, Router
from aiogram.types import BotSubscriptionUpdated, Message, PreCheckoutQuery

from lumigram.bot import render_money
from lumigram.container import Services
from lumigram.domain.invoices import Product
from lumigram.domain.money import UNMATCHED, Account
from lumigram.domain.users import User
from lumigram.services.payments import from_unix

log = logging.getLogger(__name__)


async def pre_checkout(query: PreCheckoutQuery, services: Services, user: User) -> None:
    """Answered from a few reads, well within the 10 s Telegram waits."""
    refusal = await services.payments.check(
        user,
        payload=query.invoice_payload,
        currency=query.currency,
        total_amount=query.total_amount,
    )
    if refusal is None:
        await query.answer(ok=True)
        return
    log.info("pre-checkout of user %s refused: %s", user.id, refusal.value)
    await query.answer(ok=False, error_message=render_money.refusal(refusal)[:255])


async def successful_payment(message: Message, services: Services, user: User, bot: Bot) -> None:
    payment = message.successful_payment
    assert payment is not None
    recorded = await services.payments.record(
        user_id=user.id,
        charge_id=payment.telegram_payment_charge_id,
        payload=payment.invoice_payload,
        currency=payment.currency,
        total_amount=payment.total_amount,
        subscription_expires_at=from_unix(payment.subscription_expiration_date),
        is_recurring=bool(payment.is_recurring),
        is_first_recurring=bool(payment.is_first_recurring),
    )
    if recorded.duplicate:
        return  # a replayed update: recorded before, nothing to say twice
    if recorded.job is not None:
        await message.answer(render_money.paid_generation())
        await services.generation.start(recorded.job)
    elif recorded.refunded:
        await message.answer(render_money.paid_but_gone(recorded.payment.amount_xtr))
        await settle_refunds(services)
    elif recorded.tier is not None and recorded.payment.subscription_expires_at is not None:
        await message.answer(
            render_money.subscribed(recorded.tier, recorded.payment.subscription_expires_at)
        )
    elif recorded.payment.product == Product.PACKAGE.value:
        balances = await services.account.balances(user.id)
        await message.answer(
            render_money.credits_added(recorded.payment.credits, balances[Account.CREDITS.value])
        )
    elif recorded.payment.product == UNMATCHED:
        await message.answer(render_money.unmatched_payment())


async def refunded_payment(message: Message) -> None:
    """Telegram's note that a payment was refunded: we refunded it ourselves already."""


async def subscription_changed(update: BotSubscriptionUpdated, services: Services) -> None:
    await services.subscriptions.on_update(update.user.id, update.state)


async def settle_refunds(services: Services) -> None:
    infra = services.infra
    if infra.stars is not None:
        await services.refunds.process_due(infra.stars, infra.money_notifier)


def create_router() -> Router:
    router = Router(name=__name__)
    router.pre_checkout_query.register(pre_checkout)
    router.message.register(successful_payment, F.successful_payment)
    router.message.register(refunded_payment, F.refunded_payment)
    router.subscription.register(subscription_changed)
    return router
