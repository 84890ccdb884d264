"""Paying for jobs with the ledger: hold at queue time, capture on delivery, release on failure.

Each call runs inside the job's own transaction (the caller commits), so a job's
state and its money always change together.
"""

from __future__ import annotations

from lumigram.domain.jobs import Job
from lumigram.domain.money import Account, InsufficientFundsError, choose_funding
from lumigram.services.clock import Clock, utc_now
from lumigram.services.ledger import Ledger
from lumigram.services.ports import PaymentGateway, Price
from lumigram.services.refunds import schedule_refund


class LedgerBilling:
    """Implements ``ports.Billing``."""

    def __init__(self, ledger: Ledger, payments: PaymentGateway, clock: Clock = utc_now) -> None:
        self._ledger = ledger
        self._payments = payments
        self._clock = clock

    async def reserve(self, job: Job, price: Price) -> bool:
        assert job.id is not None
        balances = await self._ledger.balances(job.user_id)
        funding = choose_funding(
            outputs=price.outputs,
            credit_price=price.credits,
            trial=balances[Account.TRIAL.value] if price.use_trial else 0,
            allowance=balances[Account.ALLOWANCE.value] if price.use_allowance else 0,
            credit_balance=balances[Account.CREDITS.value],
            star_price=price.stars,
            stars=balances[Account.STARS.value],
        )
        if funding is None:
            return False
        try:
            await self._ledger.hold(job.id, job.user_id, funding, price.outputs)
        except InsufficientFundsError:  # spent by a concurrent request a moment ago
            return False
        return True

    async def capture(self, job: Job, delivered_outputs: int) -> None:
        await self._ledger.capture(job.id or 0, delivered_outputs)

    async def release(self, job: Job) -> None:
        hold = await self._ledger.release(job.id or 0)
        if hold is None or hold.account != Account.STARS.value:
            return
        # Bought by invoice and nothing delivered: the Stars go back through Telegram.
        payment = await self._payments.for_job(job.id or 0)
        if payment is not None:
            await schedule_refund(self._ledger, payment, self._clock())
