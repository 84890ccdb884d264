"""Starting and stopping the whole application (the embedded, single-process mode)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence

from aiogram import Bot, Dispatcher, Router
from aiogram.utils.i18n import I18n
from sqlalchemy.ext.asyncio import AsyncEngine

from lumigram.bot.app import build_bot, build_dispatcher
from lumigram.bot.commands import register_commands
from lumigram.bot.i18n import build_i18n
from lumigram.config import Settings
from lumigram.db.engine import create_engine, create_sessionmaker
from lumigram.db.mapping import map_entities
from lumigram.db.migrate import current_revision, upgrade

log = logging.getLogger(__name__)


class BotApplication:
    """Owns the engine, the bot and the dispatcher for one run."""

    def __init__(self, settings: Settings, *, extra_routers: Sequence[Router] = ()) -> None:
        self.settings = settings
        map_entities()
        self.engine: AsyncEngine = create_engine(settings.database_url.get_secret_value())
        self.i18n: I18n = build_i18n(settings.default_language)
        self.bot: Bot = build_bot(settings)
        self.dispatcher: Dispatcher = build_dispatcher(
            settings, create_sessionmaker(self.engine), self.i18n, extra_routers
        )

    async def prepare(self) -> None:
        """Migrate the database and register the command menus."""
        await upgrade(self.engine)
        me = await self.bot.me()
        log.info("starting @%s (id %s)", me.username, me.id)
        await register_commands(self.bot, self.i18n)

    async def run_polling(self, *, handle_signals: bool = True, polling_timeout: int = 25) -> None:
        await self.dispatcher.start_polling(
            self.bot,
            polling_timeout=polling_timeout,
            handle_signals=handle_signals,
            close_bot_session=False,
        )

    async def stop(self) -> None:
        with contextlib.suppress(RuntimeError):  # raised when polling is not running
            await self.dispatcher.stop_polling()

    async def close(self) -> None:
        await self.bot.session.close()
        await self.engine.dispose()


async def run_bot(settings: Settings) -> None:
    """Migrate, then long-poll until SIGINT/SIGTERM."""
    app = BotApplication(settings)
    try:
        await app.prepare()
        await app.run_polling()
    finally:
        await app.close()


async def migrate(settings: Settings) -> str | None:
    engine = create_engine(settings.database_url.get_secret_value())
    try:
        await upgrade(engine)
        return await current_revision(engine)
    finally:
        await engine.dispose()
