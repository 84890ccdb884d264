"""Telegram Stars payments: invoices, pre-checkout answers, refunds, transactions."""

from __future__ import annotations

import secrets
from typing import Any

from . import limits
from .calls import (
    Call,
    Handler,
    check_flood,
    markup_content,
    reply_content,
    send_flags,
    target_chat,
)
from .errors import QUERY_TOO_OLD, bad_request
from .state import BotState, ChargeRecord, InvoiceRecord, copy_json, now

JSON = dict[str, Any]


def _invoice(call: Call, *, for_link: bool) -> InvoiceRecord:
    p = call.params
    if p.get("provider_token") or p["currency"] != limits.STARS_CURRENCY:
        # Only payments in Telegram Stars are emulated: no payment providers exist here.
        raise bad_request("PAYMENT_PROVIDER_INVALID")
    if not 1 <= len(p["title"]) <= limits.INVOICE_TITLE_MAX:
        raise bad_request("INVOICE_TITLE_INVALID")
    if not 1 <= len(p["description"]) <= limits.INVOICE_DESCRIPTION_MAX:
        raise bad_request("INVOICE_DESCRIPTION_INVALID")
    if not 1 <= len(p["payload"].encode("utf-8")) <= limits.INVOICE_PAYLOAD_MAX_BYTES:
        raise bad_request("INVOICE_PAYLOAD_INVALID")
    prices: list[JSON] = p["prices"]
    if len(prices) != 1:
        raise bad_request("STARS_INVOICE_INVALID")
    if p.get("max_tip_amount") or p.get("suggested_tip_amounts"):
        raise bad_request("STARS_INVOICE_INVALID")
    amount = prices[0]["amount"]
    if amount <= 0:
        raise bad_request("CURRENCY_TOTAL_AMOUNT_INVALID")
    period = None
    if for_link:
        period = p.get("subscription_period")
        if period is not None:
            if period != limits.SUBSCRIPTION_PERIOD:
                raise bad_request("SUBSCRIPTION_PERIOD_INVALID")
            if amount > limits.SUBSCRIPTION_MAX_PRICE:
                raise bad_request("STARS_INVOICE_INVALID")
    elif call.raw.get("subscription_period") not in (None, ""):
        # Not a sendInvoice parameter: Telegram would silently ignore it and the bot would
        # believe it sold a subscription. Subscriptions exist only as invoice links.
        raise bad_request("subscription_period is supported only by createInvoiceLink")
    return InvoiceRecord(
        id=call.state.new_id("inv"),
        title=p["title"],
        description=p["description"],
        payload=p["payload"],
        currency=p["currency"],
        amount=amount,
        label=prices[0]["label"],
        start_parameter=p.get("start_parameter", ""),
        subscription_period=period,
        photo_url=p.get("photo_url"),
    )


async def send_invoice(call: Call) -> Any:
    chat = target_chat(call)
    invoice = _invoice(call, for_link=False)
    markup = markup_content(call, chat, allow_pay=True)
    rows = markup.get("reply_markup", {}).get("inline_keyboard", [])
    if rows and not rows[0][0].get("pay"):
        raise bad_request("REPLY_MARKUP_BUY_EMPTY")  # "the first button must be a Pay button"
    reply = reply_content(call, chat)
    check_flood(call, chat)
    call.bot.invoices[invoice.id] = invoice
    content = reply | {
        "invoice": {
            "title": invoice.title,
            "description": invoice.description,
            "start_parameter": invoice.start_parameter,
            "currency": invoice.currency,
            "total_amount": invoice.amount,
        }
    }
    stored = call.state.bot_message(
        call.bot, chat, content | markup | send_flags(call), invoice_id=invoice.id
    )
    return copy_json(stored.raw)


async def create_invoice_link(call: Call) -> Any:
    invoice = _invoice(call, for_link=True)
    invoice.link = f"https://t.me/${secrets.token_urlsafe(18)}"
    call.bot.invoices[invoice.id] = invoice
    call.bot.invoice_links[invoice.link] = invoice.id
    return invoice.link


async def answer_pre_checkout_query(call: Call) -> Any:
    record = call.bot.pre_checkouts.get(call.params["pre_checkout_query_id"])
    if record is None or record.expired or record.answer.done():
        raise bad_request(QUERY_TOO_OLD)
    ok = bool(call.params["ok"])
    error_message = call.get("error_message")
    if not ok and not error_message:
        raise bad_request("ERROR_MESSAGE_EMPTY")
    record.answer.set_result({"ok": ok, "error_message": None if ok else error_message})
    return True


def find_charge(bot: BotState, user_id: int, charge_id: str) -> ChargeRecord:
    charge = bot.charges.get(charge_id)
    if charge is None or charge.user_id != user_id:
        raise bad_request("CHARGE_NOT_FOUND")
    return charge


async def refund_star_payment(call: Call) -> Any:
    bot = call.bot
    charge = find_charge(bot, call.params["user_id"], call.params["telegram_payment_charge_id"])
    if charge.refunded:
        raise bad_request("CHARGE_ALREADY_REFUNDED")
    charge.refunded = True
    user = call.state.users[charge.user_id]
    bot.transactions.append(
        {
            "id": charge.charge_id,
            "amount": charge.amount,
            "date": now(),
            "receiver": {
                "type": "user",
                "transaction_type": "invoice_payment",
                "user": user.to_user(),
                "invoice_payload": charge.payload,
            },
        }
    )
    # The user's chat shows a service message about the refund, which the bot receives.
    chat = call.state.private_chat(bot, user)
    stored = call.state.add_message(
        bot,
        chat,
        sender=user.to_user(),
        from_bot=False,
        content={
            "refunded_payment": {
                "currency": limits.STARS_CURRENCY,
                "total_amount": charge.amount,
                "invoice_payload": charge.payload,
                "telegram_payment_charge_id": charge.charge_id,
            }
        },
    )
    bot.updates.push("message", copy_json(stored.raw))
    return True


async def get_star_transactions(call: Call) -> Any:
    offset = max(call.get("offset", 0), 0)
    limit = min(max(call.get("limit", limits.TRANSACTIONS_LIMIT_MAX), 1), 100)
    return {"transactions": [copy_json(t) for t in call.bot.transactions[offset : offset + limit]]}


async def edit_user_star_subscription(call: Call) -> Any:
    bot = call.bot
    charge = find_charge(bot, call.params["user_id"], call.params["telegram_payment_charge_id"])
    first = bot.charges.get(charge.first_charge_id or charge.charge_id, charge)
    if first.subscription_period is None:
        raise bad_request("SUBSCRIPTION_NOT_FOUND")
    first.canceled = bool(call.params["is_canceled"])
    return True


HANDLERS: dict[str, Handler] = {
    "sendInvoice": send_invoice,
    "createInvoiceLink": create_invoice_link,
    "answerPreCheckoutQuery": answer_pre_checkout_query,
    "refundStarPayment": refund_star_payment,
    "getStarTransactions": get_star_transactions,
    "editUserStarSubscription": edit_user_star_subscription,
}
