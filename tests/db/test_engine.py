"""Engine behaviour that the rest of the code relies on."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from lumigram.db.engine import create_engine


async def test_sqlite_read_then_write_transactions_do_not_fail_when_concurrent(tmp_path) -> None:
    """With a deferred BEGIN, concurrent read-then-write transactions hit 'database is locked'."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'c.db'}")
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE counter (n INTEGER NOT NULL)"))
        await conn.execute(text("INSERT INTO counter VALUES (0)"))

    async def increment() -> None:
        async with engine.begin() as conn:
            value = await conn.scalar(text("SELECT n FROM counter"))
            await asyncio.sleep(0.005)  # let the others interleave
            await conn.execute(text("UPDATE counter SET n = :n"), {"n": value + 1})

    await asyncio.gather(*(increment() for _ in range(25)))
    async with engine.connect() as conn:
        assert await conn.scalar(text("SELECT n FROM counter")) == 25
    await engine.dispose()


async def test_sqlite_pragmas(tmp_path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'p.db'}")
    async with engine.connect() as conn:
        assert await conn.scalar(text("PRAGMA journal_mode")) == "wal"
        assert await conn.scalar(text("PRAGMA foreign_keys")) == 1
        assert await conn.scalar(text("PRAGMA busy_timeout")) == 15000
    await engine.dispose()


async def test_timestamps_come_back_timezone_aware(engine: AsyncEngine) -> None:
    from datetime import UTC, datetime

    from lumigram.db import tables

    now = datetime(2026, 3, 1, 10, 30, tzinfo=UTC)
    async with engine.begin() as conn:
        await conn.execute(
            tables.users.insert().values(
                id=1, language="en", referral_code="aaaaaaaa", created_at=now, last_seen_at=now
            )
        )
    async with engine.connect() as conn:
        row = (await conn.execute(tables.users.select())).one()
    assert row.created_at == now
    assert row.created_at.tzinfo is not None


def test_naive_datetimes_are_refused() -> None:
    from datetime import datetime

    from lumigram.db.base import UTCDateTime

    with pytest.raises(ValueError, match="naive"):
        UTCDateTime().process_bind_param(datetime(2026, 1, 1), None)  # type: ignore[arg-type]
