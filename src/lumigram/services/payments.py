"""Telegram Stars payments: pre-checkout answers, and recording each payment exactly once.

``successful_payment`` can arrive twice (a replayed update, a retried webhook,
two workers): the payment row is unique per Telegram charge id and every ledger
row it causes carries a key derived from that id, all in one transaction, so
only the first delivery changes anything.

What a payment buys is named by its signed invoice payload (domain.invoices):
one generation (``s``: the job waiting for it), a credit package (``p``) or a
subscription tier (``u``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from lumigram.domain.invoices import InvoiceClaim, PayloadError, Product, decode_payload
from lumigram.domain.invoices import encode_payload as _encode
from lumigram.domain.jobs import Job, JobStatus
from lumigram.domain.money import (
    UNMATCHED,
    Account,
    EntryKind,
    Funding,
    Package,
    Payment,
    referral_bonus,
)
from lumigram.domain.subscriptions import SUBSCRIPTION_PERIOD, Tier
from lumigram.domain.users import User
from lumigram.services.clock import Clock, utc_now
from lumigram.services.ledger import Ledger, Reference
from lumigram.services.ports import (
    JobGateway,
    PaymentGateway,
    TransactionManager,
    UserGateway,
)
from lumigram.services.refunds import schedule_refund
from lumigram.services.subscriptions import SubscriptionService
from lumigram.services.unit import use_case

log = logging.getLogger(__name__)
STARS = "XTR"


@dataclass(frozen=True, slots=True)
class ReferralPolicy:
    percent: int = 10
    every_payment: bool = True  # False: only the referee's first payment earns a bonus


class Refusal(StrEnum):
    """Why a pre-checkout query is refused (the bot words it for the user)."""

    UNKNOWN = "unknown"  # not an invoice of ours, or someone else's
    STALE = "stale"  # the generation was cancelled or replaced, or the price changed
    PAID = "paid"  # already paid
    BANNED = "banned"
    SUBSCRIBED = "subscribed"  # a subscription is active already


@dataclass(frozen=True, slots=True)
class Recorded:
    payment: Payment
    duplicate: bool  # True: this charge was recorded before; nothing changed now
    job: Job | None = None  # a paid generation that is now queued
    refunded: bool = False  # it bought something no longer there: refund scheduled
    tier: Tier | None = None


@dataclass(frozen=True, slots=True)
class Invoice:
    payload: str
    stars: int


class PaymentService:
    def __init__(
        self,
        payments: PaymentGateway,
        users: UserGateway,
        jobs: JobGateway,
        ledger: Ledger,
        subscriptions: SubscriptionService,
        tx: TransactionManager,
        *,
        secret: bytes,
        packages: tuple[Package, ...],
        referral: ReferralPolicy,
        clock: Clock = utc_now,
    ) -> None:
        self._payments = payments
        self._users = users
        self._jobs = jobs
        self._ledger = ledger
        self._subscriptions = subscriptions
        self._tx = tx
        self._secret = secret
        self.packages = packages
        self._packages = {package.id: package for package in packages}
        self._referral = referral
        self._clock = clock

    # --- invoices ---------------------------------------------------------------------
    def _payload(self, product: Product, ref: str, user_id: int) -> str:
        claim = InvoiceClaim(product, ref, user_id, int(self._clock().timestamp()))
        return _encode(claim, self._secret)

    def job_invoice(self, job: Job, stars: int) -> Invoice:
        """The invoice for a generation waiting for payment (the price is signed in)."""
        return Invoice(self._payload(Product.SINGLE, f"{job.id}x{stars}", job.user_id), stars)

    def package_invoice(self, user_id: int, package_id: str) -> tuple[Package, Invoice] | None:
        package = self._packages.get(package_id)
        if package is None:
            return None
        return package, Invoice(self._payload(Product.PACKAGE, package.id, user_id), package.stars)

    def subscription_invoice(self, user_id: int, tier: Tier) -> Invoice:
        return Invoice(self._payload(Product.SUBSCRIPTION, tier.id, user_id), tier.stars)

    def credit_value(self, stars: int) -> int:
        """What ``stars`` buy at the base (smallest) package's rate: the base of a referral
        bonus for payments that are not credit packages."""
        if not self.packages:
            return 0
        base = self.packages[0]
        return stars * base.credits // base.stars

    # --- pre-checkout -----------------------------------------------------------------
    @use_case
    async def check(
        self, user: User | None, *, payload: str, currency: str, total_amount: int
    ) -> Refusal | None:
        """Whether to accept a pre-checkout query: None to accept, else why not. Reads only."""
        try:
            claim = decode_payload(payload, self._secret)
        except PayloadError:
            return Refusal.UNKNOWN
        if currency != STARS or user is None or claim.user_id != user.id:
            return Refusal.UNKNOWN
        if user.is_banned:
            return Refusal.BANNED
        refusal: Refusal | None
        if claim.product is Product.SINGLE:
            refusal = await self._check_job(claim, total_amount)
        elif claim.product is Product.PACKAGE:
            package = self._packages.get(claim.ref)
            refusal = None if package and package.stars == total_amount else Refusal.STALE
        else:
            tier = self._subscriptions.tier(claim.ref)
            if tier is None or tier.stars != total_amount:
                refusal = Refusal.STALE
            elif (await self._subscriptions.entitlement(user.id))[1]:
                refusal = Refusal.SUBSCRIBED
            else:
                refusal = None
        return refusal

    async def _check_job(self, claim: InvoiceClaim, total_amount: int) -> Refusal | None:
        job_id, stars = _job_ref(claim.ref)
        if job_id is None or stars != total_amount:
            return Refusal.UNKNOWN
        job = await self._jobs.get(job_id)
        if job is None or job.user_id != claim.user_id:
            return Refusal.UNKNOWN
        if job.status == JobStatus.AWAITING_PAYMENT.value:
            return None
        if await self._payments.for_job(job_id) is not None:
            return Refusal.PAID
        return Refusal.STALE

    # --- successful payments --------------------------------------------------------------
    async def record(
        self,
        *,
        user_id: int,
        charge_id: str,
        payload: str,
        currency: str,
        total_amount: int,
        subscription_expires_at: datetime | None = None,
        is_recurring: bool = False,
        is_first_recurring: bool = False,
    ) -> Recorded:
        """Record a successful payment once and deliver what it bought."""
        existing = await self._payments.get_by_charge(charge_id)
        if existing is not None:
            await self._tx.commit()
            return Recorded(existing, duplicate=True)
        claim = self._claim(user_id, payload, currency)
        payment = Payment(
            telegram_payment_charge_id=charge_id,
            user_id=user_id,
            invoice_payload=payload[:128],
            product=claim.product.value if claim else UNMATCHED,
            product_ref=_product_ref(claim) if claim else None,
            amount_xtr=total_amount,
            created_at=self._clock(),
            subscription_expires_at=subscription_expires_at,
            is_recurring=is_recurring,
            is_first_recurring=is_first_recurring,
        )
        if not await self._payments.add(payment):  # recorded concurrently a moment ago
            await self._tx.rollback()
            raced = await self._payments.get_by_charge(charge_id)
            await self._tx.commit()
            assert raced is not None
            return Recorded(raced, duplicate=True)
        if claim is None:
            recorded = await self._unmatched(payment, currency)
        elif claim.product is Product.PACKAGE:
            recorded = await self._package(payment, claim)
        elif claim.product is Product.SINGLE:
            recorded = await self._single(payment, claim)
        else:
            recorded = await self._subscription(payment, claim)
        await self._tx.commit()
        return recorded

    def _claim(self, user_id: int, payload: str, currency: str) -> InvoiceClaim | None:
        try:
            claim = decode_payload(payload, self._secret)
        except PayloadError:
            return None
        if currency != STARS or claim.user_id != user_id:
            return None
        return claim

    async def _unmatched(self, payment: Payment, currency: str) -> Recorded:
        # The money arrived, so it is kept on record; the operator decides (refund).
        payment.product, payment.product_ref = UNMATCHED, None
        log.error(
            "OPERATOR ALERT: payment %s of %s %s by user %s matches no product",
            payment.telegram_payment_charge_id,
            payment.amount_xtr,
            currency,
            payment.user_id,
        )
        return Recorded(payment, duplicate=False)

    async def _package(self, payment: Payment, claim: InvoiceClaim) -> Recorded:
        package = self._packages.get(claim.ref)
        if package is None or package.stars != payment.amount_xtr:
            return await self._unmatched(payment, STARS)
        payment.credits = package.credits
        await self._ledger.post(
            payment.user_id,
            Account.CREDITS.value,
            package.credits,
            EntryKind.TOP_UP,
            f"charge:{payment.telegram_payment_charge_id}",
            Reference(payment_id=payment.id),
        )
        await self._pay_referrer(payment)
        return Recorded(payment, duplicate=False)

    async def _single(self, payment: Payment, claim: InvoiceClaim) -> Recorded:
        job_id, stars = _job_ref(claim.ref)
        charge = payment.telegram_payment_charge_id
        reference = Reference(payment_id=payment.id, job_id=job_id)
        await self._ledger.post(
            payment.user_id,
            Account.STARS.value,
            payment.amount_xtr,
            EntryKind.SINGLE_PURCHASE,
            f"charge:{charge}",
            reference,
        )
        payment.credits = self.credit_value(payment.amount_xtr)
        job = None
        if job_id is not None and stars == payment.amount_xtr:
            job = await self._jobs.start_paid(job_id, now=self._clock())
        if job is None or job.user_id != payment.user_id:
            # Paid for a generation that is gone (cancelled, replaced): give the Stars back.
            await schedule_refund(self._ledger, payment, self._clock())
            return Recorded(payment, duplicate=False, refunded=True)
        outputs = int(job.settings.get("num_outputs", 1))
        await self._ledger.hold(
            job_id or 0, payment.user_id, Funding(Account.STARS, payment.amount_xtr), outputs
        )
        await self._pay_referrer(payment)
        return Recorded(payment, duplicate=False, job=job)

    async def _subscription(self, payment: Payment, claim: InvoiceClaim) -> Recorded:
        tier = self._subscriptions.tier(claim.ref)
        # A renewal is honoured at the price the user subscribed at, even if it changed since.
        renewal = payment.is_recurring and not payment.is_first_recurring
        if tier is None or not (renewal or tier.stars == payment.amount_xtr):
            return await self._unmatched(payment, STARS)
        expires_at = payment.subscription_expires_at or (self._clock() + SUBSCRIPTION_PERIOD)
        payment.credits = self.credit_value(payment.amount_xtr)
        await self._subscriptions.apply_payment(payment, tier, expires_at)
        await self._pay_referrer(payment)
        return Recorded(payment, duplicate=False, tier=tier)

    async def _pay_referrer(self, payment: Payment) -> None:
        user = await self._users.get(payment.user_id)
        if user is None or user.referred_by_id is None:
            return
        if not self._referral.every_payment and await self._payments.count_paid(user.id) > 1:
            return
        bonus = referral_bonus(payment.credits, self._referral.percent)
        if bonus:
            await self._ledger.post(
                user.referred_by_id,
                Account.CREDITS.value,
                bonus,
                EntryKind.REFERRAL_BONUS,
                f"referral:{payment.telegram_payment_charge_id}",
                Reference(payment_id=payment.id),
            )

    # --- reading ------------------------------------------------------------------------
    @use_case
    async def recent(self, user_id: int, limit: int = 5) -> list[Payment]:
        return await self._payments.recent_for_user(user_id, limit)

    @use_case
    async def has_paid_before(self, user_id: int) -> bool:
        return bool(await self._payments.recent_for_user(user_id, 1))


def _product_ref(claim: InvoiceClaim) -> str:
    """What the payment row points at: the job id of a single generation, else the ref."""
    if claim.product is Product.SINGLE:
        job_id, _ = _job_ref(claim.ref)
        return str(job_id) if job_id is not None else claim.ref[:64]
    return claim.ref


def _job_ref(ref: str) -> tuple[int | None, int | None]:
    """``"<job id>x<stars>"`` of a single-generation invoice."""
    job_text, _, stars_text = ref.partition("x")
    if not (job_text.isdigit() and stars_text.isdigit()):
        return None, None
    return int(job_text), int(stars_text)


def from_unix(seconds: int | None) -> datetime | None:
    return datetime.fromtimestamp(seconds, UTC) if seconds else None
