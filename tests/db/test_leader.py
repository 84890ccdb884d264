"""One sweeper at a time (db/leader.py): a lock that dies with its process, on the suite's
database (a SQLite file, or PostgreSQL when LUMIGRAM_TEST_DATABASE_URL is set)."""

from __future__ import annotations

import asyncio
import signal
import sys
import textwrap
from pathlib import Path

from sqlalchemy.engine import make_url

from lumigram.db.engine import create_engine
from lumigram.db.leader import SweeperLock

HOLDER = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from lumigram.db.engine import create_engine
    from lumigram.db.leader import SweeperLock

    async def main(url, path):
        lock = SweeperLock(create_engine(url), Path(path) if path else None)
        assert await lock.held()
        print("holding", flush=True)
        await asyncio.sleep(3600)

    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)


def sqlite_file(url: str) -> Path | None:
    parsed = make_url(url)
    return Path(parsed.database) if parsed.get_backend_name() == "sqlite" else None


async def test_one_holder_at_a_time_and_the_next_takes_over_on_release(
    database_url: str,
) -> None:
    engines = [create_engine(database_url) for _ in range(2)]
    first, second = (SweeperLock(e, sqlite_file(database_url)) for e in engines)
    try:
        assert await first.held()
        assert await first.held()  # kept
        assert not await second.held()
        await first.release()
        assert await second.held()
        assert not await first.held()
    finally:
        await first.release()
        await second.release()
        for engine in engines:
            await engine.dispose()


async def test_a_holder_killed_with_sigkill_frees_the_lock(database_url: str) -> None:
    path = sqlite_file(database_url)
    holder = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        HOLDER,
        database_url,
        str(path or ""),
        stdout=asyncio.subprocess.PIPE,
    )
    engine = create_engine(database_url)
    lock = SweeperLock(engine, path)
    try:
        assert holder.stdout is not None
        line = await asyncio.wait_for(holder.stdout.readline(), timeout=60)
        assert line.strip() == b"holding"
        assert not await lock.held()  # the other process has it
        holder.send_signal(signal.SIGKILL)
        await holder.wait()
        async with asyncio.timeout(20):  # PostgreSQL notices the closed connection
            while True:
                if await lock.held():
                    break
                await asyncio.sleep(0.2)
    finally:
        if holder.returncode is None:
            holder.kill()
            await holder.wait()
        await lock.release()
        await engine.dispose()
