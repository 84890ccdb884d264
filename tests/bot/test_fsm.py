"""Conversation state (bot.fsm): the database storage of the embedded mode, Redis for
replicas, and the event isolation of each. Real SQLite/PostgreSQL and a real Redis."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from aiogram.fsm.state import State, StatesGroup
from aiogram.fsm.storage.base import BaseEventIsolation, BaseStorage, StorageKey
from aiogram.fsm.storage.memory import SimpleEventIsolation
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from lumigram.bot.fsm import (
    REDIS_MISSING,
    STATE_TTL,
    SqlEventIsolation,
    SqlStorage,
    TableKeyBuilder,
    build_fsm,
)
from lumigram.bot.states import GenerateForm
from lumigram.config import Settings, load_settings
from lumigram.db.engine import create_engine, create_sessionmaker
from lumigram.db.tables import fsm_states, templates
from lumigram.services.generation import Draft
from lumigram.startup import StartupError
from tests.conftest import VALID_TOKEN

KEY = StorageKey(bot_id=42, chat_id=1001, user_id=1001)


class Form(StatesGroup):
    first = State()
    second = State()


def hide_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    """As if the optional `scale` extra were not installed: importing redis fails."""
    for name in ["redis", *(n for n in sys.modules if n.startswith("redis."))]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.delitem(sys.modules, "aiogram.fsm.storage.redis", raising=False)


def settings(database_url: str, **overrides: object) -> Settings:
    return load_settings(bot_token=VALID_TOKEN, database_url=database_url, **overrides)


@pytest.fixture
def reader(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_sessionmaker(engine, read_only=True)


@pytest.fixture
def storage(
    sessionmaker: async_sessionmaker[AsyncSession], reader: async_sessionmaker[AsyncSession]
) -> SqlStorage:
    return SqlStorage(sessionmaker, reader)


async def rows(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    async with sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(fsm_states)) or 0)


# --- the database storage -------------------------------------------------------------


async def test_state_and_data_round_trip(storage: SqlStorage) -> None:
    assert await storage.get_state(KEY) is None
    assert await storage.get_data(KEY) == {}
    await storage.set_state(KEY, Form.first)
    assert await storage.get_state(KEY) == "Form:first"
    await storage.set_data(KEY, {"screen": 17, "text": "привет", "nested": {"a": [1, None]}})
    assert await storage.get_state(KEY) == "Form:first"  # writing data keeps the state
    await storage.set_state(KEY, "Form:second")  # a plain string, as aiogram allows
    assert await storage.get_data(KEY) == {
        "screen": 17,
        "text": "привет",
        "nested": {"a": [1, None]},
    }
    assert await storage.get_state(KEY) == "Form:second"
    assert await storage.get_value(KEY, "screen") == 17


async def test_update_data_merges(storage: SqlStorage) -> None:
    assert await storage.update_data(KEY, {"a": 1}) == {"a": 1}  # no row yet
    await storage.set_state(KEY, Form.first)
    assert await storage.update_data(KEY, {"b": 2}) == {"a": 1, "b": 2}
    assert await storage.update_data(KEY, {"a": 3}) == {"a": 3, "b": 2}
    assert await storage.get_data(KEY) == {"a": 3, "b": 2}
    assert await storage.get_state(KEY) == "Form:first"


async def test_clear_deletes_the_row(
    storage: SqlStorage, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await storage.set_state(KEY, Form.first)
    await storage.set_data(KEY, {"a": 1})
    assert await rows(sessionmaker) == 1
    await storage.set_state(KEY, None)
    assert (await storage.get_state(KEY), await storage.get_data(KEY)) == (None, {"a": 1})
    await storage.set_data(KEY, {})
    assert (await storage.get_state(KEY), await storage.get_data(KEY)) == (None, {})
    assert await rows(sessionmaker) == 0  # nothing left: no empty row lingers
    await storage.set_data(KEY, {"a": 1})
    await storage.set_data(KEY, {})  # empty data, no state: gone again
    assert await rows(sessionmaker) == 0


async def test_each_conversation_has_its_own_row(storage: SqlStorage) -> None:
    keys = [
        KEY,
        StorageKey(bot_id=42, chat_id=1001, user_id=2002),  # another user in the chat
        StorageKey(bot_id=42, chat_id=-500, user_id=1001),  # the user in a group
        StorageKey(bot_id=43, chat_id=1001, user_id=1001),  # another bot
        StorageKey(bot_id=42, chat_id=1001, user_id=1001, thread_id=9),
        StorageKey(bot_id=42, chat_id=1001, user_id=1001, destiny="scene"),
        StorageKey(bot_id=42, chat_id=1001, user_id=1001, business_connection_id="bc:1"),
        StorageKey(bot_id=42, chat_id=1001, user_id=1001, business_connection_id="bc", destiny="1"),
    ]
    assert len({TableKeyBuilder().build(k) for k in keys}) == len(keys)
    for number, key in enumerate(keys):
        await storage.set_state(key, f"Form:s{number}")
        await storage.set_data(key, {"n": number})
    for number, key in enumerate(keys):
        assert await storage.get_state(key) == f"Form:s{number}"
        assert await storage.get_data(key) == {"n": number}
    await storage.set_state(KEY, None)
    await storage.set_data(KEY, {})
    assert await storage.get_state(keys[1]) == "Form:s1"  # clearing one leaves the others


async def test_state_survives_a_new_storage_over_the_same_database(database_url: str) -> None:
    """A restart: a new engine and storage read what the last process wrote."""
    draft = Draft(
        model_id="demo",
        template_slug="custom",
        prompt="a red fox",
        settings={"aspect_ratio": "16:9", "num_outputs": 2, "seed": None, "upsampling": True},
        reference_keys=("refs/1/a.png", "refs/1/b.png"),
    )
    for _ in range(2):  # the second round reads the first's writes, after a restart
        engine = create_engine(database_url)
        storage = SqlStorage(
            create_sessionmaker(engine), create_sessionmaker(engine, read_only=True)
        )
        if await storage.get_state(KEY) is None:
            await storage.set_state(KEY, GenerateForm.summary)
            await storage.set_data(KEY, {"draft": draft.to_state(), "screen": 55})
        else:
            assert await storage.get_state(KEY) == GenerateForm.summary.state
            data = await storage.get_data(KEY)
            assert Draft.from_state(data["draft"]) == draft  # what the handlers store is JSON
            assert data["screen"] == 55
        await storage.close()
        await engine.dispose()


async def test_data_that_is_not_json_is_refused_where_it_is_stored(storage: SqlStorage) -> None:
    with pytest.raises(TypeError):
        await storage.set_data(KEY, {"when": datetime.now(UTC)})
    with pytest.raises(ValueError, match="Out of range float"):
        await storage.set_data(KEY, {"x": float("nan")})
    assert await storage.get_data(KEY) == {}


async def test_old_conversations_are_pruned(
    storage: SqlStorage, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    idle = StorageKey(bot_id=42, chat_id=7, user_id=7)
    await storage.set_state(idle, Form.first)
    await storage.set_state(KEY, Form.first)
    async with sessionmaker() as session:
        await session.execute(
            update(fsm_states)
            .where(fsm_states.c.key == TableKeyBuilder().build(idle))
            .values(updated_at=datetime.now(UTC) - timedelta(days=31))
        )
        await session.commit()
    assert await storage.prune(timedelta(days=40)) == 0
    assert await storage.prune(STATE_TTL) == 1
    assert await storage.get_state(idle) is None
    assert await storage.get_state(KEY) == "Form:first"


async def test_a_new_storage_prunes_on_its_first_write(
    storage: SqlStorage,
    sessionmaker: async_sessionmaker[AsyncSession],
    reader: async_sessionmaker[AsyncSession],
) -> None:
    await storage.set_state(KEY, Form.first)
    async with sessionmaker() as session:
        await session.execute(
            update(fsm_states).values(updated_at=datetime.now(UTC) - timedelta(days=31))
        )
        await session.commit()
    await storage.set_state(StorageKey(bot_id=42, chat_id=8, user_id=8), Form.first)
    assert await storage.get_state(KEY) == "Form:first"  # pruned at most every 6 hours
    restarted = SqlStorage(sessionmaker, reader)
    await restarted.set_state(StorageKey(bot_id=42, chat_id=9, user_id=9), Form.first)
    assert await restarted.get_state(KEY) is None
    assert await rows(sessionmaker) == 2


# --- deferred writes under the embedded mode's isolation ------------------------------


async def test_an_updates_writes_land_together_when_its_lock_is_released(
    storage: SqlStorage,
    sessionmaker: async_sessionmaker[AsyncSession],
    reader: async_sessionmaker[AsyncSession],
) -> None:
    isolation = SqlEventIsolation(storage)
    assert isinstance(isolation, SimpleEventIsolation)  # one process: aiogram's own lock
    other_view = SqlStorage(sessionmaker, reader)  # reads the table only
    await storage.set_data(KEY, {"a": 1})
    async with isolation.lock(KEY):
        await storage.set_state(KEY, Form.second)
        assert await storage.update_data(KEY, {"b": 2}) == {"a": 1, "b": 2}
        assert await storage.get_state(KEY) == "Form:second"  # read back from the batch
        assert await storage.get_data(KEY) == {"a": 1, "b": 2}
        assert await other_view.get_state(KEY) is None  # not written yet
        assert await other_view.get_data(KEY) == {"a": 1}
    assert await other_view.get_state(KEY) == "Form:second"
    assert await other_view.get_data(KEY) == {"a": 1, "b": 2}
    async with isolation.lock(KEY):  # FSMContext.clear(): one delete at the end
        await storage.set_state(KEY, None)
        await storage.set_data(KEY, {})
        assert await storage.get_data(KEY) == {}
    assert await rows(sessionmaker) == 0


async def test_a_state_write_does_not_wait_for_the_handlers_open_transaction(
    storage: SqlStorage, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """On SQLite a handler's session that has read in its write transaction holds the
    database's write lock until the update ends; a state write in that update must not
    wait for it (it would time out), so it is written once the handler is done."""
    isolation = SqlEventIsolation(storage)
    async with isolation.lock(KEY), sessionmaker() as handler_session:
        await handler_session.execute(select(templates.c.id).limit(1))
        assert handler_session.in_transaction()
        await asyncio.wait_for(storage.set_state(KEY, Form.first), timeout=2)
        await asyncio.wait_for(storage.update_data(KEY, {"draft": 1}), timeout=2)
        # The session closed (DbSessionMiddleware's scope ends inside the lock).
    assert await storage.get_state(KEY) == "Form:first"
    assert await storage.get_data(KEY) == {"draft": 1}


async def test_a_task_that_outlives_the_update_writes_directly(storage: SqlStorage) -> None:
    isolation = SqlEventIsolation(storage)
    go, done = asyncio.Event(), asyncio.Event()

    async def later() -> None:
        await go.wait()
        await storage.set_state(KEY, Form.second)
        done.set()

    async with isolation.lock(KEY):
        task = asyncio.create_task(later())  # copies the update's context
    go.set()
    await asyncio.wait_for(done.wait(), 5)
    await task
    assert await storage.get_state(KEY) == "Form:second"


async def test_one_conversations_updates_run_one_at_a_time(storage: SqlStorage) -> None:
    isolation = SqlEventIsolation(storage)
    order: list[str] = []

    async def update(name: str, key: StorageKey) -> None:
        async with isolation.lock(key):
            order.append(f"{name} in")
            await asyncio.sleep(0.05)
            await storage.update_data(key, {name: True})
            order.append(f"{name} out")

    await asyncio.gather(update("a", KEY), update("b", KEY))
    assert order == ["a in", "a out", "b in", "b out"]
    assert await storage.get_data(KEY) == {"a": True, "b": True}  # no lost update


# --- build_fsm --------------------------------------------------------------------------


async def test_without_redis_the_state_lives_in_the_database(
    database_url: str,
    sessionmaker: async_sessionmaker[AsyncSession],
    reader: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hide_redis(monkeypatch)  # a plain install: no redis package
    storage, isolation = build_fsm(settings(database_url), sessionmaker, reader)
    assert isinstance(storage, SqlStorage)
    assert isinstance(isolation, SqlEventIsolation)
    await storage.set_state(KEY, Form.first)
    assert await rows(sessionmaker) == 1


def test_redis_url_without_the_redis_package_is_one_line(
    database_url: str,
    sessionmaker: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hide_redis(monkeypatch)
    config = settings(database_url, redis_url="redis://127.0.0.1:1/0")
    with pytest.raises(StartupError) as raised:
        build_fsm(config, sessionmaker)
    assert str(raised.value) == REDIS_MISSING


@pytest.fixture
async def replicas(
    database_url: str, redis_url: str, sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[list[tuple[BaseStorage, BaseEventIsolation]]]:
    """Two bot replicas' storage and isolation over the same Redis."""
    config = settings(database_url, redis_url=redis_url)
    made = [build_fsm(config, sessionmaker) for _ in range(2)]
    yield made
    for storage, isolation in made:
        await isolation.close()
        await storage.close()


