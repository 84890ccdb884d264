from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from lumigram.db import tables
from lumigram.domain.users import User
from lumigram.services.ports import DuplicateError


class UserRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, user_id: int) -> User | None:
        return await self._session.get(User, user_id)

    async def get_by_referral_code(self, code: str) -> User | None:
        result = await self._session.execute(
            select(User).where(tables.users.c.referral_code == code)
        )
        return result.scalar_one_or_none()

    async def add(self, user: User) -> None:
        try:
            # A savepoint, so a duplicate leaves the outer transaction usable on PostgreSQL.
            async with self._session.begin_nested():
                self._session.add(user)
                await self._session.flush()
        except IntegrityError as exc:
            raise DuplicateError(str(exc.orig)) from None

    async def count_referred(self, referrer_id: int) -> int:
        count = await self._session.scalar(
            select(func.count())
            .select_from(tables.users)
            .where(tables.users.c.referred_by_id == referrer_id)
        )
        return int(count or 0)
