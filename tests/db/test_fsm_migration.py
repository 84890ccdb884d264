"""Migration 0007: the conversation state table (bot.fsm.SqlStorage)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from lumigram.db.engine import create_engine
from lumigram.db.migrate import current_revision, downgrade, upgrade


def describe(connection: Connection) -> dict[str, Any]:
    inspector = inspect(connection)
    if "fsm_states" not in inspector.get_table_names():
        return {}
    return {
        "columns": {c["name"]: c["nullable"] for c in inspector.get_columns("fsm_states")},
        "primary_key": inspector.get_pk_constraint("fsm_states")["constrained_columns"],
        "indexes": {i["name"]: i["column_names"] for i in inspector.get_indexes("fsm_states")},
    }


EXPECTED = {
    "columns": {"key": False, "state": True, "data": False, "updated_at": False},
    "primary_key": ["key"],
    "indexes": {"ix_fsm_states_updated_at": ["updated_at"]},
}


async def test_the_table_exists_at_head(engine: AsyncEngine) -> None:
    """On the suite's database (SQLite, or PostgreSQL when configured)."""
    async with engine.connect() as conn:
        assert await conn.run_sync(describe) == EXPECTED


async def test_0007_goes_up_and_down(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")
    await upgrade(engine, "0006")
    async with engine.connect() as conn:
        assert await conn.run_sync(describe) == {}
    await upgrade(engine, "0007")
    assert await current_revision(engine) == "0007"
    async with engine.begin() as conn:
        assert await conn.run_sync(describe) == EXPECTED
        await conn.execute(
            text(
                "INSERT INTO fsm_states (key, state, updated_at)"
                " VALUES ('1:2::2::default', 'GenerateForm:prompt', '2026-12-10')"
            )
        )
        assert (await conn.execute(text("SELECT data FROM fsm_states"))).scalar() == "{}"
    await downgrade(engine, "0006")
    assert await current_revision(engine) == "0006"
    async with engine.connect() as conn:
        assert await conn.run_sync(describe) == {}
    await upgrade(engine)
    async with engine.connect() as conn:
        assert await conn.run_sync(describe) == EXPECTED
    await engine.dispose()
