"""Giving Stars back: automatic refunds of failed paid generations, and users' requests.

An automatic refund is an outbox: in the transaction that fails the job, the
Stars leave the user's balance (a REFUND ledger row) and the payment is marked
``pending``; ``RefundService.process_due`` then calls Telegram and retries with
back-off until it agrees. If Telegram keeps refusing, the Stars go back to the
user's balance (they pay for the next generation) and the operator is alerted:
nothing is lost either way.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from lumigram.domain.jobs import Job
from lumigram.domain.money import (
    MAX_REFUND_ATTEMPTS,
    Account,
    EntryKind,
    Hold,
    Payment,
    PaymentStatus,
    RefundRequest,
    RefundState,
    refund_backoff,
)
from lumigram.services.clock import Clock, utc_now
from lumigram.services.ledger import Ledger, Reference
from lumigram.services.ports import (
    JobGateway,
    MoneyNotifier,
    PaymentGateway,
    StarsGateway,
    StarsRefusedError,
    TransactionManager,
    UserGateway,
)
from lumigram.services.unit import use_case

log = logging.getLogger(__name__)
MAX_REASON_LENGTH = 1000


async def schedule_refund(ledger: Ledger, payment: Payment, now: datetime) -> bool:
    """Take the payment's Stars out of the user's balance and queue the Telegram refund.

    Idempotent (keyed by the charge id); False if it was scheduled before.
    """
    if payment.refund_state is not None or payment.status != PaymentStatus.PAID.value:
        return False
    charge = payment.telegram_payment_charge_id
    moved = await ledger.post(
        payment.user_id,
        Account.STARS.value,
        -payment.amount_xtr,
        EntryKind.REFUND,
        f"refund:{charge}",
        Reference(payment_id=payment.id, note="automatic refund"),
    )
    if moved:
        payment.refund_state = RefundState.PENDING.value
        payment.refund_next_at = now
    return moved


async def reverse_referral_bonus(
    ledger: Ledger, users: UserGateway, payment: Payment, bonus: int
) -> None:
    """Take back what the referrer earned from a payment that was refunded.

    What the referrer already spent cannot be taken: the shortfall is logged for the operator.
    """
    user = await users.get(payment.user_id)
    if user is None or user.referred_by_id is None or bonus <= 0:
        return
    balances = await ledger.balances(user.referred_by_id)
    taken = min(bonus, balances[Account.CREDITS.value])
    if taken:
        await ledger.post(
            user.referred_by_id,
            Account.CREDITS.value,
            -taken,
            EntryKind.REFERRAL_REVERSAL,
            f"referral-reversal:{payment.telegram_payment_charge_id}",
            Reference(payment_id=payment.id),
        )
    if taken < bonus:
        log.warning(
            "referral bonus of payment %s: %s of %s credits already spent by user %s",
            payment.id,
            bonus - taken,
            bonus,
            user.referred_by_id,
        )


# What a user may ask to have refunded: generations paid with credits or Stars. Free
# images cost nothing, and allowance images are part of a subscription (its payment,
# not a single image of it, is what could be refunded: /paysupport).
PAID_ACCOUNTS = (Account.CREDITS, Account.STARS)


@dataclass(frozen=True, slots=True)
class Refundable:
    """A recent generation the user paid for with credits or Stars, which they may ask
    to refund."""

    job: Job
    hold: Hold
    payment: Payment | None  # the invoice that bought it; None when paid from a balance

    @property
    def account(self) -> Account:
        """What it was paid with: ``Account.CREDITS`` or ``Account.STARS``."""
        return Account(self.hold.account)

    @property
    def amount(self) -> int:
        """What it cost, in credits or Stars (a partial success costs its share)."""
        return self.hold.captured


class RefundService:
    def __init__(
        self,
        payments: PaymentGateway,
        users: UserGateway,
        jobs: JobGateway,
        ledger: Ledger,
        tx: TransactionManager,
        *,
        clock: Clock = utc_now,
    ) -> None:
        self._payments = payments
        self._users = users
        self._jobs = jobs
        self._ledger = ledger
        self._tx = tx
        self._clock = clock

    async def process_due(
        self, stars: StarsGateway, notifier: MoneyNotifier | None, limit: int = 50
    ) -> int:
        """Send every refund that is due; returns how many were completed."""
        due = await self._payments.refunds_due(self._clock(), limit)
        ids = [payment.id for payment in due if payment.id is not None]
        await self._tx.commit()
        done = 0
        for payment_id in ids:
            if await self._process(payment_id, stars, notifier):
                done += 1
        return done

    async def _process(
        self, payment_id: int, stars: StarsGateway, notifier: MoneyNotifier | None
    ) -> bool:
        payment = await self._payments.get(payment_id)
        await self._tx.commit()
        if payment is None or payment.refund_state != RefundState.PENDING.value:
            return False
        try:
            await stars.refund(payment.user_id, payment.telegram_payment_charge_id)
        except StarsRefusedError as error:
            if not error.already_done:
                await self._refused(payment_id, error.reason)
                return False
        except Exception as error:
            # No answer: Telegram may have refunded already. Never give up (giving the
            # Stars back as well could pay twice); retry, and the next answer will say.
            await self._refused(payment_id, f"{type(error).__name__}: {error}"[:200], counts=False)
            return False
        completed = await self.complete(payment_id)
        if completed and notifier is not None:
            ref = payment.product_ref or ""
            job_id = int(ref) if ref.isdigit() else None
            await notifier.refunded(payment.user_id, payment.amount_xtr, job_id)
        return completed

    async def complete(self, payment_id: int) -> bool:
        """Telegram refunded the payment: record it (once) and take back the referral bonus."""
        payment = await self._payments.get(payment_id)
        if payment is None or payment.refund_state != RefundState.PENDING.value:
            await self._tx.commit()
            return False
        payment.refund_state = RefundState.DONE.value
        payment.status = PaymentStatus.REFUNDED.value
        payment.refunded_at = self._clock()
        payment.refund_error = None
        bonus = await self._ledger.amount_of(f"referral:{payment.telegram_payment_charge_id}")
        await reverse_referral_bonus(self._ledger, self._users, payment, bonus)
        await self._tx.commit()
        return True

    async def record_outside_refund(self, payment_id: int) -> bool:
        """Telegram shows a refund of a payment that we never refunded (made outside
        Lumigram): record it and take back the referral bonus. What the payment bought
        is not taken back; the reconciliation reports it to the operator."""
        payment = await self._payments.get(payment_id)
        if (
            payment is None
            or payment.refund_state is not None
            or payment.status != PaymentStatus.PAID.value
        ):
            await self._tx.commit()
            return False
        payment.refund_state = RefundState.DONE.value
        payment.status = PaymentStatus.REFUNDED.value
        payment.refunded_at = self._clock()
        payment.refund_error = "refunded outside Lumigram"
        bonus = await self._ledger.amount_of(f"referral:{payment.telegram_payment_charge_id}")
        await reverse_referral_bonus(self._ledger, self._users, payment, bonus)
        await self._tx.commit()
        return True

    async def _refused(self, payment_id: int, reason: str, *, counts: bool = True) -> None:
        """Schedule a retry; only Telegram's explicit refusals (``counts``) lead to giving up."""
        payment = await self._payments.get(payment_id)
        if payment is None or payment.refund_state != RefundState.PENDING.value:
            await self._tx.commit()
            return
        if counts:
            payment.refund_attempts += 1
        payment.refund_error = reason[:256]
        charge = payment.telegram_payment_charge_id
        if counts and payment.refund_attempts >= MAX_REFUND_ATTEMPTS:
            # Give the Stars back to the user's balance rather than lose them.
            await self._ledger.post(
                payment.user_id,
                Account.STARS.value,
                payment.amount_xtr,
                EntryKind.REFUND,
                f"refund-undone:{charge}",
                Reference(payment_id=payment.id, note="Telegram refused the refund"),
            )
            payment.refund_state = RefundState.FAILED.value
            log.error(
                "OPERATOR ALERT: refund of payment %s (user %s, %s XTR) refused %s times (%s); "
                "the Stars are back on the user's balance",
                payment.id,
                payment.user_id,
                payment.amount_xtr,
                payment.refund_attempts,
                reason,
            )
        else:
            delay = refund_backoff(max(payment.refund_attempts, 1))
            payment.refund_next_at = self._clock() + timedelta(seconds=delay)
            log.error(
                "OPERATOR ALERT: refund of payment %s (user %s) refused (%s); retry in %.0fs",
                payment.id,
                payment.user_id,
                reason,
                delay,
            )
        await self._tx.commit()

    # --- requests from users ------------------------------------------------------------
    @use_case
    async def refundable(self, user_id: int, limit: int = 5) -> list[Refundable]:
        """The user's recent generations paid with credits or Stars, newest first.

        Free-trial and subscription-allowance images are not offered, nor a generation
        whose payment was refunded already.
        """
        holds = await self._ledger.captured_holds(user_id, limit, PAID_ACCOUNTS)
        found: list[Refundable] = []
        for hold in holds:
            job = await self._jobs.get(hold.job_id)
            if job is None:
                continue
            payment = await self._payments.for_job(hold.job_id)
            if payment is not None and payment.status == PaymentStatus.REFUNDED.value:
                continue
            found.append(Refundable(job, hold, payment))
        return found

    async def request(self, user_id: int, job_id: int, reason: str) -> RefundRequest | None:
        """Store the request for the operator; None if that job is not the user's paid one.

        A second request for the same job returns the open one.
        """
        reason = " ".join(reason.split())[:MAX_REASON_LENGTH]
        paid = {item.job.id: item for item in await self.refundable(user_id, limit=50)}
        item = paid.get(job_id)
        if item is None or not reason:
            return None
        existing = await self._payments.open_refund_request(user_id, job_id)
        if existing is not None:
            await self._tx.commit()
            return existing
        request = RefundRequest(
            user_id=user_id,
            job_id=job_id,
            payment_id=item.payment.id if item.payment else None,
            reason=reason,
            created_at=self._clock(),
        )
        await self._payments.add_refund_request(request)
        await self._tx.commit()
        log.warning(
            "OPERATOR: refund request #%s from user %s for job %s", request.id, user_id, job_id
        )
        return request
