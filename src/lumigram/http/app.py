"""The FastAPI app factory."""

from __future__ import annotations

from typing import Protocol

from aiogram import Bot, Dispatcher
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from lumigram import __version__
from lumigram.config import Settings
from lumigram.http.metrics import Metrics
from lumigram.http.webhook import WebhookFeeder


class HttpHost(Protocol):
    """What the HTTP server needs from the running application (``BotApplication``)."""

    settings: Settings
    bot: Bot
    dispatcher: Dispatcher
    sessionmaker: async_sessionmaker[AsyncSession]
    metrics: Metrics

    def readiness(self) -> dict[str, bool]:
        """The checks besides the database, e.g. {"telegram": True, "bot": False}."""
        ...


def create_app(host: HttpHost, *, webhook: bool | None = None) -> FastAPI:
    """The app for ``host``; the webhook route only in webhook mode (or when asked)."""
    from lumigram.http.routes import health, metrics, telegram

    app = FastAPI(
        title="Lumigram",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.host = host
    app.state.feeder = WebhookFeeder(host.dispatcher, host.bot)
    app.include_router(health.router)
    app.include_router(metrics.router)
    if webhook if webhook is not None else host.settings.telegram_mode == "webhook":
        app.include_router(telegram.router)
    return app
