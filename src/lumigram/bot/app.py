"""Assembling the aiogram Bot and Dispatcher."""

from __future__ import annotations

from collections.abc import Sequence

from aiogram import BaseMiddleware, Bot, Dispatcher, Router
from aiogram.client.default import DefaultBotProperties
from aiogram.enums import ParseMode
from aiogram.fsm.storage.base import BaseEventIsolation, BaseStorage
from aiogram.fsm.storage.memory import MemoryStorage, SimpleEventIsolation
from aiogram.utils.i18n import I18n
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from lumigram.bot.handlers import get_routers
from lumigram.bot.i18n import UserLocaleMiddleware
from lumigram.bot.middlewares.db import DbSessionMiddleware
from lumigram.bot.middlewares.throttling import (
    ThrottlingMiddleware,
    TokenBuckets,
    UserBuckets,
)
from lumigram.bot.middlewares.users import UserMiddleware
from lumigram.bot.notifier import TelegramNotifier
from lumigram.bot.session import FloodLimitMiddleware, build_session
from lumigram.config import Settings
from lumigram.container import Infrastructure


def build_bot(settings: Settings, flood: FloodLimitMiddleware | None = None) -> Bot:
    """``flood``: outgoing calls wait for Telegram's flood limits (shared by every
    process through Redis in scale-out); without it 429s are retried as Telegram asks."""
    return Bot(
        token=settings.bot_token.get_secret_value(),
        session=build_session(settings.telegram_api_base, flood=flood),
        default=DefaultBotProperties(parse_mode=ParseMode.HTML),
    )


def build_dispatcher(
    infra: Infrastructure,
    sessionmaker: async_sessionmaker[AsyncSession],
    i18n: I18n,
    notifier: TelegramNotifier,
    *,
    storage: BaseStorage | None = None,
    events_isolation: BaseEventIsolation | None = None,
    user_buckets: UserBuckets | None = None,
    extra_routers: Sequence[Router] = (),
    update_middlewares: Sequence[BaseMiddleware] = (),
) -> Dispatcher:
    """The dispatcher with every feature router; ``extra_routers`` (plugins, tests) go first.

    ``update_middlewares`` (metrics, the webhook's outcome) see every update first,
    throttled ones included, and the exceptions of everything after them.

    ``storage`` and ``events_isolation`` come from ``bot.fsm.build_fsm`` (the database,
    or Redis shared by replicas); without them, memory and one process (tests).
    ``user_buckets``: the per-user throttling (shared in Redis by replicas, or this
    process's own)."""
    settings = infra.settings
    dispatcher = Dispatcher(
        storage=storage or MemoryStorage(),
        # One update at a time per user: an album of reference photos must not race
        # on the conversation state (across replicas too, with Redis).
        events_isolation=events_isolation or SimpleEventIsolation(),
        settings=settings,
        i18n=i18n,
        notifier=notifier,
    )
    # Outer middlewares on `update` run in registration order, after aiogram's own
    # error and user-context middlewares, so `event_from_user` is known to all.
    for middleware in update_middlewares:
        dispatcher.update.outer_middleware(middleware)
    dispatcher.update.outer_middleware(
        ThrottlingMiddleware(
            user_buckets or TokenBuckets(settings.throttle_rate, settings.throttle_burst), i18n
        )
    )
    dispatcher.update.outer_middleware(DbSessionMiddleware(sessionmaker, infra))
    dispatcher.update.outer_middleware(UserMiddleware(i18n))
    dispatcher.update.outer_middleware(UserLocaleMiddleware(i18n))
    dispatcher.include_routers(*extra_routers, *get_routers())
    return dispatcher
