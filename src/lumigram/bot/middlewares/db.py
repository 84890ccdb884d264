"""One database session (and the services over it) per update."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from lumigram.container import Infrastructure, Services


class DbSessionMiddleware(BaseMiddleware):
    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], infra: Infrastructure
    ) -> None:
        self._sessionmaker = sessionmaker
        self._infra = infra

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        # Use cases commit their own work; closing rolls back anything left open. What
        # they scheduled for afterwards (a new job to a worker) runs once the handler has
        # rendered (even if it failed after the use case: the job exists either way).
        async with self._sessionmaker() as session:
            services = data["services"] = Services(session, self._infra)
            try:
                return await handler(event, data)
            finally:
                await services.run_followups()