async def test_with_redis_the_state_lives_in_redis(
    replicas: list[tuple[BaseStorage, BaseEventIsolation]],
    redis_url: str,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    from aiogram.fsm.storage.redis import RedisEventIsolation, RedisStorage
    from redis.asyncio import Redis

    (first, isolation), (second, _) = replicas
    assert isinstance(first, RedisStorage)
    assert isinstance(isolation, RedisEventIsolation)
    assert isolation.redis is first.redis  # the same Redis, closed with the storage
    draft = Draft(model_id="demo", template_slug="nature", prompt="a fox", settings={"seed": 7})
    await first.set_state(KEY, GenerateForm.summary)
    await first.update_data(KEY, {"draft": draft.to_state(), "screen": 5})
    # Another replica (or this one after a restart) sees it.
    assert await second.get_state(KEY) == GenerateForm.summary.state
    assert Draft.from_state((await second.get_data(KEY))["draft"]) == draft
    other = StorageKey(bot_id=42, chat_id=1001, user_id=1001, destiny="scene")
    assert await second.get_state(other) is None
    assert await rows(sessionmaker) == 0  # nothing in the database
    async with Redis.from_url(redis_url) as redis:
        names = sorted(k.decode() for k in await redis.keys("*"))
        assert names == [
            "lumigram:fsm:42:1001:1001:default:data",
            "lumigram:fsm:42:1001:1001:default:state",
        ]
        for name in names:  # idle conversations expire
            assert 0 < await redis.ttl(name) <= STATE_TTL.total_seconds()
    await second.set_state(KEY, None)
    await second.set_data(KEY, {})
    assert (await first.get_state(KEY), await first.get_data(KEY)) == (None, {})


async def test_redis_isolation_serialises_one_conversation_across_replicas(
    replicas: list[tuple[BaseStorage, BaseEventIsolation]],
) -> None:
    (_, one), (_, two) = replicas
    order: list[str] = []
    inside = asyncio.Event()

    async def first() -> None:
        async with one.lock(KEY):
            order.append("one in")
            inside.set()
            await asyncio.sleep(0.3)
            order.append("one out")

    async def second(key: StorageKey, name: str) -> None:
        await inside.wait()
        async with two.lock(key):
            order.append(f"{name} in")
            await asyncio.sleep(0.01)
            order.append(f"{name} out")

    await asyncio.wait_for(asyncio.gather(first(), second(KEY, "two")), 10)
    assert order == ["one in", "one out", "two in", "two out"]  # the same user waits

    order.clear()
    inside.clear()
    another = StorageKey(bot_id=42, chat_id=2002, user_id=2002)
    await asyncio.wait_for(asyncio.gather(first(), second(another, "other")), 10)
    assert order == ["one in", "other in", "other out", "one out"]  # another user does not
