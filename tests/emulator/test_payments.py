"""Telegram Stars: invoices, the pre-checkout flow, refunds, transactions, subscriptions."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import LabeledPrice

from lumigram.emulator import PaymentResult, SimUser, TelegramEmulator

from .conftest import RawApi

STARS = [LabeledPrice(label="100 credits", amount=100)]


async def answer_checkouts(bot: Bot, *, ok: bool = True, error: str | None = None) -> None:
    """A minimal bot: answers every pre-checkout query, forever."""
    offset = None
    while True:
        for update in await bot.get_updates(offset=offset, timeout=1):
            offset = update.update_id + 1
            if update.pre_checkout_query is not None:
                await bot.answer_pre_checkout_query(
                    update.pre_checkout_query.id, ok=ok, error_message=error
                )


@pytest.fixture
async def answering(bot: Bot) -> AsyncIterator[None]:
    task = asyncio.create_task(answer_checkouts(bot))
    yield
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_invoice_rules(api: RawApi, emu: TelegramEmulator) -> None:
    chat = emu.user(1001).id
    good: dict[str, Any] = {
        "chat_id": chat,
        "title": "Credits",
        "description": "100 credits",
        "payload": "order-1",
        "currency": "XTR",
        "prices": [{"label": "100", "amount": 100}],
    }

    async def error(**changes: Any) -> str:
        return await api.error("sendInvoice", **{**good, **changes})

    assert await error(currency="USD") == "Bad Request: PAYMENT_PROVIDER_INVALID"
    assert (
        await error(provider_token="284685063:TEST:abc") == "Bad Request: PAYMENT_PROVIDER_INVALID"
    )
    assert await error(prices=[{"label": "a", "amount": 1}, {"label": "b", "amount": 2}]) == (
        "Bad Request: STARS_INVOICE_INVALID"
    )
    assert await error(max_tip_amount=10) == "Bad Request: STARS_INVOICE_INVALID"
    assert (
        await error(prices=[{"label": "a", "amount": 0}])
        == "Bad Request: CURRENCY_TOTAL_AMOUNT_INVALID"
    )
    assert await error(title="t" * 33) == "Bad Request: INVOICE_TITLE_INVALID"
    assert await error(description="d" * 256) == "Bad Request: INVOICE_DESCRIPTION_INVALID"
    assert await error(payload="p" * 129) == "Bad Request: INVOICE_PAYLOAD_INVALID"
    assert await error(payload="ж" * 65) == "Bad Request: INVOICE_PAYLOAD_INVALID"
    assert await error(subscription_period=2592000) == (
        "Bad Request: subscription_period is supported only by createInvoiceLink"
    )
    status, body = await api.call(
        "sendInvoice", **{**good, "title": "t" * 32, "payload": "p" * 128, "provider_token": ""}
    )
    assert status == 200
    assert body["result"]["invoice"] == {
        "title": "t" * 32,
        "description": "100 credits",
        "start_parameter": "",
        "currency": "XTR",
        "total_amount": 100,
    }

    link = {k: v for k, v in good.items() if k != "chat_id"}
    assert await api.error("createInvoiceLink", **link, subscription_period=86400) == (
        "Bad Request: SUBSCRIPTION_PERIOD_INVALID"
    )
    assert (
        await api.error(
            "createInvoiceLink",
            **{**link, "prices": [{"label": "x", "amount": 10001}]},
            subscription_period=2592000,
        )
        == "Bad Request: STARS_INVOICE_INVALID"
    )
    status, body = await api.call(
        "createInvoiceLink",
        **{**link, "prices": [{"label": "x", "amount": 10000}]},
        subscription_period=2592000,
    )
    assert status == 200
    assert body["result"].startswith("https://t.me/$")


async def test_paid_invoice(bot: Bot, emu: TelegramEmulator, answering: None) -> None:
    user = emu.user(1001)
    await bot.send_invoice(user.id, "Credits", "100 credits", "order-42", "XTR", STARS)
    invoice = user.transcript[-1]
    assert invoice.kind == "invoice"
    assert invoice.invoice is not None
    assert invoice.invoice["total_amount"] == 100
    result = await user.pay(timeout=5)
    assert isinstance(result, PaymentResult)
    assert result.ok
    assert result.reason == "paid"
    assert result.charge_id
    assert result.charge_id.startswith("stx")
    assert result.message is not None
    assert result.message.kind == "successful_payment"
    payment = result.message.raw["successful_payment"]
    assert payment["currency"] == "XTR"
    assert payment["total_amount"] == 100
    assert payment["invoice_payload"] == "order-42"
    assert payment["telegram_payment_charge_id"] == result.charge_id
    assert "is_recurring" not in payment
    assert [m.kind for m in user.transcript] == ["invoice", "successful_payment"]
    [transaction] = (await bot.get_star_transactions()).transactions
    assert transaction.id == result.charge_id
    assert transaction.amount == 100
    assert transaction.source is not None
    assert transaction.source.type == "user"
    second = await user.pay(invoice, timeout=5)
    assert second.ok
    assert second.charge_id != result.charge_id


async def test_declined_payment(bot: Bot, emu: TelegramEmulator) -> None:
    task = asyncio.create_task(answer_checkouts(bot, ok=False, error="Sold out, sorry"))
    try:
        user = emu.user(1001)
        await bot.send_invoice(user.id, "Credits", "100 credits", "order-1", "XTR", STARS)
        result = await user.pay(timeout=5)
    finally:
        task.cancel()
    assert (result.ok, result.reason, result.error_message, result.charge_id) == (
        False,
        "declined",
        "Sold out, sorry",
        None,
    )
    assert [m.kind for m in user.transcript] == ["invoice"]


async def test_unanswered_payment_times_out(bot: Bot, emu: TelegramEmulator, api: RawApi) -> None:
    emu.pre_checkout_timeout = 0.2
    user = emu.user(1001)
    await bot.send_invoice(user.id, "Credits", "100 credits", "order-1", "XTR", STARS)
    result = await user.pay(timeout=5)
    assert (result.ok, result.reason) == (False, "timeout")
    assert result.pre_checkout_query_id is not None
    [update] = await bot.get_updates(timeout=0)
    assert update.pre_checkout_query is not None
    assert update.pre_checkout_query.invoice_payload == "order-1"
    assert update.pre_checkout_query.currency == "XTR"
    assert update.pre_checkout_query.total_amount == 100
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        await bot.answer_pre_checkout_query(update.pre_checkout_query.id, ok=True)
    assert await api.error("answerPreCheckoutQuery", pre_checkout_query_id="nope", ok=False) == (
        "Bad Request: query is too old and response timeout expired or query ID is invalid"
    )


async def test_payment_not_delivered_when_not_allowed(bot: Bot, emu: TelegramEmulator) -> None:
    user = emu.user(1001)
    await bot.get_updates(allowed_updates=["message"], timeout=0)
    await bot.send_invoice(user.id, "Credits", "100 credits", "order-1", "XTR", STARS)
    result = await user.pay()
    assert (result.ok, result.reason) == (False, "not_delivered")


async def test_refunds(bot: Bot, emu: TelegramEmulator, answering: None) -> None:
    user = emu.user(1001)
    await bot.send_invoice(user.id, "Credits", "100 credits", "order-7", "XTR", STARS)
    paid = await user.pay(timeout=5)
    assert paid.charge_id is not None
    with pytest.raises(TelegramBadRequest, match="CHARGE_NOT_FOUND"):
        await bot.refund_star_payment(user.id, "stxUnknown")
    with pytest.raises(TelegramBadRequest, match="CHARGE_NOT_FOUND"):
        await bot.refund_star_payment(4242, paid.charge_id)
    assert await bot.refund_star_payment(user.id, paid.charge_id) is True
    with pytest.raises(TelegramBadRequest, match="CHARGE_ALREADY_REFUNDED"):
        await bot.refund_star_payment(user.id, paid.charge_id)
    payment, refund = (await bot.get_star_transactions()).transactions
    assert payment.source is not None
    assert refund.receiver is not None
    assert refund.id == paid.charge_id
    assert refund.receiver.type == "user"
    assert user.transcript[-1].kind == "refunded_payment"
    only_one = await bot.get_star_transactions(offset=1, limit=1)
    assert [t.id for t in only_one.transactions] == [paid.charge_id]


async def subscribe(bot: Bot, user: SimUser) -> PaymentResult:
    link = await bot.create_invoice_link(
        "Pro",
        "Monthly plan",
        "sub-pro",
        "XTR",
        [LabeledPrice(label="Pro", amount=250)],
        subscription_period=2592000,
    )
    result = await user.pay_link(link, timeout=5)
    assert result.ok
    assert result.charge_id is not None
    return result


async def test_subscription_lifecycle(
    bot: Bot, emu: TelegramEmulator, token: str, answering: None
) -> None:
    user = emu.user(1001)
    first = await subscribe(bot, user)
    assert first.message is not None
    payment = first.message.raw["successful_payment"]
    assert payment["is_recurring"] is True
    assert payment["is_first_recurring"] is True
    expires = payment["subscription_expiration_date"]
    assert expires - first.message.raw["date"] == 2592000
    renewal = await user.renew_subscription(first.charge_id or "")
    assert renewal.ok
    assert renewal.charge_id not in (None, first.charge_id)
    assert renewal.message is not None
    renewed = renewal.message.raw["successful_payment"]
    assert renewed["is_recurring"] is True
    assert "is_first_recurring" not in renewed
    assert renewed["subscription_expiration_date"] == expires + 2592000
    transactions = (await bot.get_star_transactions()).transactions
    assert [t.amount for t in transactions] == [250, 250]

    assert await bot.edit_user_star_subscription(user.id, first.charge_id or "", is_canceled=True)
    assert emu.subscription_canceled(first.charge_id or "", token)
    canceled = await user.renew_subscription(first.charge_id or "")
    assert (canceled.ok, canceled.reason) == (False, "canceled")
    assert await bot.edit_user_star_subscription(
        user.id, renewal.charge_id or "", is_canceled=False
    )
    assert not emu.subscription_canceled(first.charge_id or "", token)
    with pytest.raises(TelegramBadRequest, match="CHARGE_NOT_FOUND"):
        await bot.edit_user_star_subscription(user.id, "stxNope", is_canceled=True)


async def test_subscription_updates(bot: Bot, emu: TelegramEmulator) -> None:
    user = emu.user(1001)
    task = asyncio.create_task(answer_checkouts(bot))
    try:
        first = await subscribe(bot, user)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    await user.change_subscription(first.charge_id or "", "canceled")
    failed = await user.renew_subscription(first.charge_id or "", fail=False)
    assert failed.reason == "canceled"
    await user.change_subscription(first.charge_id or "", "active")
    failure = await user.renew_subscription(first.charge_id or "", fail=True)
    assert (failure.ok, failure.reason) == (False, "failed")
    updates = await bot.get_updates(allowed_updates=["subscription", "message"], timeout=0)
    states = [u.subscription.state for u in updates if u.subscription is not None]
    assert states == ["canceled", "active", "failed"]
    assert all(u.subscription.invoice_payload == "sub-pro" for u in updates if u.subscription)


async def test_a_withheld_payment_update_is_still_in_the_transactions(
    bot: Bot, emu: TelegramEmulator
) -> None:
    """``deliver=False`` charges the user but loses the ``successful_payment`` update, as
    when a bot crashed after acknowledging it; Telegram's record lists it all the same,
    oldest first, paged with offset/limit."""
    user = emu.user(1001)
    seen: list[str] = []

    async def answer_and_record() -> None:
        offset = None
        while True:
            for update in await bot.get_updates(offset=offset, timeout=1):
                offset = update.update_id + 1
                seen.append(update.event_type)
                if update.pre_checkout_query is not None:
                    await bot.answer_pre_checkout_query(update.pre_checkout_query.id, ok=True)

    task = asyncio.create_task(answer_and_record())
    try:
        charges = []
        for n, deliver in enumerate((True, False, True)):
            await bot.send_invoice(user.id, "Credits", "100 credits", f"o-{n}", "XTR", STARS)
            paid = await user.pay(timeout=5, deliver=deliver)
            assert paid.ok
            charges.append(paid.charge_id)
        await asyncio.sleep(1.2)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert seen.count("pre_checkout_query") == 3
    assert seen.count("message") == 2  # the second payment's update was lost
    listed = (await bot.get_star_transactions()).transactions
    assert [t.id for t in listed] == charges
    assert [t.source.invoice_payload for t in listed] == ["o-0", "o-1", "o-2"]  # type: ignore[union-attr]
    assert [t.id for t in (await bot.get_star_transactions(offset=1, limit=1)).transactions] == [
        charges[1]
    ]
    assert (await bot.get_star_transactions(offset=3)).transactions == []
