"""Receiving a successful Stars payment: one use case for every way a payment arrives.

The ``successful_payment`` update and the reconciliation with Telegram's own record
(``services.stars_sync``) both call ``PaymentIntake.receive``: the payment is recorded
once (keyed by its charge id, in one transaction with what it buys) and its follow-ups
are started here, so no entry point sequences steps: a paid generation is handed to a
worker, and a payment for a generation that is gone has its refund sent at once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from lumigram.services.generation import GenerationService
from lumigram.services.payments import PaymentService, Recorded


@dataclass(frozen=True, slots=True)
class IncomingPayment:
    user_id: int
    charge_id: str
    payload: str
    currency: str
    total_amount: int
    subscription_expires_at: datetime | None = None
    is_recurring: bool = False
    is_first_recurring: bool = False


class PaymentIntake:
    def __init__(
        self,
        payments: PaymentService,
        generation: GenerationService,
        send_refunds: Callable[[], Awaitable[None]] | None,
    ) -> None:
        self._payments = payments
        self._generation = generation
        self._send_refunds = send_refunds

    async def receive(self, incoming: IncomingPayment) -> Recorded:
        """Record the payment (once) and start what it bought."""
        recorded = await self._payments.record(
            user_id=incoming.user_id,
            charge_id=incoming.charge_id,
            payload=incoming.payload,
            currency=incoming.currency,
            total_amount=incoming.total_amount,
            subscription_expires_at=incoming.subscription_expires_at,
            is_recurring=incoming.is_recurring,
            is_first_recurring=incoming.is_first_recurring,
        )
        if recorded.duplicate:
            return recorded
        if recorded.job is not None:
            await self._generation.start(recorded.job)
        elif recorded.refunded and self._send_refunds is not None:
            await self._send_refunds()
        return recorded
