"""Where the conversation state (aiogram FSM: the generation draft, the refund form)
lives, and how one user's updates are kept in order.

- ``REDIS_URL`` set (bot replicas): aiogram's ``RedisStorage``, with a TTL so idle
  drafts expire, and ``RedisEventIsolation``: one user's updates are handled one at a
  time even when they reach different replicas.
- Otherwise (the embedded mode, one process): ``SqlStorage`` over the ``fsm_states``
  table, so a restart forgets nothing, and aiogram's in-process ``SimpleEventIsolation``.

On SQLite a handler's use case may hold the database's only write lock until the
update is done, so a state write on a connection of its own would wait for it (and
time out). ``SqlStorage`` therefore defers the writes made while an update holds its
isolation lock (``SqlEventIsolation``) and writes them when the handler has returned,
still under that lock: one upsert per conversation touched, in one short transaction.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Literal, cast
from urllib.parse import quote

from aiogram.exceptions import DataNotDictLikeError
from aiogram.fsm.state import State
from aiogram.fsm.storage.base import (
    BaseEventIsolation,
    BaseStorage,
    KeyBuilder,
    StateType,
    StorageKey,
)
from aiogram.fsm.storage.memory import SimpleEventIsolation
from sqlalchemy import CursorResult, Delete, Executable, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from lumigram.db.tables import fsm_states

if TYPE_CHECKING:
    from lumigram.config import Settings

log = logging.getLogger(__name__)

STATE_TTL: Final = timedelta(days=30)  # an idle conversation is forgotten after this
PRUNE_EVERY: Final = timedelta(hours=6)  # SqlStorage deletes idle rows this often
REDIS_PREFIX: Final = "lumigram:fsm"
# A lock dies with its replica after this; no handler of one update takes this long.
REDIS_LOCK_TIMEOUT: Final = 60.0
REDIS_LOCK_POLL: Final = 0.05  # how often a waiting replica asks for the lock again
REDIS_MISSING: Final = (
    "REDIS_URL is set but the redis package is not installed: pip install 'lumigram[scale]'"
)


class TableKeyBuilder(KeyBuilder):
    """The ``fsm_states`` key: every part of the StorageKey, always in the same place
    (empty when absent), so no two conversations share one: ``bot:chat:thread:user:
    business connection:destiny``, the free-form last two percent-encoded."""

    def build(
        self,
        key: StorageKey,
        part: Literal["data", "state", "lock"] | None = None,
    ) -> str:
        return ":".join(
            (
                str(key.bot_id),
                str(key.chat_id),
                str(key.thread_id) if key.thread_id else "",
                str(key.user_id),
                quote(key.business_connection_id or "", safe=""),
                quote(key.destiny, safe=""),
            )
        )


class _Unset:
    """Not written in this batch (``None`` is a state: no state)."""


UNSET: Final = _Unset()


@dataclass
class _Pending:
    state: str | _Unset | None = UNSET
    data: str | _Unset = UNSET  # the JSON object, serialised when it was written


@dataclass
class _Batch:
    storage: SqlStorage
    pending: dict[str, _Pending] = field(default_factory=dict)
    open: bool = True


# The writes deferred by the update being handled in this task (SqlEventIsolation).
_batch: ContextVar[_Batch | None] = ContextVar("lumigram_fsm_batch", default=None)


def _state_name(state: StateType) -> str | None:
    if isinstance(state, State):
        return state.state
    return state


def _dump(data: Mapping[str, Any]) -> str:
    if not isinstance(data, dict):
        raise DataNotDictLikeError(
            f"Data must be a dict or dict-like object, got {type(data).__name__}"
        )
    # Fails here, in the handler that stored it, for anything that is not plain JSON.
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _load(raw: str | None) -> dict[str, Any]:
    value = json.loads(raw) if raw else {}
    return value if isinstance(value, dict) else {}


class SqlStorage(BaseStorage):
    """aiogram FSM storage over the ``fsm_states`` table (SQLite or PostgreSQL).

    Each write is one upsert of the conversation's row (an emptied conversation's row
    is deleted); reads go through ``reader`` (no write lock on SQLite). ``prune`` deletes
    conversations idle for longer than ``ttl``; the storage calls it itself at most every
    ``prune_every`` (on a write), and anyone may call it."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        reader: async_sessionmaker[AsyncSession] | None = None,
        *,
        key_builder: KeyBuilder | None = None,
        ttl: timedelta | None = STATE_TTL,
        prune_every: timedelta = PRUNE_EVERY,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._reader = reader or sessionmaker
        self.key_builder = key_builder or TableKeyBuilder()
        self.ttl = ttl
        self._prune_every = prune_every.total_seconds()
        self._next_prune = 0.0  # monotonic; the first write prunes

    # --- aiogram's interface --------------------------------------------------------

    async def set_state(self, key: StorageKey, state: StateType = None) -> None:
        await self._write(key, _Pending(state=_state_name(state)))

    async def get_state(self, key: StorageKey) -> str | None:
        pending = self._pending(key)
        if pending is not None and not isinstance(pending.state, _Unset):
            return pending.state
        async with self._reader() as session:
            state: str | None = await session.scalar(
                select(fsm_states.c.state).where(fsm_states.c.key == self._key(key))
            )
        return state

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        await self._write(key, _Pending(data=_dump(data)))

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        pending = self._pending(key)
        if pending is not None and not isinstance(pending.data, _Unset):
            return _load(pending.data)
        async with self._reader() as session:
            raw: str | None = await session.scalar(
                select(fsm_states.c.data).where(fsm_states.c.key == self._key(key))
            )
        return _load(raw)

    async def update_data(self, key: StorageKey, data: Mapping[str, Any]) -> dict[str, Any]:
        if self._open_batch() is not None:
            return await super().update_data(key, data)  # read and write the batch
        # Outside an update's lock: read and write in one transaction (the row is
        # locked on PostgreSQL, the database on SQLite), so no concurrent write is lost.
        async with self._sessionmaker() as session, session.begin():
            raw = await session.scalar(
                select(fsm_states.c.data)
                .where(fsm_states.c.key == self._key(key))
                .with_for_update()
            )
            merged = {**_load(raw), **data}
            await self._apply(session, {self._key(key): _Pending(data=_dump(merged))})
        return merged

    async def close(self) -> None:
        """Nothing of its own to close: the engine belongs to the application."""

    # --- deferred writes (SqlEventIsolation) ------------------------------------------

    @contextlib.asynccontextmanager
    async def deferred_writes(self) -> AsyncIterator[None]:
        """Writes made inside (by this task) are kept, read back from memory, and
        written at the end in one transaction. Nested use joins the outer batch."""
        if self._open_batch() is not None:
            yield
            return
        batch = _Batch(self)
        token = _batch.set(batch)
        try:
            yield
        finally:
            batch.open = False  # a task started inside and still running writes directly
            _batch.reset(token)
            if batch.pending:
                await self._flush(batch.pending)

    def _open_batch(self) -> _Batch | None:
        batch = _batch.get()
        return batch if batch is not None and batch.storage is self and batch.open else None

    def _pending(self, key: StorageKey) -> _Pending | None:
        batch = self._open_batch()
        return None if batch is None else batch.pending.get(self._key(key))

    async def _write(self, key: StorageKey, change: _Pending) -> None:
        batch = self._open_batch()
        if batch is not None:
            pending = batch.pending.setdefault(self._key(key), _Pending())
            if not isinstance(change.state, _Unset):
                pending.state = change.state
            if not isinstance(change.data, _Unset):
                pending.data = change.data
            return
        await self._flush({self._key(key): change})

    # --- the table --------------------------------------------------------------------

    def _key(self, key: StorageKey) -> str:
        return self.key_builder.build(key)

    async def _flush(self, pending: Mapping[str, _Pending]) -> None:
        async with self._sessionmaker() as session, session.begin():
            await self._apply(session, pending)
            if self.ttl is not None and time.monotonic() >= self._next_prune:
                self._next_prune = time.monotonic() + self._prune_every
                await session.execute(self._prune_statement(self.ttl))

    async def _apply(self, session: AsyncSession, pending: Mapping[str, _Pending]) -> None:
        now = datetime.now(UTC)
        dialect = session.get_bind().dialect.name
        for key, change in pending.items():
            values: dict[str, Any] = {}
            if not isinstance(change.state, _Unset):
                values["state"] = change.state
            if not isinstance(change.data, _Unset):
                values["data"] = change.data
            if values.get("state", UNSET) is None and values.get("data", UNSET) == "{}":
                await session.execute(delete(fsm_states).where(fsm_states.c.key == key))
                continue
            await session.execute(_upsert(dialect, key, values, now))
            if values.get("state", UNSET) is None or values.get("data", UNSET) == "{}":
                # Emptied one half: the row goes if the other half is empty too.
                await session.execute(
                    delete(fsm_states).where(
                        fsm_states.c.key == key,
                        fsm_states.c.state.is_(None),
                        fsm_states.c.data == "{}",
                    )
                )

    @staticmethod
    def _prune_statement(older_than: timedelta) -> Delete:
        cutoff = datetime.now(UTC) - older_than
        return delete(fsm_states).where(fsm_states.c.updated_at < cutoff)

    async def prune(self, older_than: timedelta = STATE_TTL) -> int:
        """Delete the conversations not updated for ``older_than``; how many went."""
        async with self._sessionmaker() as session, session.begin():
            result = cast(
                "CursorResult[Any]", await session.execute(self._prune_statement(older_than))
            )
        return result.rowcount


