"""Reconciliation with Telegram's own record of the bot's Star transactions.

An update can be lost after Telegram considers it delivered: long polling
acknowledges an update with the next ``getUpdates`` offset, possibly before the
process that received it committed anything, and a webhook can be answered and
then the process dies. Telegram keeps every Star transaction of the bot, so at
start-up and every ``STARS_RECONCILE_INTERVAL`` seconds this reads the
transactions newer than the last one seen (``getStarTransactions`` pages through
them in chronological order; the position is kept in ``app_state``) and:

* records every incoming invoice payment that is missing here exactly as if its
  ``successful_payment`` had arrived (``PaymentIntake``: the job starts, credits are
  added, the subscription is extended, the referral bonus is paid), once, keyed by
  the charge id like every other path, and tells the user;
* settles refunds Telegram shows that we have not recorded (a ``refundStarPayment``
  whose answer was lost completes; a refund made outside Lumigram is recorded);
* keeps whatever cannot be matched in ``star_transaction_issues`` and reports it to
  the operator (``OPERATOR ALERT`` in the log).

Everything is idempotent: a transaction read twice changes nothing the second time,
so the cursor is re-read with a small overlap and may lag behind without harm.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from lumigram.domain.money import RefundState
from lumigram.domain.stars import Direction, StarTransaction
from lumigram.services.clock import Clock, utc_now
from lumigram.services.payment_intake import IncomingPayment, PaymentIntake
from lumigram.services.payments import STARS, Recorded
from lumigram.services.ports import (
    MoneyNotifier,
    PaymentGateway,
    StarsGateway,
    StarsSyncGateway,
    TransactionManager,
)
from lumigram.services.refunds import RefundService
from lumigram.services.users import Contact, UserService

log = logging.getLogger(__name__)
CURSOR_KEY = "stars.transactions.offset"
PAGE_SIZE = 100  # getStarTransactions' maximum
OVERLAP = 10  # transactions re-read before the cursor (idempotent, so cheap insurance)


@dataclass
class SyncReport:
    read: int = 0
    recovered: list[Recorded] = field(default_factory=list)
    refunds_settled: int = 0
    issues: int = 0


class StarsReconciliation:
    def __init__(
        self,
        sync: StarsSyncGateway,
        payments: PaymentGateway,
        intake: PaymentIntake,
        refunds: RefundService,
        users: UserService,
        tx: TransactionManager,
        *,
        clock: Clock = utc_now,
    ) -> None:
        self._sync = sync
        self._payments = payments
        self._intake = intake
        self._refunds = refunds
        self._users = users
        self._tx = tx
        self._clock = clock

    async def run(
        self,
        stars: StarsGateway,
        notifier: MoneyNotifier | None,
        *,
        settle_after: timedelta = timedelta(0),
    ) -> SyncReport:
        """Read Telegram's transactions from the cursor on and put right what is missing.

        ``settle_after``: transactions younger than this are left for the next run (their
        update is most likely on its way), and the cursor stops before them.
        """
        report = SyncReport()
        cursor = int(await self._sync.get_state(CURSOR_KEY) or 0)
        await self._tx.commit()
        offset = max(0, cursor - OVERLAP)
        while True:
            page = await stars.transactions(offset, PAGE_SIZE)
            newest_allowed = self._clock() - settle_after
            handled = 0
            for transaction in page:
                if transaction.date > newest_allowed:
                    break
                await self._one(transaction, notifier, report)
                handled += 1
            report.read += handled
            offset += handled
            if offset > cursor:
                await self._sync.set_state(CURSOR_KEY, str(offset), self._clock())
                await self._tx.commit()
                cursor = offset
            if handled < len(page) or len(page) < PAGE_SIZE:
                break
        if report.recovered or report.refunds_settled or report.issues:
            log.warning(
                "Stars reconciliation: %s payment(s) recovered, %s refund(s) settled, "
                "%s transaction(s) kept for the operator",
                len(report.recovered),
                report.refunds_settled,
                report.issues,
            )
        return report

    async def _one(
        self, transaction: StarTransaction, notifier: MoneyNotifier | None, report: SyncReport
    ) -> None:
        if transaction.is_invoice_payment:
            await self._payment(transaction, notifier, report)
        elif transaction.is_invoice_refund:
            await self._refund(transaction, notifier, report)
        elif transaction.direction is Direction.IN:
            await self._issue(transaction, "incoming, but no invoice payment", report)
        # Outgoing transactions to others (withdrawals, ads) are the operator's own doing.

    async def _payment(
        self, transaction: StarTransaction, notifier: MoneyNotifier | None, report: SyncReport
    ) -> None:
        assert transaction.user_id is not None
        assert transaction.invoice_payload is not None
        known = await self._payments.get_by_charge(transaction.id)
        if known is not None:
            await self._tx.commit()
            return
        # The payer may be unknown here (a database restored from an older backup).
        await self._users.register_contact(
            Contact(
                user_id=transaction.user_id,
                first_name=transaction.first_name or "",
                username=transaction.username,
                language_code=transaction.language_code,
            )
        )
        first = True
        if transaction.subscription_period:
            earlier = await self._payments.with_payload(
                transaction.user_id, transaction.invoice_payload
            )
            first = earlier is None
            await self._tx.commit()
        recorded = await self._intake.receive(
            IncomingPayment(
                user_id=transaction.user_id,
                charge_id=transaction.id,
                payload=transaction.invoice_payload,
                currency=STARS,
                total_amount=transaction.amount,
                subscription_expires_at=transaction.subscription_expires_at,
                is_recurring=bool(transaction.subscription_period),
                is_first_recurring=bool(transaction.subscription_period) and first,
            )
        )
        if recorded.duplicate:
            return  # its update arrived meanwhile and recorded it
        log.warning(
            "Stars reconciliation: payment %s of user %s (%s XTR) was missing; recorded now",
            transaction.id,
            transaction.user_id,
            transaction.amount,
        )
        report.recovered.append(recorded)
        if notifier is not None:
            await notifier.payment_received(recorded)

    async def refund_seen(
        self, transaction: StarTransaction, notifier: MoneyNotifier | None
    ) -> SyncReport:
        """Telegram says a payment was refunded (a ``refunded_payment`` update, or a refund
        in its record): settle our refund state to match, once."""
        report = SyncReport(read=1)
        await self._refund(transaction, notifier, report)
        return report

    async def _refund(
        self, transaction: StarTransaction, notifier: MoneyNotifier | None, report: SyncReport
    ) -> None:
        payment = await self._payments.get_by_charge(transaction.id)
        await self._tx.commit()
        if payment is None or payment.id is None:
            await self._issue(transaction, "a refund of a payment not recorded here", report)
            return
        if payment.refund_state == RefundState.PENDING.value:
            # We asked Telegram to refund it and lost the answer: it is done.
            if await self._refunds.complete(payment.id):
                report.refunds_settled += 1
                if notifier is not None:
                    ref = payment.product_ref or ""
                    job_id = int(ref) if ref.isdigit() else None
                    await notifier.refunded(payment.user_id, payment.amount_xtr, job_id)
        elif payment.refund_state == RefundState.FAILED.value:
            await self._issue(
                transaction,
                "Telegram refunded a payment whose refund was given up: its Stars were "
                "put back on the user's balance as well",
                report,
            )
        elif await self._refunds.record_outside_refund(payment.id):
            report.refunds_settled += 1
            await self._issue(
                transaction,
                "refunded outside Lumigram: recorded, but what it bought was not taken back",
                report,
            )

    async def _issue(self, transaction: StarTransaction, problem: str, report: SyncReport) -> None:
        kept = await self._sync.add_issue(transaction, problem, self._clock())
        await self._tx.commit()
        if kept:
            report.issues += 1
            log.error(
                "OPERATOR ALERT: Star transaction %s (%s, %s %s XTR, user %s): %s",
                transaction.id,
                transaction.partner,
                transaction.direction.value,
                transaction.amount,
                transaction.user_id,
                problem,
            )
