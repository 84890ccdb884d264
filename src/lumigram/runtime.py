"""Starting and stopping the application: everything in one process (``lumigram run``),
or one part of it per process (``lumigram bot``, ``worker``, ``api``).

Every part is built from the same pieces (``container.Infrastructure`` and the
services over a session); a role only decides what is started: the Telegram side
(polling or webhook), the workers with the sweeper and the money work, the HTTP API.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import Sequence
from datetime import timedelta
from enum import StrEnum

from aiogram import Bot, Dispatcher, Router
from aiogram.utils.i18n import I18n
from sqlalchemy.ext.asyncio import AsyncEngine

from lumigram.bot.app import build_bot, build_dispatcher
from lumigram.bot.commands import register_commands
from lumigram.bot.i18n import build_i18n
from lumigram.bot.job_messages import TelegramJobMessages
from lumigram.bot.middlewares.throttling import build_user_buckets
from lumigram.bot.notifier import TelegramNotifier
from lumigram.bot.session import build_flood_limiter
from lumigram.bot.stars import TelegramMoneyNotifier, TelegramStars
from lumigram.catalog import load_catalog
from lumigram.config import DatabaseSettings, Settings
from lumigram.container import Infrastructure, Services, billing_for, worker_policy
from lumigram.db.engine import create_engine, create_sessionmaker
from lumigram.db.leader import SweeperLock
from lumigram.db.mapping import map_entities
from lumigram.db.repositories.ledger import LedgerRepository
from lumigram.db.repositories.templates import TemplateRepository
from lumigram.db.uow import unit_of_work_factory
from lumigram.domain.jobs import Channel
from lumigram.http import (
    HandlingOutcomeMiddleware,
    HttpServer,
    Metrics,
    UpdateMetricsMiddleware,
    create_app,
)
from lumigram.http.callbacks_out import ApiCallbacks
from lumigram.http.metrics import MetricsJobEvents
from lumigram.limits import build_provider_slots
from lumigram.limits.redis_scripts import open_redis
from lumigram.providers.registry import build_providers
from lumigram.queue.inprocess import InProcessQueue
from lumigram.queue.stream import StreamQueue
from lumigram.queue.table import TableQueue
from lumigram.services.events import JobEventRouter
from lumigram.services.ledger import Ledger
from lumigram.services.ports import JobDispatcher
from lumigram.services.worker import JobRunner
from lumigram.storage import build_storage, check_storage, close_storage

log = logging.getLogger(__name__)


class Role(StrEnum):
    BOT = "bot"  # receives Telegram updates (polling or webhook)
    WORKER = "worker"  # runs jobs, the sweeper and the money work (refunds, reconciliation)
    API = "api"  # the HTTP API under /v1 and the provider callbacks


EMBEDDED = frozenset(Role)  # `lumigram run`: everything in one process
USAGE_REFRESH_EVERY = 12  # sweeps between refreshes of the templates' usage counts
SETTLE_AFTER_SECONDS = 30.0  # a periodic reconciliation leaves younger payments to their update


class BotApplication:
    """Owns the engine, the bot, the dispatcher and the in-process workers for one run."""

    def __init__(
        self,
        settings: Settings,
        *,
        extra_routers: Sequence[Router] = (),
        roles: frozenset[Role] = EMBEDDED,
    ) -> None:
        self.settings = settings
        self.roles = roles
        map_entities()
        self.engine: AsyncEngine = create_engine(settings.database_url.get_secret_value())
        self.sessionmaker = create_sessionmaker(self.engine)
        self.reader = create_sessionmaker(self.engine, read_only=True)  # reads: no write lock
        self.i18n: I18n = build_i18n(settings.default_language)
        # Every role may talk to Telegram (results, refunds, a cancelled job's message);
        # only the bot role receives updates.
        # Redis (scale-out): the limits every process shares (Telegram's flood limits,
        # per-user throttling, provider slots); none in the embedded mode.
        self.redis = (
            open_redis(settings.redis_url.get_secret_value()) if settings.redis_url else None
        )
        self.bot: Bot = build_bot(
            settings,
            flood=build_flood_limiter(settings, self.redis) if self.redis is not None else None,
        )
        self.queue: InProcessQueue | StreamQueue
        redis_url = settings.redis_url.get_secret_value() if settings.redis_url else ""
        if redis_url:  # scale-out: job ids go to the worker processes over a Redis stream
            self.queue = StreamQueue(
                redis_url,
                concurrency=settings.worker_concurrency,
                redeliver_after=max(60.0, 2 * settings.lease_seconds),
            )
        else:
            self.queue = InProcessQueue(concurrency=settings.worker_concurrency)
        # Whether this process runs the sweeper: one worker process at a time does.
        self.sweeper_lock = SweeperLock(self.engine, settings.sqlite_path())
        self.catalog = load_catalog(override=settings.catalog_file)
        # Without workers in this process and without Redis, a new job waits in the jobs
        # table for a worker process's sweeper.
        dispatcher: JobDispatcher = (
            self.queue if Role.WORKER in roles or redis_url else TableQueue()
        )
        self.infra = Infrastructure(
            settings=settings,
            catalog=self.catalog,
            providers=build_providers(settings),
            storage=build_storage(settings),
            dispatcher=dispatcher,
        )
        self.infra.stars = TelegramStars(self.bot, self.i18n)
        self.infra.money_notifier = TelegramMoneyNotifier(self.bot, self.i18n, self.sessionmaker)
        self.infra.send_refunds = self.send_refunds
        self.notifier = TelegramNotifier(
            self.bot,
            self.i18n,
            self.catalog,
            TelegramJobMessages(self.sessionmaker, self.reader),
            self.infra.storage,
            download_link=self.infra.file_links.link,  # videos over Telegram's 50 MB
        )
        self.metrics = Metrics(queue_size=lambda: self.queue.size)
        self.api_callbacks = ApiCallbacks(
            self.sessionmaker, public_base_url=settings.public_base_url or None
        )
        self.events = self.infra.events = JobEventRouter(
            {
                Channel.TELEGRAM: self.notifier,
                Channel.API: self.api_callbacks,
            },
            observers=[MetricsJobEvents(self.metrics)],
        )
        self.runner = JobRunner(
            unit_of_work_factory(self.sessionmaker, billing_for),
            self.infra.providers,
            self.infra.storage,
            self.events,
            self.queue,
            worker_policy(settings),
            after_failure=self.send_refunds,
            images=self.infra.images,
            videos=self.infra.videos,
            slots=build_provider_slots(settings, self.redis),
        )
        from lumigram.bot.fsm import build_fsm  # conversation state: the database or Redis

        fsm_storage, events_isolation = build_fsm(settings, self.sessionmaker, self.reader)
        self.dispatcher: Dispatcher = build_dispatcher(
            self.infra,
            self.sessionmaker,
            self.i18n,
            self.notifier,
            storage=fsm_storage,
            events_isolation=events_isolation,
            user_buckets=build_user_buckets(settings, self.redis),
            extra_routers=extra_routers,
            update_middlewares=(UpdateMetricsMiddleware(self.metrics), HandlingOutcomeMiddleware()),
        )
        self.http: HttpServer | None = None
        self._telegram_answered = False  # getMe at start
        self._receiving = False  # polling, or the webhook set and served
        self._stop_requested = asyncio.Event()  # stop() may come before polling starts
        self._sweeper: asyncio.Task[None] | None = None
        self._stars_sync: asyncio.Task[None] | None = None
        self._money_lock = asyncio.Lock()

    async def prepare(self) -> None:
        """Check the database and Telegram, migrate, register the command menus, and
        start the workers. A problem found here is a one-line StartupError."""
        from lumigram.startup import apply_migrations, check_database, wait_for_telegram

        url = self.settings.database_url.get_secret_value()
        await check_database(self.engine, url)  # a few quick tries, then one line
        await check_storage(self.infra.storage)  # S3: the bucket answers to the keys
        roles = self.roles
        if roles & {Role.BOT, Role.WORKER}:  # they talk to Telegram from the start
            me = await wait_for_telegram(self.bot, self.settings.telegram_api_base)
            self._telegram_answered = True
        log.info("%s", await apply_migrations(self.engine, url))
        if isinstance(self.queue, StreamQueue):
            await self.queue.open()  # Redis unreachable: one line naming REDIS_URL
        if Role.BOT in roles:
            log.info("starting @%s (id %s)", me.username, me.id)
            await register_commands(self.bot, self.i18n)
        log.info("roles: %s", ", ".join(sorted(roles)))
        await self._load_mode_titles()
        if Role.WORKER in roles:
            await self._start_workers()
        # Everything imported so far lives as long as the process: take it out of the
        # garbage collector's view, which cuts full collections (loop stalls) by ~3x.
        gc.collect()
        gc.freeze()

    async def _start_workers(self) -> None:
        self.queue.start(self.runner.run_step)
        sweeps = await self.sweeper_lock.held()
        if self.roles == EMBEDDED and self.settings.is_sqlite and not self.settings.redis_url:
            # `lumigram run` on SQLite is the only process: jobs interrupted by the last
            # stop carry on now. It drops every lease (none can be alive before this, the
            # only worker, dispatches anything).
            await self.runner.recover()
        elif sweeps:  # other workers may be running: leases of a dead one expire by themselves
            await self.runner.sweep()
        if sweeps:
            # Payments whose update the last run lost (or never committed) are recorded
            # next, and money left in flight by the last stop is put right.
            await self.reconcile_stars(settle_after=0.0)
            await self.settle_money()
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="lumigram-sweeper")
        self._stars_sync = asyncio.create_task(
            self._reconcile_stars_forever(), name="lumigram-stars-sync"
        )

    async def _load_mode_titles(self) -> None:
        async with self.reader() as session:
            templates = await TemplateRepository(session).list_active()
        self.notifier.mode_titles = {t.slug: dict(t.titles) for t in templates}

    async def _sweep_forever(self) -> None:
        sweeps = 0
        while True:
            await asyncio.sleep(self.settings.sweep_interval)
            try:
                if not await self.sweeper_lock.held():
                    continue  # another worker sweeps; this one takes over if it dies
                sweeps += 1
                await self.runner.sweep()
                if isinstance(self.queue, StreamQueue):
                    await self.queue.trim()
                await self.settle_money()
                if sweeps % USAGE_REFRESH_EVERY == 0:
                    await self._refresh_usage_counts()
            except Exception:
                log.exception("sweeper failed; trying again at the next interval")

    async def _reconcile_stars_forever(self) -> None:
        interval = self.settings.stars_reconcile_interval
        while True:
            await asyncio.sleep(interval)
            if not await self.sweeper_lock.held():
                continue
            # A payment younger than this is most likely still on its way as an update.
            await self.reconcile_stars(settle_after=min(interval, SETTLE_AFTER_SECONDS))

    async def reconcile_stars(self, *, settle_after: float) -> None:
        """Compare Telegram's record of Star transactions with ours (services.stars_sync).

        A failure is logged and tried again at the next interval: it must never stop
        the bot, and nothing is lost meanwhile (Telegram keeps the record).
        """
        assert self.infra.stars is not None
        try:
            async with self._money_lock, self.sessionmaker() as session:
                services = Services(session, self.infra)
                await services.stars_sync.run(
                    self.infra.stars,
                    self.infra.money_notifier,
                    settle_after=timedelta(seconds=settle_after),
                )
                await services.refunds.process_due(self.infra.stars, self.infra.money_notifier)
        except Exception as error:
            log.warning(
                "Stars reconciliation failed (%s: %s); trying again in %.0f s",
                type(error).__name__,
                error,
                self.settings.stars_reconcile_interval,
            )

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

    def readiness(self) -> dict[str, bool]:
        """For ``/readyz``, besides the database: Telegram answered getMe at start, and
        updates are being received (polling, or the webhook set)."""
        checks: dict[str, bool] = {}
        if self.roles & {Role.BOT, Role.WORKER}:
            checks["telegram"] = self._telegram_answered
        if Role.BOT in self.roles:
            checks["bot"] = self._receiving
        return checks

    def bind_http(self) -> HttpServer:
        """The HTTP server on HTTP_HOST:HTTP_PORT, its port taken now (a busy one is a
        StartupError naming HTTP_PORT); ``serve_http`` starts serving."""
        if self.http is None:
            app = create_app(
                self,
                webhook=Role.BOT in self.roles and self.settings.telegram_mode == "webhook",
                api=Role.API in self.roles,
            )
            self.http = HttpServer(app, self.settings.http_host, self.settings.http_port)
            self.http.bind()
        return self.http

    async def serve_http(self) -> HttpServer:
        server = self.bind_http()
        await server.start()
        return server

    async def run_polling(self, *, handle_signals: bool = True, polling_timeout: int = 25) -> None:
        # getUpdates is refused while a webhook is set (start_polling does not delete it).
        await self.bot.delete_webhook()
        if self._stop_requested.is_set():
            return
        self._receiving = True
        try:
            await self.dispatcher.start_polling(
                self.bot,
                polling_timeout=polling_timeout,
                handle_signals=handle_signals,
                close_bot_session=False,
            )
        finally:
            self._receiving = False

    async def run_webhook(self, *, handle_signals: bool = True) -> None:
        """Register PUBLIC_BASE_URL/telegram/webhook and serve it (``serve_http`` first)
        until SIGINT/SIGTERM or ``stop()``. Updates arrive at the HTTP server; this
        process never calls its public URL itself."""
        settings = self.settings
        assert settings.webhook_secret is not None, "checked by the settings"
        if settings.public_base_url.lower().startswith("http://"):
            log.warning(
                "PUBLIC_BASE_URL is http, not https: Telegram accepts only https webhooks "
                "(fine for the emulator or local use)"
            )
        stop = self._stop_requested
        await self.bot.set_webhook(
            url=settings.webhook_url,
            secret_token=settings.webhook_secret.get_secret_value(),
            allowed_updates=self.dispatcher.resolve_used_update_types(),
            max_connections=settings.webhook_max_connections,
        )
        log.info("webhook set: %s", settings.webhook_url)
        loop = asyncio.get_running_loop()
        installed: list[signal.Signals] = []
        if handle_signals:
            for wanted in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                    loop.add_signal_handler(wanted, stop.set)
                    installed.append(wanted)
        workflow = {"dispatcher": self.dispatcher, **self.dispatcher.workflow_data}
        await self.dispatcher.emit_startup(bot=self.bot, **workflow)
        self._receiving = True
        try:
            await stop.wait()
        finally:
            self._receiving = False
            for wanted in installed:
                loop.remove_signal_handler(wanted)
            await self.dispatcher.emit_shutdown(bot=self.bot, **workflow)
            log.info("webhook mode stopped")

    async def run_until_stopped(self, *, handle_signals: bool = True) -> None:
        """A process without the bot role: serve until SIGINT/SIGTERM or ``stop()``."""
        loop = asyncio.get_running_loop()
        installed: list[signal.Signals] = []
        if handle_signals:
            for wanted in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                    loop.add_signal_handler(wanted, self._stop_requested.set)
                    installed.append(wanted)
        try:
            await self._stop_requested.wait()
        finally:
            for wanted in installed:
                loop.remove_signal_handler(wanted)

    async def stop(self) -> None:
        self._stop_requested.set()
        with contextlib.suppress(RuntimeError):  # raised when polling is not running
            await self.dispatcher.stop_polling()

    async def close(self) -> None:
        if self.http is not None:
            await self.http.stop()  # requests in progress are answered first
            # Wake-ups the provider callbacks are still retrying (the sweeper has them).
            callbacks = getattr(self.http.app.state, "provider_callbacks", None)
            if callbacks is not None:
                await callbacks.aclose()
        for task in (self._sweeper, self._stars_sync):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        # SIGTERM: no new steps; the running ones get SHUTDOWN_GRACE seconds, the rest
        # are handed back to the other workers (their leases released).
        await self.queue.stop(drain_timeout=self.settings.shutdown_grace)
        await self.runner.hand_back()
        await self.sweeper_lock.release()
        await self.api_callbacks.aclose()
        for provider in self.infra.providers.values():
            await provider.aclose()
        await self.bot.session.close()
        await self.dispatcher.fsm.close()  # the conversation storage and its isolation
        await close_storage(self.infra.storage)
        if self.redis is not None:
            await self.redis.aclose()
        await self.engine.dispose()


async def run_bot(settings: Settings, roles: frozenset[Role] = EMBEDDED) -> None:
    """Take the HTTP port, check, migrate, then long-poll (or serve the webhook) until
    SIGINT/SIGTERM (which may also come while start-up is still waiting for Telegram:
    then it stops at once, cleanly). The HTTP server answers from the start. Without
    the bot role, the process serves (API, workers) until SIGINT/SIGTERM."""
    from lumigram.catalog import CatalogError
    from lumigram.startup import (
        StartupError,
        catalog_problem,
        interruptible,
        prepare_sqlite_directory,
    )

    prepare_sqlite_directory(settings.database_url.get_secret_value())
    try:
        app = BotApplication(settings, roles=roles)
    except CatalogError as exc:
        raise StartupError(catalog_problem(exc, settings.catalog_file)) from None
    try:
        app.bind_http()  # a busy HTTP_PORT is one line, before anything else is done
        async with interruptible() as interrupted:
            http = await app.serve_http()
            await app.prepare()
        if interrupted.signal is None:
            log.info("HTTP server on %s", http.url)
            if Role.BOT not in roles:
                await app.run_until_stopped()
            elif settings.telegram_mode == "webhook":
                await app.run_webhook()
            else:
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


async def migrate(settings: DatabaseSettings) -> str:
    """``lumigram migrate``; the one line to print: "database at revision …, N migrations
    applied"."""
    from lumigram.startup import migrate_database

    return str(await migrate_database(settings.database_url.get_secret_value()))
