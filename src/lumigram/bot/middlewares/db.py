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
        # Services commit their own work; closing rolls back anything left open.
        async with self._sessionmaker() as session:
            data["services"] = Services(session, self._infra)
            return await handler(event, data)
