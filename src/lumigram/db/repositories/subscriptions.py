from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from lumigram.db import tables
from lumigram.domain.money import Account
from lumigram.domain.subscriptions import EXPIRY_NOTICE, Subscription

S = tables.subscriptions.c
ALLOWANCE_ACCOUNTS = (Account.ALLOWANCE.value, Account.ALLOWANCE.held)


class SubscriptionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, user_id: int, *, lock: bool = False) -> Subscription | None:
        statement = select(Subscription).where(S.user_id == user_id)
        if lock:  # a no-op on SQLite, where BEGIN IMMEDIATE serialises writers
            statement = statement.with_for_update()
        statement = statement.execution_options(populate_existing=True)
        return (await self._session.scalars(statement)).one_or_none()

    async def add(self, subscription: Subscription) -> None:
        self._session.add(subscription)
        await self._session.flush()

    async def needing_attention(self, now: datetime, limit: int) -> list[Subscription]:
        """Not yet ended, and expired or within the expiry-notice window."""
        result = await self._session.scalars(
            select(Subscription)
            .where(S.ended_at.is_(None), S.expires_at <= now + EXPIRY_NOTICE)
            .order_by(S.expires_at)
            .limit(limit)
        )
        return list(result)

    async def used_up_without_notice(self, now: datetime, limit: int) -> list[Subscription]:
        """Active subscriptions whose allowance (held included) is gone, not yet told."""
        balances = tables.balances.c
        left = (
            select(func.coalesce(func.sum(balances.amount), 0))
            .where(balances.user_id == S.user_id, balances.account.in_(ALLOWANCE_ACCOUNTS))
            .scalar_subquery()
        )
        result = await self._session.scalars(
            select(Subscription)
            .where(
                S.ended_at.is_(None),
                S.expires_at > now,
                or_(S.allowance_notice_for.is_(None), S.allowance_notice_for != S.expires_at),
                left == 0,
            )
            .limit(limit)
        )
        return list(result)
