"""Recording Telegram Stars payments exactly once, and what they buy.

``successful_payment`` can arrive twice (a replayed update, a retried
webhook, two workers): the payment row is unique per Telegram charge id and
every ledger row it causes carries a key derived from that id, all in one
transaction, so only the first delivery changes anything.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from lumigram.domain.invoices import InvoiceClaim, PayloadError, Product, decode_payload
from lumigram.domain.money import (
    UNMATCHED,
    Account,
    EntryKind,
    Package,
    Payment,
    referral_bonus,
)
from lumigram.services.clock import Clock, utc_now
from lumigram.services.ledger import Ledger, Reference
from lumigram.services.ports import PaymentGateway, TransactionManager, UserGateway

log = logging.getLogger(__name__)
STARS = "XTR"


@dataclass(frozen=True, slots=True)
class ReferralPolicy:
    percent: int = 10
    every_payment: bool = True  # False: only the referee's first payment earns a bonus


@dataclass(frozen=True, slots=True)
class Recorded:
    payment: Payment
    duplicate: bool  # True: this charge was recorded before; nothing changed now


class PaymentService:
    def __init__(
        self,
        payments: PaymentGateway,
        users: UserGateway,
        ledger: Ledger,
        tx: TransactionManager,
        *,
        secret: bytes,
        packages: tuple[Package, ...],
        referral: ReferralPolicy,
        clock: Clock = utc_now,
    ) -> None:
        self._payments = payments
        self._users = users
        self._ledger = ledger
        self._tx = tx
        self._secret = secret
        self._packages = {package.id: package for package in packages}
        self._referral = referral
        self._clock = clock

    async def record(
        self,
        *,
        user_id: int,
        charge_id: str,
        payload: str,
        currency: str,
        total_amount: int,
    ) -> Recorded:
        """Record a successful payment once and credit what it bought."""
        existing = await self._payments.get_by_charge(charge_id)
        if existing is not None:
            await self._tx.commit()
            return Recorded(existing, duplicate=True)
        package = self._package_for(user_id, payload, currency, total_amount)
        payment = Payment(
            telegram_payment_charge_id=charge_id,
            user_id=user_id,
            invoice_payload=payload[:128],
            product=Product.PACKAGE.value if package else UNMATCHED,
            product_ref=package.id if package else None,
            amount_xtr=total_amount,
            credits=package.credits if package else 0,
            created_at=self._clock(),
        )
        if not await self._payments.add(payment):  # recorded concurrently a moment ago
            await self._tx.rollback()
            raced = await self._payments.get_by_charge(charge_id)
            await self._tx.commit()
            assert raced is not None
            return Recorded(raced, duplicate=True)
        if package is None:
            # The money arrived, so it is kept on record; the operator decides (refund).
            log.error(
                "OPERATOR ALERT: payment %s of %s %s by user %s matches no product",
                charge_id,
                total_amount,
                currency,
                user_id,
            )
        else:
            reference = Reference(payment_id=payment.id)
            await self._ledger.post(
                user_id,
                Account.CREDITS.value,
                package.credits,
                EntryKind.TOP_UP,
                f"charge:{charge_id}",
                reference,
            )
            await self._pay_referrer(user_id, charge_id, package.credits, reference)
        await self._tx.commit()
        return Recorded(payment, duplicate=False)

    def _package_for(
        self, user_id: int, payload: str, currency: str, total_amount: int
    ) -> Package | None:
        try:
            claim: InvoiceClaim = decode_payload(payload, self._secret)
        except PayloadError:
            return None
        package = self._packages.get(claim.ref)
        if (
            currency != STARS
            or claim.product is not Product.PACKAGE
            or claim.user_id != user_id
            or package is None
            or package.stars != total_amount
        ):
            return None
        return package

    async def _pay_referrer(
        self, user_id: int, charge_id: str, credits_bought: int, reference: Reference
    ) -> None:
        user = await self._users.get(user_id)
        if user is None or user.referred_by_id is None:
            return
        if not self._referral.every_payment and await self._payments.count_paid(user_id) > 1:
            return
        bonus = referral_bonus(credits_bought, self._referral.percent)
        if bonus:
            await self._ledger.post(
                user.referred_by_id,
                Account.CREDITS.value,
                bonus,
                EntryKind.REFERRAL_BONUS,
                f"referral:{charge_id}",
                reference,
            )
