"""Engine and session factory, with the SQLite settings a concurrent async app needs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry

SQLITE_BUSY_TIMEOUT_MS = 15_000
READ_ONLY = "lumigram_read_only"  # execution option of the read-only sessions


def create_engine(url: str, *, echo: bool = False) -> AsyncEngine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, echo=echo, connect_args={"timeout": 15})
        _configure_sqlite(engine)
        return engine
    return create_async_engine(url, echo=echo, pool_pre_ping=True, pool_size=10, max_overflow=20)


def _configure_sqlite(engine: AsyncEngine) -> None:
    """WAL, busy timeout, foreign keys, and BEGIN IMMEDIATE for every transaction.

    pysqlite's own transaction handling begins lazily with a deferred BEGIN, so
    a read-then-write transaction can fail with "database is locked" when it
    tries to upgrade its lock. Following SQLAlchemy's SQLite notes we switch
    the driver's handling off and emit BEGIN IMMEDIATE ourselves, which takes
    the write lock up front (waiting up to the busy timeout).
    """

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        # A read transaction (see ``create_sessionmaker(read_only=True)``) takes no write
        # lock: under WAL it reads one snapshot while writers go on.
        read_only = connection.get_execution_options().get(READ_ONLY, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def create_sessionmaker(
    engine: AsyncEngine, *, read_only: bool = False
) -> async_sessionmaker[AsyncSession]:
    """Sessions for work that writes, or (``read_only``) for reads: on SQLite those begin
    a deferred transaction that takes no write lock (never write in one: upgrading
    the lock can meet "database is locked")."""
    # expire_on_commit=False: handlers render objects after the service committed.
    bind = engine.execution_options(**{READ_ONLY: True}) if read_only else engine
    return async_sessionmaker(bind, expire_on_commit=False)
