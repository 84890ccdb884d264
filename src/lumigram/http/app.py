"""The FastAPI app factory."""

from __future__ import annotations

from typing import Protocol

from aiogram import Bot, Dispatcher
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from lumigram import __version__
from lumigram.config import Settings
from lumigram.container import Infrastructure
from lumigram.http.metrics import Metrics
from lumigram.http.webhook import WebhookFeeder


class HttpHost(Protocol):
    """What the HTTP server needs from the running application (``BotApplication``)."""

    settings: Settings
    infra: Infrastructure
    bot: Bot
    dispatcher: Dispatcher
    sessionmaker: async_sessionmaker[AsyncSession]
    reader: async_sessionmaker[AsyncSession]  # read-only sessions (no write lock)
    metrics: Metrics

    def readiness(self) -> dict[str, bool]:
        """The checks besides the database, e.g. {"telegram": True, "bot": False}."""
        ...


def create_app(host: HttpHost, *, webhook: bool | None = None, api: bool = True) -> FastAPI:
    """The app for ``host``; the webhook route only in webhook mode (or when asked); the
    API under /v1, its seed aliases and the OpenAPI docs (/docs) unless ``api`` is off."""
    from lumigram.http.routes import callbacks, health, metrics, telegram

    app = FastAPI(
        title="Lumigram",
        version=__version__,
        docs_url="/docs" if api else None,
        redoc_url=None,
        openapi_url="/openapi.json" if api else None,
    )
    app.state.host = host
    app.state.feeder = WebhookFeeder(host.dispatcher, host.bot)
    app.include_router(health.router)
    app.include_router(metrics.router)
    if webhook if webhook is not None else host.settings.telegram_mode == "webhook":
        app.include_router(telegram.router)
    if api:  # the API role: /v1, the provider callbacks and the signed file links
        app.state.callback_verifiers = callbacks.verifiers_for(host)  # providers with webhooks
        app.include_router(callbacks.router)
        from lumigram.http.routes import files, v1

        app.include_router(files.router)
        v1.install(app, host.settings)  # routes, problem+json errors, the rate limiter
    return app
