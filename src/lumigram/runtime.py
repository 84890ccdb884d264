"""Starting and stopping the whole application (the embedded, single-process mode)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import Sequence

from aiogram import Bot, Dispatcher, Router
from aiogram.utils.i18n import I18n
from sqlalchemy.ext.asyncio import AsyncEngine

from lumigram.bot.app import build_bot, build_dispatcher
from lumigram.bot.commands import register_commands
from lumigram.bot.i18n import build_i18n
from lumigram.bot.notifier import TelegramNotifier
from lumigram.bot.stars import TelegramMoneyNotifier, TelegramStars
from lumigram.catalog import load_catalog
from lumigram.config import DatabaseSettings, Settings
from lumigram.container import Infrastructure, Services, billing_for, worker_policy
from lumigram.db.engine import create_engine, create_sessionmaker
from lumigram.db.mapping import map_entities
from lumigram.db.repositories.ledger import LedgerRepository
from lumigram.db.repositories.templates import TemplateRepository
from lumigram.db.uow import unit_of_work_factory
from lumigram.providers.registry import build_providers
from lumigram.queue.inprocess import InProcessQueue
from lumigram.services.ledger import Ledger
from lumigram.services.worker import JobRunner
from lumigram.storage.local import LocalStorage

log = logging.getLogger(__name__)
USAGE_REFRESH_EVERY = 12  # sweeps between refreshes of the templates' usage counts


class BotApplication:
    """Owns the engine, the bot, the dispatcher and the in-process workers for one run."""

    def __init__(self, settings: Settings, *, extra_routers: Sequence[Router] = ()) -> None:
        self.settings = settings
        map_entities()
        self.engine: AsyncEngine = create_engine(settings.database_url.get_secret_value())
        self.sessionmaker = create_sessionmaker(self.engine)
        self.i18n: I18n = build_i18n(settings.default_language)
        self.bot: Bot = build_bot(settings)
        self.queue = InProcessQueue(concurrency=settings.worker_concurrency)
        self.catalog = load_catalog(override=settings.catalog_file)
        self.infra = Infrastructure(
            settings=settings,
            catalog=self.catalog,
            providers=build_providers(settings),
            storage=LocalStorage(settings.storage_dir),
            dispatcher=self.queue,
        )
        self.infra.stars = TelegramStars(self.bot, self.i18n)
        self.infra.money_notifier = TelegramMoneyNotifier(self.bot, self.i18n, self.sessionmaker)
        self.notifier = TelegramNotifier(self.bot, self.i18n, self.catalog)
        self.runner = JobRunner(
            unit_of_work_factory(self.sessionmaker, billing_for),
            self.infra.providers,
            self.infra.storage,
            self.notifier,
            self.queue,
            worker_policy(settings),
            after_failure=self.send_refunds,
        )
        self.dispatcher: Dispatcher = build_dispatcher(
            self.infra, self.sessionmaker, self.i18n, self.notifier, extra_routers=extra_routers
        )
        self._sweeper: asyncio.Task[None] | None = None
        self._money_lock = asyncio.Lock()

    async def prepare(self) -> None:
        """Migrate, register the command menus, and start the workers."""
        from lumigram.db.migrate import upgrade  # Alembic is needed only for this moment

        await upgrade(self.engine)
        me = await self.bot.me()
        log.info("starting @%s (id %s)", me.username, me.id)
        await register_commands(self.bot, self.i18n)
        await self._load_mode_titles()
        self.queue.start(self.runner.run_step)
        await self.settle_money()  # money left in flight by the last stop is put right
        await self.runner.recover()  # jobs interrupted by the last stop carry on
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="lumigram-sweeper")
        # Everything imported so far lives as long as the process: take it out of the
        # garbage collector's view, which cuts full collections (loop stalls) by ~3x.
        gc.collect()
        gc.freeze()

    async def _load_mode_titles(self) -> None:
        async with self.sessionmaker() as session:
            templates = await TemplateRepository(session).list_active()
        self.notifier.mode_titles = {t.slug: dict(t.titles) for t in templates}

    async def _sweep_forever(self) -> None:
        sweeps = 0
        while True:
            await asyncio.sleep(self.settings.sweep_interval)
            sweeps += 1
            try:
                await self.runner.sweep()
                await self.settle_money()
                if sweeps % USAGE_REFRESH_EVERY == 0:
                    await self._refresh_usage_counts()
            except Exception:
                log.exception("sweeper failed; trying again at the next interval")

    async def send_refunds(self) -> None:
        """Right after a job fails: a paid one's refund goes out now, not at the next sweep."""
        async with self._money_lock, self.sessionmaker() as session:
            assert self.infra.stars is not None
            await Services(session, self.infra).refunds.process_due(
                self.infra.stars, self.infra.money_notifier
            )

    async def settle_money(self) -> None:
        """Open holds of ended jobs, refunds due, subscriptions past their end or
        due a reminder (services.reconciler). One at a time: the sweeper and a
        worker's failure may ask at once."""
        async with self._money_lock, self.sessionmaker() as session:
            services = Services(session, self.infra)
            await services.reconciler.run()
            assert self.infra.stars is not None
            await services.refunds.process_due(self.infra.stars, self.infra.money_notifier)
            await services.subscriptions.sweep(self.infra.money_notifier)

    async def _refresh_usage_counts(self) -> None:
        # Counted here, not in each job's transaction: one hot template row would
        # serialise every confirmation on PostgreSQL.
        async with self.sessionmaker() as session:
            await TemplateRepository(session).refresh_usage_counts()
            await session.commit()

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
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        await self.queue.stop()
        for provider in self.infra.providers.values():
            await provider.aclose()
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


async def verify_ledger(settings: DatabaseSettings) -> list[str]:
    """Every balance against its ledger; the problems found (none: all is well)."""
    map_entities()
    engine = create_engine(settings.database_url.get_secret_value())
    try:
        async with create_sessionmaker(engine)() as session:
            return await Ledger(LedgerRepository(session)).discrepancies()
    finally:
        await engine.dispose()


async def migrate(settings: DatabaseSettings) -> str | None:
    from lumigram.db.migrate import current_revision, upgrade

    engine = create_engine(settings.database_url.get_secret_value())
    try:
        await upgrade(engine)
        return await current_revision(engine)
    finally:
        await engine.dispose()
