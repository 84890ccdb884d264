from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from lumigram.db import tables
from lumigram.domain.money import Payment, PaymentStatus

P = tables.payments.c


class PaymentRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get_by_charge(self, charge_id: str) -> Payment | None:
        return (
            await self._session.scalars(
                select(Payment).where(P.telegram_payment_charge_id == charge_id)
            )
        ).one_or_none()

    async def add(self, payment: Payment) -> bool:
        try:
            async with self._session.begin_nested():
                self._session.add(payment)
                await self._session.flush()
        except IntegrityError:
            return False
        return True

    async def count_paid(self, user_id: int) -> int:
        count = await self._session.scalar(
            select(func.count())
            .select_from(tables.payments)
            .where(P.user_id == user_id, P.status == PaymentStatus.PAID.value)
        )
        return int(count or 0)
