"""Migrations: head matches the models, and they go down and up again cleanly."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import AsyncEngine

from lumigram.db.base import metadata
from lumigram.db.migrate import current_revision, downgrade, head_revision, upgrade


async def test_database_is_at_head(engine: AsyncEngine) -> None:
    assert await current_revision(engine) == head_revision()


async def test_models_and_migrations_agree(engine: AsyncEngine) -> None:
    def diff(connection):  # type: ignore[no-untyped-def]
        return compare_metadata(MigrationContext.configure(connection), metadata)

    async with engine.connect() as conn:
        assert await conn.run_sync(diff) == []


async def test_downgrade_to_base_and_upgrade_again(tmp_path) -> None:
    from lumigram.db.engine import create_engine

    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")
    await upgrade(engine)
    await downgrade(engine, "base")
    assert await current_revision(engine) is None
    await upgrade(engine)
    assert await current_revision(engine) == head_revision()
    await engine.dispose()


async def test_0006_moves_telegram_ids_out_of_jobs(tmp_path) -> None:
    """A job made before jobs were channel-neutral keeps its chat, status message and
    file ids: they move to the Telegram channel's own tables."""
    import json

    from sqlalchemy import text

    from lumigram.db.engine import create_engine

    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")
    await upgrade(engine, "0005")
    results = [
        {"key": "results/1/0.png", "mime_type": "image/png", "width": 8, "height": 8,
         "photo_file_id": "P0", "document_file_id": "D0"},
    ]  # fmt: skip
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO users (id, first_name, language, role, is_banned, referral_code,"
                " created_at, last_seen_at) VALUES (7, 'A', 'en', 'user', 0, 'r7',"
                " '2026-01-01', '2026-01-01')"
            )
        )
        await conn.execute(
            text(
                "INSERT INTO jobs (user_id, chat_id, language, model_id, provider,"
                " provider_model, mode, prompt, final_prompt, settings, reference_files,"
                " status, step, next_attempt_at, status_message_id, status_text,"
                " result_files, created_at, updated_at) VALUES (7, 7007, 'en', 'demo',"
                " 'demo', 'demo-art', 'custom', 'p', 'p', '{}', '[]', 'succeeded', 'done',"
                " '2026-01-01', 55, 'Generating', :results, '2026-01-01', '2026-01-01')"
            ),
            {"results": json.dumps(results)},
        )
    await upgrade(engine)
    async with engine.connect() as conn:
        job = (await conn.execute(text("SELECT channel, reply_to, result_files FROM jobs"))).one()
        status = (await conn.execute(text("SELECT * FROM telegram_job_messages"))).one()
        files = (await conn.execute(text("SELECT * FROM telegram_files"))).all()
    assert (job[0], job[1]) == ("telegram", "7007")
    assert json.loads(job[2]) == [
        {"key": "results/1/0.png", "mime_type": "image/png", "width": 8, "height": 8}
    ]
    assert tuple(status) == (1, 7007, 55, "Generating")
    assert [tuple(f) for f in files] == [(1, 0, "P0", "D0")]
    await engine.dispose()
