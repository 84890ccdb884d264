"""What a user has: balances, free images, subscription, referrals, recent payments."""

from __future__ import annotations

from dataclasses import dataclass

from lumigram.domain.money import Account, EntryKind, Payment
from lumigram.services.ledger import Ledger
from lumigram.services.ports import PaymentGateway, TransactionManager, UserGateway
from lumigram.services.subscriptions import SubscriptionService, SubscriptionView
from lumigram.services.unit import use_case


@dataclass(frozen=True, slots=True)
class ReferralStats:
    invited: int
    earned: int  # credits, bonuses less reversals


@dataclass(frozen=True, slots=True)
class Overview:
    credits: int
    trial_left: int
    stars: int  # Stars left over from paid generations
    subscription: SubscriptionView
    referrals: ReferralStats
    payments: list[Payment]


class AccountService:
    def __init__(
        self,
        ledger: Ledger,
        users: UserGateway,
        payments: PaymentGateway,
        subscriptions: SubscriptionService,
        tx: TransactionManager,
    ) -> None:
        self._ledger = ledger
        self._users = users
        self._payments = payments
        self._subscriptions = subscriptions
        self._tx = tx

    @use_case
    async def balances(self, user_id: int) -> dict[str, int]:
        return await self._ledger.balances(user_id)

    @use_case
    async def referrals(self, user_id: int) -> ReferralStats:
        return ReferralStats(
            invited=await self._users.count_referred(user_id),
            earned=await self._ledger.total(
                user_id, (EntryKind.REFERRAL_BONUS, EntryKind.REFERRAL_REVERSAL)
            ),
        )

    @use_case
    async def overview(self, user_id: int, payments: int = 5) -> Overview:
        balances = await self._ledger.balances(user_id)
        recent = await self._payments.recent_for_user(user_id, payments)
        referrals = await self.referrals(user_id)
        subscription = await self._subscriptions.view(user_id)
        return Overview(
            credits=balances[Account.CREDITS.value],
            trial_left=balances[Account.TRIAL.value],
            stars=balances[Account.STARS.value],
            subscription=subscription,
            referrals=referrals,
            payments=recent,
        )
