"""The user side of a Stars payment: pre-checkout, successful payment, renewals.

A payment sends the bot a ``pre_checkout_query`` update and waits (the emulator's
``pre_checkout_timeout``, 10 s like Telegram) for ``answerPreCheckoutQuery``. On
``ok=True`` the user's chat gets a ``successful_payment`` service message, which is
also delivered to the bot as a ``message`` update.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from typing import Any

from . import limits
from .messages import ChatMessage
from .state import (
    BotState,
    ChargeRecord,
    EmulatorState,
    InvoiceRecord,
    PreCheckoutRecord,
    UserProfile,
    copy_json,
    now,
)

JSON = dict[str, Any]


@dataclass
class PaymentResult:
    """``reason``: "paid", "declined" (the bot said ok=False; see ``error_message``),
    "timeout" (no answer in time), "not_delivered" (the bot does not receive
    pre_checkout_query updates), "canceled" (renewal of a canceled subscription) or
    "failed" (a renewal the test made fail)."""

    ok: bool
    charge_id: str | None
    error_message: str | None
    message: ChatMessage | None
    reason: str = "paid"
    pre_checkout_query_id: str | None = None


def _charge_id() -> str:
    # Stars charge ids look like "stxAbC...".
    return "stx" + secrets.token_urlsafe(48).replace("-", "").replace("_", "")[:60]


async def pay_invoice(
    state: EmulatorState,
    bot: BotState,
    user: UserProfile,
    invoice: InvoiceRecord,
    timeout: float,
    *,
    deliver: bool = True,
) -> PaymentResult:
    """Pre-checkout, then the charge. ``deliver=False``: the charge happens (it is in the
    chat and in getStarTransactions) but its ``successful_payment`` update is lost."""
    query_id = state.new_id("pcq")
    answer: asyncio.Future[JSON] = asyncio.get_running_loop().create_future()
    record = PreCheckoutRecord(query_id, user.id, invoice.id, answer)
    bot.pre_checkouts[query_id] = record
    pushed = bot.updates.push(
        "pre_checkout_query",
        {
            "id": query_id,
            "from": user.to_user(),
            "currency": invoice.currency,
            "total_amount": invoice.amount,
            "invoice_payload": invoice.payload,
        },
    )
    if pushed is None:
        record.expired = True
        return PaymentResult(
            False,
            None,
            "pre_checkout_query is not in the bot's allowed_updates",
            None,
            "not_delivered",
            query_id,
        )
    try:
        verdict = await asyncio.wait_for(
            asyncio.shield(answer), min(timeout, state.pre_checkout_timeout)
        )
    except TimeoutError:
        record.expired = True
        return PaymentResult(
            False, None, "the bot did not answer the pre-checkout query", None, "timeout", query_id
        )
    if not verdict["ok"]:
        return PaymentResult(False, None, verdict["error_message"], None, "declined", query_id)
    charge = ChargeRecord(
        charge_id=_charge_id(),
        user_id=user.id,
        amount=invoice.amount,
        payload=invoice.payload,
        date=now(),
        invoice_id=invoice.id,
        subscription_period=invoice.subscription_period,
    )
    if invoice.subscription_period:
        charge.expiration_date = charge.date + invoice.subscription_period
    message = _settle(state, bot, user, charge, first_recurring=True, deliver=deliver)
    return PaymentResult(True, charge.charge_id, None, message, "paid", query_id)


def renew(
    state: EmulatorState,
    bot: BotState,
    user: UserProfile,
    charge_id: str,
    *,
    fail: bool,
    deliver: bool = True,
) -> PaymentResult:
    """Charge the next period of a subscription (no pre-checkout query, as Telegram)."""
    charge = bot.charges.get(charge_id)
    if charge is None or charge.user_id != user.id:
        raise LookupError(f"no charge {charge_id!r} of user {user.id}")
    first = bot.charges.get(charge.first_charge_id or charge.charge_id, charge)
    if first.subscription_period is None or first.expiration_date is None:
        raise LookupError(f"charge {charge_id!r} is not a subscription")
    if first.canceled:
        return PaymentResult(False, None, "the subscription was canceled", None, "canceled")
    if fail:
        push_subscription_update(bot, user, first, "failed")
        return PaymentResult(False, None, "the renewal payment failed", None, "failed")
    first.expiration_date += first.subscription_period
    renewal = ChargeRecord(
        charge_id=_charge_id(),
        user_id=user.id,
        amount=first.amount,
        payload=first.payload,
        date=now(),
        invoice_id=first.invoice_id,
        subscription_period=first.subscription_period,
        expiration_date=first.expiration_date,
        first_charge_id=first.charge_id,
    )
    message = _settle(state, bot, user, renewal, first_recurring=False, deliver=deliver)
    return PaymentResult(True, renewal.charge_id, None, message, "paid")


def _settle(
    state: EmulatorState,
    bot: BotState,
    user: UserProfile,
    charge: ChargeRecord,
    *,
    first_recurring: bool,
    deliver: bool = True,
) -> ChatMessage:
    bot.charges[charge.charge_id] = charge
    partner: JSON = {
        "type": "user",
        "transaction_type": "invoice_payment",
        "user": user.to_user(),
        "invoice_payload": charge.payload,
    }
    if charge.subscription_period:
        partner["subscription_period"] = charge.subscription_period
    bot.transactions.append(
        {"id": charge.charge_id, "amount": charge.amount, "date": charge.date, "source": partner}
    )
    payment: JSON = {
        "currency": limits.STARS_CURRENCY,
        "total_amount": charge.amount,
        "invoice_payload": charge.payload,
    }
    if charge.subscription_period and charge.expiration_date:
        payment["subscription_expiration_date"] = charge.expiration_date
        payment["is_recurring"] = True
        if first_recurring:
            payment["is_first_recurring"] = True
    payment["telegram_payment_charge_id"] = charge.charge_id
    payment["provider_payment_charge_id"] = charge.charge_id
    chat = state.private_chat(bot, user)
    stored = state.add_message(
        bot,
        chat,
        sender=user.to_user(),
        from_bot=False,
        content={"successful_payment": payment},
    )
    if deliver:
        bot.updates.push("message", copy_json(stored.raw))
    return ChatMessage.from_raw(copy_json(stored.raw), from_bot=False)


def push_subscription_update(
    bot: BotState, user: UserProfile, first: ChargeRecord, subscription_state: str
) -> JSON | None:
    """The Bot API 10.2 ``subscription`` update (BotSubscriptionUpdated)."""
    if subscription_state == "canceled":
        first.canceled = True
    elif subscription_state == "active":
        first.canceled = False
    return bot.updates.push(
        "subscription",
        {"user": user.to_user(), "invoice_payload": first.payload, "state": subscription_state},
    )
