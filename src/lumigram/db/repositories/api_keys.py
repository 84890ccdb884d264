from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from lumigram.db import tables
from lumigram.domain.api_keys import ApiKey

K = tables.api_keys.c


class ApiKeyRepository:
    """API keys. Never commits: the use case owns the transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, key: ApiKey) -> None:
        self._session.add(key)
        await self._session.flush()

    async def get(self, key_id: int) -> ApiKey | None:
        return await self._session.get(ApiKey, key_id, populate_existing=True)

    async def by_hash(self, key_hash: str) -> ApiKey | None:
        statement = (
            select(ApiKey).where(K.key_hash == key_hash).execution_options(populate_existing=True)
        )
        return (await self._session.scalars(statement)).one_or_none()

    async def list_for_user(self, user_id: int) -> list[ApiKey]:
        """The user's active keys, newest first."""
        result = await self._session.scalars(
            select(ApiKey)
            .where(K.user_id == user_id, K.revoked_at.is_(None))
            .order_by(K.created_at.desc(), K.id.desc())
            .execution_options(populate_existing=True)
        )
        return list(result)

    async def count_active(self, user_id: int) -> int:
        count = await self._session.scalar(
            select(func.count())
            .select_from(tables.api_keys)
            .where(K.user_id == user_id, K.revoked_at.is_(None))
        )
        return int(count or 0)

    async def lock_user(self, user_id: int) -> None:
        """Serialise key creation per user (a row lock on PostgreSQL; SQLite's
        BEGIN IMMEDIATE already serialises writers), so two creations at once
        cannot both pass the limit."""
        await self._session.execute(
            select(tables.users.c.id).where(tables.users.c.id == user_id).with_for_update()
        )

    async def touch(self, key_id: int, now: datetime) -> None:
        """Record a use (one UPDATE; the key in the session follows)."""
        await self._session.execute(
            update(ApiKey).where(K.id == key_id).values(last_used_at=now),
            execution_options={"synchronize_session": "fetch"},
        )
