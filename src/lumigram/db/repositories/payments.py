from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from lumigram.db import tables
from lumigram.domain.invoices import Product
from lumigram.domain.money import Payment, PaymentStatus, RefundRequest, RefundState

P = tables.payments.c
R = tables.refund_requests.c


class PaymentRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, payment_id: int) -> Payment | None:
        return await self._session.get(Payment, payment_id, populate_existing=True)

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

    async def for_job(self, job_id: int) -> Payment | None:
        """The invoice payment that bought this job, if it was bought by invoice."""
        return (
            await self._session.scalars(
                select(Payment)
                .where(P.product == Product.SINGLE.value, P.product_ref == str(job_id))
                .order_by(P.id)
                .limit(1)
            )
        ).one_or_none()

    async def with_payload(self, user_id: int, payload: str) -> Payment | None:
        return (
            await self._session.scalars(
                select(Payment)
                .where(P.user_id == user_id, P.invoice_payload == payload[:128])
                .order_by(P.id)
                .limit(1)
            )
        ).one_or_none()

    async def recent_for_user(self, user_id: int, limit: int) -> list[Payment]:
        result = await self._session.scalars(
            select(Payment).where(P.user_id == user_id).order_by(P.id.desc()).limit(limit)
        )
        return list(result)

    async def refunds_due(self, now: datetime, limit: int) -> list[Payment]:
        result = await self._session.scalars(
            select(Payment)
            .where(
                P.refund_state == RefundState.PENDING.value,
                or_(P.refund_next_at.is_(None), P.refund_next_at <= now),
            )
            .order_by(P.refund_next_at, P.id)
            .limit(limit)
        )
        return list(result)

    # --- refund requests (the user asks; the operator decides) ---------------------
    async def add_refund_request(self, request: RefundRequest) -> None:
        self._session.add(request)
        await self._session.flush()

    async def open_refund_request(self, user_id: int, job_id: int) -> RefundRequest | None:
        return (
            await self._session.scalars(
                select(RefundRequest).where(
                    R.user_id == user_id, R.job_id == job_id, R.status == "open"
                )
            )
        ).one_or_none()
