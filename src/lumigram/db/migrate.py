"""Applying migrations from code (``lumigram migrate`` and start-up).

Alembic's own INFO lines (a dozen on every start) are silenced; ``upgrade``
returns an ``UpgradeResult`` whose text is the one line the operator sees:
"database at revision 0004, 0 migrations applied".
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.resources import files

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATION_LOCK = 0x4C756D69  # "Lumi": the advisory lock key of migrations


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(files("lumigram.db") / "migrations"))
    return config


@dataclass(frozen=True)
class UpgradeResult:
    revision: str | None  # None: the database is at base (no migrations at all)
    applied: int

    def __str__(self) -> str:
        noun = "migration" if self.applied == 1 else "migrations"
        return f"database at revision {self.revision or 'base'}, {self.applied} {noun} applied"


@contextlib.contextmanager
def quiet_alembic() -> Iterator[None]:
    """Alembic logs a dozen INFO lines per upgrade; keep them for LOG_LEVEL=DEBUG only."""
    logger = logging.getLogger("alembic")
    if logger.isEnabledFor(logging.DEBUG):
        yield
        return
    previous = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(previous)


async def upgrade(engine: AsyncEngine, revision: str = "head") -> UpgradeResult:
    """Bring the database to ``revision`` over one connection, in one transaction."""
    config = alembic_config()

    def _run(connection: Connection) -> UpgradeResult:
        config.attributes["connection"] = connection
        before = MigrationContext.configure(connection).get_current_revision()
        command.upgrade(config, revision)
        after = MigrationContext.configure(connection).get_current_revision()
        return UpgradeResult(after, applied_between(before, after))

    with quiet_alembic():
        async with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                # Processes started together (bot, worker, api) migrate one at a time:
                # the others wait here, then find nothing left to do. Held until commit.
                await connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
            return await connection.run_sync(_run)


def applied_between(lower: str | None, upper: str | None) -> int:
    """How many migrations lead from ``lower`` (None: base) up to ``upper``."""
    if upper is None or upper == lower:
        return 0
    script = ScriptDirectory.from_config(alembic_config())
    return sum(1 for _ in script.iterate_revisions(upper, lower or "base"))


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    config = alembic_config()

    def _run(connection: Connection) -> None:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)

    with quiet_alembic():
        async with engine.begin() as connection:
            await connection.run_sync(_run)


async def current_revision(engine: AsyncEngine) -> str | None:
    def _read(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    with quiet_alembic():
        async with engine.connect() as connection:
            return await connection.run_sync(_read)


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()
