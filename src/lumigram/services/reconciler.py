"""Finishing or undoing money work that a crash (or a lost message) left in flight.

Every money step commits together with the state it pays for, so after a crash
only these can be left over, and this puts each right:

* a job that ended with its hold still open: captured (delivered) or released;
* a paid generation whose worker message was lost: it is queued already (the
  payment and the queueing are one transaction), so the job sweeper runs it;
* a refund that Telegram has not confirmed: sent again (``RefundService``);
* subscriptions past their end, and reminders not yet sent (``SubscriptionService``);
* invoices nobody paid for a day: their jobs are cancelled, so a late payment is refused.

It runs at start-up and then on every sweep.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from lumigram.domain.jobs import JobStatus
from lumigram.services.clock import Clock, utc_now
from lumigram.services.ledger import Ledger
from lumigram.services.ports import Billing, JobGateway, TransactionManager

log = logging.getLogger(__name__)
UNPAID_INVOICE_LIFETIME = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class Reconciled:
    captured: int = 0
    released: int = 0
    stale_invoices: int = 0


class MoneyReconciler:
    def __init__(
        self,
        ledger: Ledger,
        jobs: JobGateway,
        billing: Billing,
        tx: TransactionManager,
        clock: Clock = utc_now,
    ) -> None:
        self._ledger = ledger
        self._jobs = jobs
        self._billing = billing
        self._tx = tx
        self._clock = clock

    async def run(self, limit: int = 200) -> Reconciled:
        captured = released = 0
        for hold, status, delivered in await self._ledger.open_holds_of_finished_jobs(limit):
            job = await self._jobs.get(hold.job_id)
            if job is None:
                continue
            if status == JobStatus.SUCCEEDED.value:
                await self._billing.capture(job, delivered)
                captured += 1
            else:
                await self._billing.release(job)
                released += 1
            await self._tx.commit()
        stale = await self._jobs.cancel_awaiting_payment(
            0, now=self._clock(), before=self._clock() - UNPAID_INVOICE_LIFETIME
        )
        await self._tx.commit()
        if captured or released:
            log.warning(
                "reconciler: settled %s captured and %s released hold(s) left open",
                captured,
                released,
            )
        return Reconciled(captured, released, stale)
