"""Subscriptions: what a payment starts or renews, the `subscription` update, expiry, reminders.

A period's allowance is a ledger account: each paid period first expires what
is left of the previous one, then grants the tier's images, both keyed by the
Telegram charge so a replayed payment changes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from lumigram.domain.money import Account, EntryKind, Payment
from lumigram.domain.subscriptions import Perks, Subscription, Tier, perks_for
from lumigram.services.clock import Clock, utc_now
from lumigram.services.ledger import Ledger, Reference
from lumigram.services.ports import (
    MoneyNotifier,
    StarsGateway,
    SubscriptionGateway,
    TransactionManager,
)
from lumigram.services.unit import use_case

log = logging.getLogger(__name__)
# A renewing subscription keeps its perks this long past the period, so Telegram's
# renewal payment (charged at the end of the period) arrives before anything ends.
RENEWAL_GRACE = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class SubscriptionView:
    subscription: Subscription | None
    tier: Tier | None
    active: bool
    allowance_left: int


class NoSubscriptionError(Exception):
    pass


class SubscriptionService:
    def __init__(
        self,
        subscriptions: SubscriptionGateway,
        ledger: Ledger,
        tx: TransactionManager,
        *,
        tiers: tuple[Tier, ...],
        free_perks: Perks,
        clock: Clock = utc_now,
    ) -> None:
        self._subscriptions = subscriptions
        self._ledger = ledger
        self._tx = tx
        self.tiers = {tier.id: tier for tier in tiers}
        self._free = free_perks
        self._clock = clock

    def tier(self, tier_id: str) -> Tier | None:
        return self.tiers.get(tier_id)

    async def entitlement(self, user_id: int) -> tuple[Perks, bool]:
        """The user's perks and whether a subscription is active; read inside the
        caller's transaction (no commit)."""
        subscription = await self._subscriptions.get(user_id)
        now = self._clock()
        active = subscription is not None and subscription.active(now)
        return perks_for(subscription, self.tiers, self._free, now), active

    @use_case
    async def view(self, user_id: int) -> SubscriptionView:
        subscription = await self._subscriptions.get(user_id)
        balances = await self._ledger.balances(user_id)
        active = subscription is not None and subscription.active(self._clock())
        tier = self.tiers.get(subscription.tier_id) if subscription else None
        return SubscriptionView(
            subscription, tier, active, balances[Account.ALLOWANCE.value] if active else 0
        )

    # --- payments (inside PaymentService's transaction) -------------------------------
    async def apply_payment(self, payment: Payment, tier: Tier, expires_at: datetime) -> None:
        """Start or renew the subscription: a fresh allowance until ``expires_at``."""
        now = self._clock()
        charge = payment.telegram_payment_charge_id
        subscription = await self._subscriptions.get(payment.user_id, lock=True)
        if subscription is None:
            subscription = Subscription(
                user_id=payment.user_id,
                tier_id=tier.id,
                first_charge_id=charge,
                last_charge_id=charge,
                started_at=now,
                expires_at=expires_at,
            )
            await self._subscriptions.add(subscription)
        else:
            if payment.is_first_recurring or not subscription.active(now):
                subscription.first_charge_id = charge
                subscription.started_at = now
            subscription.tier_id = tier.id
            subscription.last_charge_id = charge
            subscription.expires_at = max(subscription.expires_at, expires_at)
            subscription.renewal_canceled = False
            subscription.renewal_failed = False
            subscription.ended_at = None
        reference = Reference(payment_id=payment.id)
        left = (await self._ledger.balances(payment.user_id))[Account.ALLOWANCE.value]
        if left:
            await self._ledger.post(
                payment.user_id,
                Account.ALLOWANCE.value,
                -left,
                EntryKind.EXPIRY,
                f"allowance-reset:{charge}",
                reference,
            )
        await self._ledger.post(
            payment.user_id,
            Account.ALLOWANCE.value,
            tier.images,
            EntryKind.SUBSCRIPTION_GRANT,
            f"subscription:{charge}",
            reference,
        )

    async def on_update(self, user_id: int, state: str) -> Subscription | None:
        """Telegram's ``subscription`` update: the user cancelled, re-enabled, or a renewal
        payment failed. Perks last until the paid period ends either way."""
        subscription = await self._subscriptions.get(user_id, lock=True)
        if subscription is not None:
            if state == "canceled":
                subscription.renewal_canceled = True
            elif state == "active":
                subscription.renewal_canceled = False
                subscription.renewal_failed = False
            elif state == "failed":
                subscription.renewal_failed = True
        await self._tx.commit()
        return subscription

    async def set_renewal(self, user_id: int, *, cancel: bool, stars: StarsGateway) -> Subscription:
        """Cancel or resume renewal (editUserStarSubscription), then remember it."""
        subscription = await self._subscriptions.get(user_id)
        await self._tx.commit()
        if subscription is None or not subscription.active(self._clock()):
            raise NoSubscriptionError
        await stars.set_subscription_canceled(user_id, subscription.first_charge_id, cancel)
        subscription = await self._subscriptions.get(user_id, lock=True)
        assert subscription is not None
        subscription.renewal_canceled = cancel
        if not cancel:
            subscription.renewal_failed = False
        await self._tx.commit()
        return subscription

    # --- time passing (the sweeper) -----------------------------------------------------
    async def sweep(self, notifier: MoneyNotifier | None, limit: int = 100) -> int:
        """End expired subscriptions, send 3-day and used-up reminders (each once)."""
        now = self._clock()
        handled = 0
        for candidate in await self._subscriptions.needing_attention(now, limit):
            user_id = candidate.user_id
            await self._tx.commit()
            subscription = await self._subscriptions.get(user_id, lock=True)
            if subscription is None or subscription.ended_at is not None:
                await self._tx.commit()
                continue
            grace = RENEWAL_GRACE if subscription.renews() else timedelta(0)
            tier = self.tiers.get(subscription.tier_id)
            if now >= subscription.expires_at + grace:
                await self._end(subscription, now)
                await self._tx.commit()
                if notifier is not None:
                    await notifier.subscription_ended(subscription, tier)
                handled += 1
            elif subscription.due_expiry_notice(now):
                subscription.expiry_notice_for = subscription.expires_at
                await self._tx.commit()
                if notifier is not None:
                    await notifier.subscription_expiring(subscription, tier)
                handled += 1
            else:
                await self._tx.commit()
        for candidate in await self._subscriptions.used_up_without_notice(now, limit):
            candidate.allowance_notice_for = candidate.expires_at
            await self._tx.commit()
            if notifier is not None:
                await notifier.allowance_used_up(candidate, self.tiers.get(candidate.tier_id))
            handled += 1
        await self._tx.commit()
        return handled

    async def _end(self, subscription: Subscription, now: datetime) -> None:
        left = (await self._ledger.balances(subscription.user_id))[Account.ALLOWANCE.value]
        if left:
            await self._ledger.post(
                subscription.user_id,
                Account.ALLOWANCE.value,
                -left,
                EntryKind.EXPIRY,
                f"expiry:{subscription.last_charge_id}",
                Reference(note="subscription ended"),
            )
        subscription.ended_at = now
        log.info("subscription of user %s ended", subscription.user_id)
