from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from lumigram.db import tables
from lumigram.db.repositories.templates import TemplateRepository

NOW = datetime(2026, 6, 1, tzinfo=UTC)


async def test_usage_counts_follow_the_jobs(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    async with sessionmaker() as session:
        templates = {t.slug: t.id for t in await TemplateRepository(session).list_active()}
        await session.execute(
            tables.users.insert().values(
                id=1, language="en", referral_code="aaaaaaaa", created_at=NOW, last_seen_at=NOW
            )
        )
        for slug in ("food", "food", "city"):
            await session.execute(
                tables.jobs.insert().values(
                    user_id=1,
                    reply_to=str(1),
                    language="en",
                    model_id="demo",
                    provider="demo",
                    provider_model="demo-art",
                    mode=slug,
                    template_id=templates[slug],
                    prompt="p",
                    final_prompt="p",
                    settings={},
                    reference_files=[],
                    status="succeeded",
                    step="done",
                    next_attempt_at=NOW,
                    result_files=[],
                    created_at=NOW,
                    updated_at=NOW,
                )
            )
        await TemplateRepository(session).refresh_usage_counts()
        await session.commit()
        counts = dict(
            (
                await session.execute(
                    select(tables.templates.c.slug, tables.templates.c.usage_count)
                )
            ).all()
        )
    assert counts["food"] == 2
    assert counts["city"] == 1
    assert counts["nature"] == 0
