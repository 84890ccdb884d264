from __future__ import annotations

from sqlalchemy import select, update
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

    async def count_use(self, template_id: int) -> None:
        await self._session.execute(
            update(tables.templates)
            .where(T.id == template_id)
            .values(usage_count=T.usage_count + 1)
        )
