"""Subscription tiers, a user's subscription, and the perks it gives.

A subscription is bought with a Telegram Stars subscription invoice (30 days).
Each paid period grants the tier's allowance of images; a renewal resets it.
Perks last until ``expires_at``: a cancelled or failed renewal only means no
new period starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

SUBSCRIPTION_PERIOD = timedelta(seconds=2592000)  # the only period Telegram allows
EXPIRY_NOTICE = timedelta(days=3)


@dataclass(frozen=True, slots=True)
class Perks:
    """What a user may do; subscribers get more."""

    max_outputs: int  # images per request (also capped by the model)
    max_active_jobs: int
    premium_models: bool
    priority: int  # queue priority: higher runs first

    def allows_model(self, premium: bool) -> bool:
        return self.premium_models or not premium


@dataclass(frozen=True, slots=True)
class Tier:
    id: str
    name: str  # a brand-like name, shown as is in every language
    stars: int  # per 30 days
    images: int  # allowance per period
    perks: Perks


def tier_problem(tiers: tuple[Tier, ...]) -> str | None:
    """Why these tiers cannot be sold, in words for the operator; None if they can."""
    seen: set[str] = set()
    for tier in tiers:
        if not tier.id.isascii() or not tier.id.isalnum() or len(tier.id) > 16:
            return f"tier id {tier.id!r} must be 1-16 letters or digits"
        if tier.id in seen:
            return f"tier id {tier.id!r} is used twice"
        seen.add(tier.id)
        if not 1 <= tier.stars <= 10000:  # Telegram's limit for a subscription price
            return f"tier {tier.id}: stars must be 1-10000"
        if tier.images < 1:
            return f"tier {tier.id}: images must be at least 1"
    return None


@dataclass(eq=False)
class Subscription:
    """A user's subscription (one row per user; a new purchase replaces an ended one)."""

    user_id: int
    tier_id: str
    first_charge_id: str  # the charge editUserStarSubscription refers to
    last_charge_id: str
    started_at: datetime
    expires_at: datetime
    renewal_canceled: bool = False
    renewal_failed: bool = False
    ended_at: datetime | None = None  # set once the expiry has been processed
    expiry_notice_for: datetime | None = None  # the period whose 3-day notice was sent
    allowance_notice_for: datetime | None = None  # the period whose "used up" notice was sent

    def active(self, now: datetime) -> bool:
        return self.ended_at is None and now < self.expires_at

    def renews(self) -> bool:
        return not (self.renewal_canceled or self.renewal_failed)

    def due_expiry_notice(self, now: datetime) -> bool:
        return (
            self.active(now)
            and self.expires_at - now <= EXPIRY_NOTICE
            and self.expiry_notice_for != self.expires_at
        )


def perks_for(
    subscription: Subscription | None, tiers: dict[str, Tier], free: Perks, now: datetime
) -> Perks:
    """The perks of an active subscription's tier, else the free ones."""
    if subscription is None or not subscription.active(now):
        return free
    tier = tiers.get(subscription.tier_id)
    return tier.perks if tier is not None else free