def _upsert(dialect: str, key: str, values: dict[str, Any], now: datetime) -> Executable:
    """One statement that inserts the row or updates the given columns of it."""
    if dialect == "postgresql":
        pg = postgresql.insert(fsm_states).values(key=key, updated_at=now, **values)
        return pg.on_conflict_do_update(
            index_elements=[fsm_states.c.key],
            set_={**{name: pg.excluded[name] for name in values}, "updated_at": now},
        )
    if dialect == "sqlite":
        lite = sqlite.insert(fsm_states).values(key=key, updated_at=now, **values)
        return lite.on_conflict_do_update(
            index_elements=[fsm_states.c.key],
            set_={**{name: lite.excluded[name] for name in values}, "updated_at": now},
        )
    raise NotImplementedError(f"SqlStorage has no upsert for {dialect}")  # pragma: no cover


class SqlEventIsolation(SimpleEventIsolation):
    """aiogram's in-process lock per conversation (one process: the embedded mode),
    which also defers the update's state writes to its end (see the module's notes)."""

    def __init__(self, storage: SqlStorage) -> None:
        super().__init__()
        self._storage = storage

    @contextlib.asynccontextmanager
    async def lock(self, key: StorageKey) -> AsyncGenerator[None, None]:
        async with super().lock(key), self._storage.deferred_writes():
            yield None


