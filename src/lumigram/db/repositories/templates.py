from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from lumigram.db import tables
from lumigram.domain.templates import Template

T = tables.templates.c


class TemplateRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def list_active(self) -> list[Template]:
        result = await self._session.scalars(
            select(Template).where(T.is_active.is_(True)).order_by(T.sort_order, T.id)
        )
        return list(result)

    async def get(self, template_id: int) -> Template | None:
        return await self._session.get(Template, template_id)

    async def get_by_slug(self, slug: str) -> Template | None:
        return (await self._session.scalars(select(Template).where(T.slug == slug))).one_or_none()

    async def refresh_usage_counts(self) -> None:
        """Set every template's usage count from the jobs that used it."""
        used = (
            select(func.count())
            .select_from(tables.jobs)
            .where(tables.jobs.c.template_id == T.id)
            .scalar_subquery()
        )
        await self._session.execute(update(tables.templates).values(usage_count=used))
