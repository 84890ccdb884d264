"""A generation draft survives a restart of the bot: the conversation state lives in
the database (embedded mode) or in Redis (REDIS_URL), not in the process."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select

from lumigram.db.engine import create_engine, create_sessionmaker
from lumigram.db.tables import fsm_states
from lumigram.emulator import TelegramEmulator
from tests.e2e.conftest import BotRunner


async def saved_conversations(database_url: str) -> int:
    engine = create_engine(database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            return int(await session.scalar(select(func.count()).select_from(fsm_states)) or 0)
    finally:
        await engine.dispose()


async def forget_conversations(database_url: str) -> None:
    """What pruning does to a conversation idle for longer than its TTL."""
    engine = create_engine(database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            await session.execute(delete(fsm_states))
            await session.commit()
    finally:
        await engine.dispose()


async def draft_across_restarts(
    runner: BotRunner, emulator: TelegramEmulator, user_id: int, **settings: Any
) -> None:
    """Choose a model and mode, restart, type the prompt; restart on the confirmation
    screen, then press its buttons: each step finds the draft the last process saved."""
    await runner.start(**settings)
    user = emulator.user(user_id=user_id, first_name="Fay")
    await user.send_text("/generate")
    await user.wait_for_text("Choose a model")
    await user.press("Demo")
    await user.wait_for_text("Now choose a mode")
    await user.press("Custom prompt")
    await user.wait_for_text("Send me what to draw")

    await runner.restart(**settings)  # waiting for the prompt
    await user.send_text("a heron standing in fog")
    summary = await user.wait_for_text("Check your request")
    assert "a heron standing in fog" in (summary.text or "")

    await runner.restart(**settings)  # on the confirmation screen
    await user.press("Settings", message=summary)
    await user.wait_for_text("Choose what to change")
    await user.press("Aspect ratio: 1:1")
    await user.wait_for_text("choose a value")
    await user.press("16:9")
    await user.wait_for(lambda m: any("Aspect ratio: 16:9" in b for r in m.buttons for b in r))

    await runner.restart(**settings)
    await user.press("Back")
    summary = await user.wait_for_text("Aspect ratio: 16:9")
    await user.press("Generate", message=summary)
    photo = await user.wait_for(lambda m: m.kind == "photo", timeout=15)
    assert "a heron standing in fog" in (photo.text or "")
    assert not any("expired" in (m.text or "") for m in user.bot_messages)


async def test_a_draft_survives_restarts_in_the_database(
    runner: BotRunner, emulator: TelegramEmulator, database_url: str
) -> None:
    await draft_across_restarts(runner, emulator, user_id=3001)
    # The confirmed draft was cleared: no row is left behind for it.
    assert await saved_conversations(database_url) == 0


async def test_a_draft_survives_restarts_in_redis(
    runner: BotRunner, emulator: TelegramEmulator, database_url: str, redis_url: str
) -> None:
    await draft_across_restarts(runner, emulator, user_id=3002, redis_url=redis_url)
    assert await saved_conversations(database_url) == 0  # never written to the database


async def test_a_conversation_that_expired_meanwhile_says_so(
    runner: BotRunner, emulator: TelegramEmulator, database_url: str
) -> None:
    await runner.start()
    user = emulator.user(user_id=3003, first_name="Ida")
    await user.send_text("/generate")
    await user.wait_for_text("Choose a model")
    await user.press("Demo")
    await user.wait_for_text("Now choose a mode")
    await user.press("Nature")
    await user.wait_for_text("Send me what to draw")
    await user.send_text("a waterfall")
    await user.wait_for_text("Check your request")
    await runner.stop()
    assert await saved_conversations(database_url) == 1
    await forget_conversations(database_url)  # pruned: idle for longer than 30 days
    await runner.start()
    query_id = await user.press("Generate")
    answer = await user.wait_callback_answer(query_id)
    assert "no longer valid" in (answer.text or "")
    assert not [m for m in user.bot_messages if m.media_type == "photo"]