def build_fsm(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    reader: async_sessionmaker[AsyncSession] | None = None,
) -> tuple[BaseStorage, BaseEventIsolation]:
    """The conversation storage and the event isolation for these settings."""
    if settings.redis_url is None:
        storage = SqlStorage(sessionmaker, reader)
        return storage, SqlEventIsolation(storage)
    try:
        from aiogram.fsm.storage.base import DefaultKeyBuilder
        from aiogram.fsm.storage.redis import RedisStorage
    except ImportError as error:
        if (error.name or "").partition(".")[0] != "redis":
            raise
        from lumigram.startup import StartupError

        raise StartupError(REDIS_MISSING) from None
    redis_storage = RedisStorage.from_url(
        settings.redis_url.get_secret_value(),
        key_builder=DefaultKeyBuilder(
            prefix=REDIS_PREFIX,
            with_bot_id=True,
            with_business_connection_id=True,
            with_destiny=True,
        ),
        state_ttl=STATE_TTL,
        data_ttl=STATE_TTL,
    )
    # The same Redis (and connection pool): closing the storage closes both.
    isolation = redis_storage.create_isolation(
        lock_kwargs={"timeout": REDIS_LOCK_TIMEOUT, "sleep": REDIS_LOCK_POLL}
    )
    return redis_storage, isolation
