"""Telegram's own record of the bot's Star transactions (``getStarTransactions``).

The reconciliation (services.stars_sync) compares it with ours: an incoming
invoice payment we never recorded (its update was lost, or the process died
before it committed) is recorded now, exactly as if the update had arrived; a
refund Telegram shows that we have not recorded settles our refund state.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

INVOICE_PAYMENT = "user/invoice_payment"


class Direction(StrEnum):
    IN = "in"  # the bot received Stars (a payment)
    OUT = "out"  # the bot sent Stars (a refund, a withdrawal)


@dataclass(frozen=True, slots=True)
class StarTransaction:
    """One transaction as Telegram lists it. ``partner`` is the partner's type, and for a
    user its ``transaction_type`` after a slash (``user/invoice_payment``)."""

    id: str  # an incoming payment's telegram_payment_charge_id; a refund has its payment's
    amount: int
    date: datetime
    direction: Direction
    partner: str
    user_id: int | None = None
    first_name: str | None = None
    username: str | None = None
    language_code: str | None = None
    invoice_payload: str | None = None
    subscription_period: int | None = None  # seconds, for subscription payments

    @property
    def is_invoice_payment(self) -> bool:
        return (
            self.direction is Direction.IN
            and self.partner == INVOICE_PAYMENT
            and self.user_id is not None
            and self.invoice_payload is not None
        )

    @property
    def is_invoice_refund(self) -> bool:
        return (
            self.direction is Direction.OUT
            and self.partner == INVOICE_PAYMENT
            and self.user_id is not None
        )

    @property
    def subscription_expires_at(self) -> datetime | None:
        if not self.subscription_period:
            return None
        return self.date + timedelta(seconds=self.subscription_period)
