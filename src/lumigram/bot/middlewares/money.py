"""Which updates carry money: no middleware may drop, throttle or delay them."""

from __future__ import annotations

from aiogram.types import (
    BotSubscriptionUpdated,
    Message,
    PreCheckoutQuery,
    TelegramObject,
    Update,
)


def moved_money(event: TelegramObject) -> bool:
    """A successful or refunded payment (both arrive as a Message), or a change of a
    Stars subscription: money that already moved, recorded even for a banned user."""
    inner = event.event if isinstance(event, Update) else event
    if isinstance(inner, BotSubscriptionUpdated):
        return True
    return isinstance(inner, Message) and (
        inner.successful_payment is not None or inner.refunded_payment is not None
    )


def is_payment(event: TelegramObject) -> bool:
    """``moved_money`` or a pre-checkout query (Telegram waits 10 s for its answer)."""
    inner = event.event if isinstance(event, Update) else event
    return isinstance(inner, PreCheckoutQuery) or moved_money(inner)
