"""Shared fixtures.

The database is SQLite (a fresh file per test) unless LUMIGRAM_TEST_DATABASE_URL
points at PostgreSQL, in which case the suite uses its own database there
(created if missing), migrated once and emptied between tests.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from lumigram.config import DatabaseSettings
from lumigram.db.base import metadata
from lumigram.db.engine import create_engine, create_sessionmaker
from lumigram.db.mapping import map_entities
from lumigram.db.migrate import upgrade
from lumigram.runtime import verify_ledger

PG_URL = os.environ.get("LUMIGRAM_TEST_DATABASE_URL", "")
VALID_TOKEN = "123456789:AAEhBOweik6ad6PsVMRxjeQKj3oXUbuPvXs"

map_entities()


def pytest_report_header() -> str:
    shown = f"PostgreSQL {make_url(PG_URL).render_as_string()}" if PG_URL else "SQLite"
    return f"lumigram database: {shown}"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Tests never read the developer's .env or LUMIGRAM settings by accident."""
    for name in list(os.environ):
        if name.upper() in {
            "BOT_TOKEN",
            "ADMIN_IDS",
            "DATABASE_URL",
            "DEFAULT_LANGUAGE",
            "LOG_LEVEL",
            "TELEGRAM_API_BASE",
            "THROTTLE_RATE",
            "THROTTLE_BURST",
            "LAST_SEEN_RESOLUTION",
        }:
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


_pg_ready = False
# Rows the migrations seed (the built-in modes); put back after each test's truncation.
SEEDED_TABLES = ("templates",)
_seed_rows: dict[str, list[dict[str, object]]] = {}


async def _prepare_postgres() -> str:
    """Create (once) and migrate the suite's own database next to the given one."""
    global _pg_ready
    url = make_url(PG_URL)
    suite_url = url.set(database=f"{url.database}_lumigram")
    if not _pg_ready:
        admin = create_engine(url.render_as_string(hide_password=False))
        async with admin.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            exists = await conn.scalar(
                text("SELECT 1 FROM pg_database WHERE datname = :name"),
                {"name": suite_url.database},
            )
            if not exists:
                await conn.execute(text(f'CREATE DATABASE "{suite_url.database}"'))
        await admin.dispose()
        engine = create_engine(suite_url.render_as_string(hide_password=False))
        async with engine.begin() as conn:
            await conn.execute(text("DROP SCHEMA public CASCADE"))
            await conn.execute(text("CREATE SCHEMA public"))
        await upgrade(engine)
        async with engine.connect() as conn:
            for name in SEEDED_TABLES:
                table = metadata.tables[name]
                rows = (await conn.execute(table.select().order_by(table.c.id))).mappings()
                _seed_rows[name] = [{k: v for k, v in row.items() if k != "id"} for row in rows]
        await engine.dispose()
        _pg_ready = True
    return suite_url.render_as_string(hide_password=False)


async def _verify_books(url: str) -> None:
    """What `lumigram ledger verify` checks, after every test that used a database."""
    problems = await verify_ledger(DatabaseSettings(database_url=url))  # type: ignore[arg-type]
    assert problems == [], f"the books do not balance after this test: {problems}"


@pytest.fixture
async def database_url(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[str]:
    check_books = request.node.get_closest_marker("books_tampered") is None
    if not PG_URL:
        url = f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
        engine = create_engine(url)
        await upgrade(engine)
        await engine.dispose()
        yield url
        if check_books:
            await _verify_books(url)
        return
    url = await _prepare_postgres()
    yield url
    if check_books:
        await _verify_books(url)
    engine = create_engine(url)
    async with engine.begin() as conn:
        names = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
        await conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        for name, rows in _seed_rows.items():
            await conn.execute(metadata.tables[name].insert(), rows)
    await engine.dispose()


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_sessionmaker(engine)


@pytest.fixture
async def second_database_url(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """Another empty, migrated database beside ``database_url`` (a second deployment in
    one test), checked the same way at the end."""
    check_books = request.node.get_closest_marker("books_tampered") is None
    if not PG_URL:
        url = f"sqlite+aiosqlite:///{tmp_path / 'second.db'}"
    else:
        base = make_url(await _prepare_postgres())
        url = base.set(database=f"{base.database}_2").render_as_string(hide_password=False)
        admin = create_engine(base.render_as_string(hide_password=False))
        async with admin.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            name = make_url(url).database
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
        await admin.dispose()
    engine = create_engine(url)
    await upgrade(engine)
    await engine.dispose()
    yield url
    if check_books:
        await _verify_books(url)


@pytest.fixture(scope="session")
def redis_session_url() -> Iterator[str]:
    from tests.redis_server import redis_server

    with redis_server() as url:
        yield url


@pytest.fixture
async def redis_url(redis_session_url: str) -> str:
    """A real Redis, emptied before each test that asks for it (tests/redis_server.py)."""
    from redis.asyncio import Redis

    client = Redis.from_url(redis_session_url)
    try:
        await client.flushdb()
    finally:
        await client.aclose()
    return redis_session_url


@pytest.fixture
async def redis_clients(redis_url: str) -> AsyncIterator[list[Any]]:
    """Three independent clients of ``redis_url``: three processes that share only Redis."""
    from lumigram.limits.redis_scripts import open_redis

    clients = [open_redis(redis_url) for _ in range(3)]
    yield clients
    for client in clients:
        await client.aclose()
