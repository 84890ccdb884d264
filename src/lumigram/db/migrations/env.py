"""Alembic environment.

Used two ways: by ``lumigram migrate`` / ``lumigram run``, which hand over an
open connection in ``config.attributes["connection"]``; and by the ``alembic``
command for developers, which connects to ``DATABASE_URL`` itself.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy.engine import Connection

from lumigram.db import tables as _tables  # noqa: F401 - registers the tables on metadata
from lumigram.db.base import UTCDateTime, metadata

config = context.config
target_metadata = metadata


def render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    """Render our UTCDateTime as a plain DateTime so migrations never import app code."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def run_with_connection(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite can only alter tables by copying them
        compare_type=True,
        render_item=render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_standalone() -> None:
    from lumigram.db.engine import create_engine

    url = os.environ.get("DATABASE_URL", "sqlite+aiosqlite:///./data/lumigram.db")
    engine = create_engine(url)
    async with engine.connect() as connection:
        await connection.run_sync(run_with_connection)
        await connection.commit()
    await engine.dispose()


if context.is_offline_mode():
    context.configure(
        url=os.environ.get("DATABASE_URL", "sqlite:///./data/lumigram.db"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()
else:
    shared = config.attributes.get("connection")
    if shared is not None:
        run_with_connection(shared)
    else:
        asyncio.run(run_standalone())
