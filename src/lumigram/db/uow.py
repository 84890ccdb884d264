"""The SQL unit of work: every gateway over one AsyncSession, one transaction."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncSession, AsyncSessionTransaction, async_sessionmaker

from lumigram.db.repositories.jobs import JobRepository
from lumigram.db.repositories.ledger import LedgerRepository
from lumigram.db.repositories.templates import TemplateRepository
from lumigram.db.repositories.users import UserRepository
from lumigram.services.ports import Billing, UnitOfWork, UnitOfWorkFactory
from lumigram.services.unit import unit


class SqlUnitOfWork:
    def __init__(self, session: AsyncSession, billing: Billing) -> None:
        self.session = session
        self.users = UserRepository(session)
        self.jobs = JobRepository(session)
        self.templates = TemplateRepository(session)
        self.ledger = LedgerRepository(session)
        self.billing = billing

    async def commit(self) -> None:
        await self.session.commit()

    def begin_nested(self) -> AsyncSessionTransaction:
        """A savepoint: the unit of work of a use case undoes its writes to it."""
        return self.session.begin_nested()

    async def rollback(self) -> None:
        await self.session.rollback()


def unit_of_work_factory(
    sessionmaker: async_sessionmaker[AsyncSession],
    billing_for: Callable[[AsyncSession], Billing],
) -> UnitOfWorkFactory:
    """A factory of units of work, each with its own session (for workers): each
    ``async with`` block is one transaction, committed when it ends."""

    @asynccontextmanager
    async def open_unit() -> AsyncIterator[UnitOfWork]:
        """One unit of work: commits when the block ends, undone if it raises."""
        async with sessionmaker() as session:
            uow = SqlUnitOfWork(session, billing_for(session))
            async with unit(uow):
                yield uow

    return open_unit
