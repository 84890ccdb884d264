from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from lumigram.domain.audit import AuditEntry


class AuditRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, entry: AuditEntry) -> None:
        self._session.add(entry)
