"""Telegram Stars payment updates: pre-checkout, successful payment, subscription changes."""

from __future__ import annotations

import logging

from aiogram import F, Router
from aiogram.types import BotSubscriptionUpdated, Message, PreCheckoutQuery

from lumigram.bot import render_money
from lumigram.container import Services
from lumigram.domain.invoices import Product
from lumigram.domain.money import Account
from lumigram.domain.stars import INVOICE_PAYMENT, Direction, StarTransaction
from lumigram.domain.users import User
from lumigram.services.payment_intake import IncomingPayment
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


async def successful_payment(message: Message, services: Services, user: User) -> None:
    payment = message.successful_payment
    assert payment is not None
    recorded = await services.payment_intake.receive(
        IncomingPayment(
            user_id=user.id,
            charge_id=payment.telegram_payment_charge_id,
            payload=payment.invoice_payload,
            currency=payment.currency,
            total_amount=payment.total_amount,
            subscription_expires_at=from_unix(payment.subscription_expiration_date),
            is_recurring=bool(payment.is_recurring),
            is_first_recurring=bool(payment.is_first_recurring),
        )
    )
    if recorded.duplicate:
        return  # a replayed update, or the reconciliation recorded it: nothing to say twice
    balance = 0
    if recorded.payment.product == Product.PACKAGE.value:
        balance = (await services.account.balances(user.id))[Account.CREDITS.value]
    text = render_money.payment_outcome(recorded, balance)
    if text:
        await message.answer(text)


async def refunded_payment(message: Message, services: Services, user: User) -> None:
    """Telegram's note that a payment was refunded: usually our own refund, recorded
    already; one whose answer was lost, or one made outside Lumigram, is settled now."""
    refund = message.refunded_payment
    assert refund is not None
    await services.stars_sync.refund_seen(
        StarTransaction(
            id=refund.telegram_payment_charge_id,
            amount=refund.total_amount,
            date=message.date,
            direction=Direction.OUT,
            partner=INVOICE_PAYMENT,
            user_id=user.id,
            invoice_payload=refund.invoice_payload,
        ),
        services.infra.money_notifier,
    )


async def subscription_changed(update: BotSubscriptionUpdated, services: Services) -> None:
    await services.subscriptions.on_update(update.user.id, update.state)


def create_router() -> Router:
    router = Router(name=__name__)
    router.pre_checkout_query.register(pre_checkout)
    router.message.register(successful_payment, F.successful_payment)
    router.message.register(refunded_payment, F.refunded_payment)
    router.subscription.register(subscription_changed)
    return router
