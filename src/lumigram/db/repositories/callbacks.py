"""The jobs table for provider callbacks (``services.callbacks.CallbackGateway``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from lumigram.db import tables
from lumigram.domain.jobs import ACTIVE_STATUSES, JobStep
from lumigram.services.callbacks import CallbackTransactions, Wake

J = tables.jobs.c
ACTIVE = [status.value for status in ACTIVE_STATUSES]


class CallbackRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def wake(self, provider: str, provider_job_id: str, now: datetime) -> Wake | None:
        polling = (
            J.provider == provider,
            J.provider_job_id == provider_job_id,
            J.status.in_(ACTIVE),
            J.step == JobStep.POLL.value,
        )
        free = or_(J.lease_expires_at.is_(None), J.lease_expires_at < now)
        # One conditional UPDATE: a worker that claims the job meanwhile wins, and the
        # job is then reported busy below.
        woken = (
            await self._session.execute(
                update(tables.jobs)
                .where(*polling, free)
                .values(next_attempt_at=now, updated_at=now)
                .returning(J.id, J.priority)
            )
        ).first()
        if woken is not None:
            return Wake(int(woken.id), int(woken.priority), woken=True)
        busy = (
            await self._session.execute(
                select(J.id, J.priority).where(*polling).order_by(J.id).limit(1)
            )
        ).first()
        if busy is None:
            return None
        return Wake(int(busy.id), int(busy.priority), woken=False)

    async def commit(self) -> None:
        await self._session.commit()

    async def rollback(self) -> None:
        await self._session.rollback()


def callback_transactions(sessionmaker: async_sessionmaker[AsyncSession]) -> CallbackTransactions:
    """One session (and transaction) per wake-up."""

    @asynccontextmanager
    async def transaction() -> AsyncIterator[CallbackRepository]:
        async with sessionmaker() as session:
            yield CallbackRepository(session)

    return transaction
