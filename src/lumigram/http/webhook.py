"""Feeding webhook updates to the dispatcher: once each, answered only when handled.

Telegram retries an update until the webhook answers 2xx, so an update whose answer
was lost (a timeout, a dropped connection) arrives again: it is remembered by
``update_id`` and answered 200 without being handled twice. A retry that arrives
while the first delivery is still being handled waits for that one's outcome.
Handling runs in a task of its own, so a client that goes away does not cancel it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiogram import BaseMiddleware, Bot, Dispatcher
from aiogram.types import TelegramObject, Update

log = logging.getLogger(__name__)
REMEMBERED_UPDATES = 10_000  # Telegram keeps undelivered updates for 24 hours, ids grow
OUTCOME_KEY = "webhook_outcome"


@dataclass
class HandlingOutcome:
    failed: bool = False


class HandlingOutcomeMiddleware(BaseMiddleware):
    """An outer middleware on ``update`` (inside aiogram's error middleware): notes that
    handling raised, even when the error handler then answers the user, so the webhook
    can answer 500 and Telegram delivers the update again."""

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        try:
            return await handler(event, data)
        except Exception:
            outcome = data.get(OUTCOME_KEY)
            if isinstance(outcome, HandlingOutcome):
                outcome.failed = True
            raise


class WebhookFeeder:
    def __init__(
        self, dispatcher: Dispatcher, bot: Bot, *, remember: int = REMEMBERED_UPDATES
    ) -> None:
        self.dispatcher = dispatcher
        self.bot = bot
        self.remember = remember
        self._handled: OrderedDict[int, None] = OrderedDict()
        self._in_flight: dict[int, asyncio.Task[bool]] = {}

    def is_handled(self, update_id: int) -> bool:
        return update_id in self._handled

    async def feed(self, update: Update) -> bool:
        """Handle ``update`` once; True when it was handled (now or before) without error."""
        update_id = update.update_id
        if update_id in self._handled:
            log.info("update %s was handled already (a retry); not handled again", update_id)
            return True
        task = self._in_flight.get(update_id)
        if task is None:
            task = asyncio.create_task(self._handle(update), name=f"lumigram-update-{update_id}")
            self._in_flight[update_id] = task
            task.add_done_callback(lambda done: self._finished(update_id, done))
        return await asyncio.shield(task)

    async def _handle(self, update: Update) -> bool:
        outcome = HandlingOutcome()
        try:
            await self.dispatcher.feed_update(self.bot, update, **{OUTCOME_KEY: outcome})
        except Exception:
            log.exception("update %s failed; Telegram will deliver it again", update.update_id)
            return False
        if outcome.failed:
            log.warning("update %s failed; Telegram will deliver it again", update.update_id)
        return not outcome.failed

    def _finished(self, update_id: int, task: asyncio.Task[bool]) -> None:
        self._in_flight.pop(update_id, None)
        if task.cancelled() or task.exception() is not None or not task.result():
            return
        self._handled[update_id] = None
        while len(self._handled) > self.remember:
            self._handled.popitem(last=False)

    async def drain(self) -> None:
        """Wait for the updates being handled (at shutdown)."""
        if self._in_flight:
            await asyncio.gather(*self._in_flight.values(), return_exceptions=True)
