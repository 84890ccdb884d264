"""One sweeper at a time among the worker processes.

The sweeper (due jobs, money settlement, Stars reconciliation, stream trimming) is
safe to run twice, but it is wasteful, so the workers elect one holder through a
lock that dies with its process:

- PostgreSQL: a session advisory lock (``pg_try_advisory_lock``) on a connection of
  its own, held as long as the process lives. When the holder dies its connection
  closes, the server releases the lock, and the next worker to try takes it.
- SQLite (every process on one machine): an exclusive ``flock`` on a file beside the
  database, which the kernel releases when the holder dies.

``SweeperLock.held()`` is asked before each sweep: it keeps the lock, or tries to
take it, and answers whether this process sweeps now.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from pathlib import Path
from typing import IO

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = logging.getLogger(__name__)

SWEEPER_LOCK = 0x4C756D73  # "Lums": the advisory lock key of the sweeper


class SweeperLock:
    def __init__(self, engine: AsyncEngine, sqlite_path: Path | None) -> None:
        self._engine = engine
        self._postgres = engine.dialect.name == "postgresql"
        self._path = (
            sqlite_path.with_name(sqlite_path.name + ".sweeper.lock") if sqlite_path else None
        )
        self._connection: AsyncConnection | None = None
        self._file: IO[bytes] | None = None
        self._held = False

    async def held(self) -> bool:
        """True when this process holds the lock (kept, or taken just now)."""
        if self._postgres:
            held = await self._postgres_held()
        elif self._path is not None:
            held = await asyncio.to_thread(self._file_held)
        else:
            held = True  # an in-memory database: one process by definition
        if held != self._held:
            log.info("this worker %s the sweeper", "now runs" if held else "no longer runs")
            self._held = held
        return held

    async def _postgres_held(self) -> bool:
        if self._connection is not None:
            try:  # still ours while the connection is alive
                await self._connection.exec_driver_sql("SELECT 1")
                return True
            except Exception as error:
                log.warning("sweeper lock: its connection failed (%s); trying again", error)
                await self._close_connection()
        try:
            connection = await self._engine.connect()
        except Exception as error:
            log.warning("sweeper lock: no database connection (%s)", error)
            return False
        try:
            connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
            taken = await connection.scalar(text(f"SELECT pg_try_advisory_lock({SWEEPER_LOCK})"))
        except Exception as error:
            log.warning("sweeper lock: could not ask for it (%s)", error)
            await connection.close()
            return False
        if taken:
            self._connection = connection
            return True
        await connection.close()
        return False

    def _file_held(self) -> bool:
        import fcntl

        if self._file is not None:
            return True  # flock is held until the file is closed or the process dies
        assert self._path is not None
        self._path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self._path, "a+b")  # noqa: SIM115 (kept open while held)
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n".encode())
        handle.flush()
        self._file = handle
        return True

    async def _close_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.close()

    async def release(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):
                await self._connection.exec_driver_sql(f"SELECT pg_advisory_unlock({SWEEPER_LOCK})")
            await self._close_connection()
        if self._file is not None:
            self._file.close()  # releases the flock
            self._file = None
        self._held = False
