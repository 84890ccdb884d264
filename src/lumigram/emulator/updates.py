"""Update delivery: the per-bot queue behind getUpdates, and webhook pushes.

Updates stay pending until confirmed: by a later ``getUpdates`` whose ``offset`` is
greater than their id, or by a 2xx answer of the webhook. ``allowed_updates`` is
remembered between calls, as Telegram does, and filters updates as they are created.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from .errors import GET_UPDATES_CONFLICT, conflict

log = logging.getLogger(__name__)

# "Defaults to all update types except chat_member, message_reaction, and
# message_reaction_count" (getUpdates.allowed_updates)
OPT_IN_UPDATES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})


class Notifier:
    """Wakes every coroutine waiting for "something changed"."""

    def __init__(self) -> None:
        self._waiters: list[asyncio.Future[None]] = []

    def notify(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def wait(self, timeout: float | None) -> bool:
        """Wait for the next notification; False on timeout."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            return False
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
        return True


class UpdateQueue:
    def __init__(self, update_types: Iterable[str]) -> None:
        self._all_types = list(update_types)
        self.pending: list[dict[str, Any]] = []
        self.next_update_id = 1
        self.allowed_updates: list[str] = []  # [] = Telegram's default set
        self.changed = Notifier()
        self._poll_generation = 0
        self.last_poll: float | None = None
        self.closed = False

    def close(self) -> None:
        """Release pending long polls (the server is shutting down)."""
        self.closed = True
        self.changed.notify()

    def allows(self, update_type: str) -> bool:
        if self.allowed_updates:
            return update_type in self.allowed_updates
        return update_type not in OPT_IN_UPDATES

    def set_allowed(self, allowed: list[str] | None) -> None:
        """``None`` keeps the previous setting; an empty list restores the default."""
        if allowed is not None:
            self.allowed_updates = [a for a in allowed if a in self._all_types]

    def push(self, update_type: str, payload: dict[str, Any]) -> dict[str, Any] | None:
        if not self.allows(update_type):
            return None
        return self.push_raw({update_type: payload})

    def push_raw(self, body: dict[str, Any]) -> dict[str, Any]:
        """Queue an update as given (the id is assigned here unless present)."""
        update = dict(body)
        if "update_id" not in update:
            update = {"update_id": self.next_update_id, **update}
        if isinstance(update["update_id"], int):
            self.next_update_id = max(self.next_update_id, update["update_id"] + 1)
        self.pending.append(update)
        self.changed.notify()
        return update

    def confirm(self, offset: int) -> None:
        if offset < 0:  # -N: keep only the last N updates
            keep = -offset
            self.pending = self.pending[-keep:] if keep else []
        else:
            self.pending = [u for u in self.pending if _update_id(u) >= offset]

    def drop_pending(self) -> None:
        self.pending.clear()
        self.changed.notify()

    def pop_first(self) -> None:
        if self.pending:
            self.pending.pop(0)
            self.changed.notify()

    async def get_updates(self, offset: int | None, limit: int, timeout: float) -> list[Any]:
        """getUpdates: confirm, then return up to ``limit`` updates, waiting if none."""
        self._poll_generation += 1
        generation = self._poll_generation
        self.last_poll = time.monotonic()
        if offset is not None:
            self.confirm(offset)
        self.changed.notify()  # lets an older long poll notice it was superseded
        deadline = time.monotonic() + max(timeout, 0.0)
        while True:
            if generation != self._poll_generation:
                raise conflict(GET_UPDATES_CONFLICT)
            if self.pending:
                return self.pending[:limit]
            remaining = deadline - time.monotonic()
            if self.closed:
                return []
            if remaining <= 0:
                return []
            await self.changed.wait(remaining)


def _update_id(update: dict[str, Any]) -> int:
    value = update.get("update_id")
    return value if isinstance(value, int) else 0


@dataclass
class WebhookConfig:
    url: str
    secret_token: str | None = None
    max_connections: int = 40
    ip_address: str | None = None
    last_error_date: int | None = None
    last_error_message: str | None = None
    delivered: int = 0
    # Every POST made: (update_id, HTTP status, or 0 when the connection failed).
    attempts: list[tuple[int, int]] = field(default_factory=list)
    # Answers to drop as if the connection broke after the webhook answered (a test's
    # ``lose_webhook_answers``): Telegram then delivers the same update again.
    lose_answers: int = 0
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    def info(self, pending: int, allowed: list[str]) -> dict[str, Any]:
        result: dict[str, Any] = {
            "url": self.url,
            "has_custom_certificate": False,
            "pending_update_count": pending,
            "max_connections": self.max_connections,
        }
        if self.ip_address:
            result["ip_address"] = self.ip_address
        if self.last_error_date is not None:
            result["last_error_date"] = self.last_error_date
            result["last_error_message"] = self.last_error_message or ""
        if allowed:
            result["allowed_updates"] = list(allowed)
        return result


# Called with (bot token, answer body, content type) when a webhook answers with a
# method call in its body, which Telegram executes.
WebhookReply = Callable[[str, bytes, str], Awaitable[None]]


class WebhookPusher:
    """Pushes one bot's pending updates to its webhook, in order, retrying on failure."""

    def __init__(
        self,
        token: str,
        queue: UpdateQueue,
        config: WebhookConfig,
        session: aiohttp.ClientSession,
        on_reply: WebhookReply,
        retry_delays: tuple[float, ...],
    ) -> None:
        self.token = token
        self.queue = queue
        self.config = config
        self.session = session
        self.on_reply = on_reply
        self.retry_delays = retry_delays or (0.5,)

    async def run(self) -> None:
        failures = 0
        while True:
            if not self.queue.pending:
                await self.queue.changed.wait(None)
                continue
            update = self.queue.pending[0]
            error = await self._post(update)
            if error is None:
                failures = 0
                if self.queue.pending and self.queue.pending[0] is update:
                    self.queue.pop_first()
                self.config.delivered += 1
                continue
            self.config.last_error_date = int(time.time())
            self.config.last_error_message = error
            delay = self.retry_delays[min(failures, len(self.retry_delays) - 1)]
            failures += 1
            await asyncio.sleep(delay)

    async def _post(self, update: dict[str, Any]) -> str | None:
        headers = {"Content-Type": "application/json"}
        if self.config.secret_token:
            headers["X-Telegram-Bot-Api-Secret-Token"] = self.config.secret_token
        try:
            async with self.session.post(
                self.config.url,
                data=json.dumps(update, ensure_ascii=False).encode(),
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=60),
            ) as response:
                body = await response.read()
                self.config.attempts.append((_update_id(update), response.status))
                if 200 <= response.status < 300 and self.config.lose_answers > 0:
                    self.config.lose_answers -= 1
                    return "Connection failed: the answer was lost"
                if not 200 <= response.status < 300:
                    return f"Wrong response from the webhook: {response.status} {response.reason}"
                content_type = response.headers.get("Content-Type", "")
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            self.config.attempts.append((_update_id(update), 0))
            return f"Connection failed: {type(exc).__name__}: {exc}"
        if body.strip():
            try:
                await self.on_reply(self.token, body, content_type)
            except Exception:  # the reply is best effort; the update is delivered anyway
                log.exception("executing the webhook reply failed")
        return None
