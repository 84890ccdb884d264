"""Per-user rate limit: a token bucket per user; excess updates are dropped.

A user who goes over the limit gets at most one notice until they slow down.
Runs before the database is touched, so a flood costs no queries. Payments are
never throttled (``money.is_payment``). ``TokenBuckets`` is one process's;
``RedisTokenBuckets`` the same buckets in Redis, shared by every bot replica (pick with
``build_user_buckets``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from aiogram import BaseMiddleware
from aiogram.types import CallbackQuery, Message, TelegramObject, Update
from aiogram.types import User as TelegramUser
from aiogram.utils.i18n import I18n

from lumigram.bot import render
from lumigram.bot.middlewares.money import is_payment
from lumigram.config import Settings
from lumigram.domain.users import pick_language
from lumigram.limits.buckets import LimiterUnavailableError
from lumigram.limits.redis_scripts import RedisThrottle

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger(__name__)

# Buckets idle this long are full again and can be forgotten.
FORGET_AFTER_SECONDS = 600.0


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float
    notified: bool = False


class TokenBuckets:
    """Pure rate-limit state, separate from aiogram so it is easy to test."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic):
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._buckets: dict[int, _Bucket] = {}
        self._last_sweep = clock()

    def take(self, key: int) -> tuple[bool, bool]:
        """Spend one token. Returns (allowed, notify): notify is True once per overflow."""
        now = self._clock()
        self._sweep(now)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(tokens=float(self.burst), updated=now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            if bucket.tokens >= 1.0:
                bucket.notified = False
            return True, False
        notify = not bucket.notified
        bucket.notified = True
        return False, notify

    def _sweep(self, now: float) -> None:
        if now - self._last_sweep < FORGET_AFTER_SECONDS:
            return
        self._last_sweep = now
        stale = [k for k, b in self._buckets.items() if now - b.updated > FORGET_AFTER_SECONDS]
        for key in stale:
            del self._buckets[key]


class RedisTokenBuckets:
    """``TokenBuckets`` in Redis: one bucket per user for all the bot's replicas, with the
    same answers (the notice flag lives in the bucket, updated in the same atomic step).

    Without Redis (down, unreachable) updates are let through, with a warning."""

    def __init__(
        self, redis: Redis, rate: float, burst: int, *, prefix: str = "lumigram:limits:user"
    ) -> None:
        self.rate = rate
        self.burst = burst
        self.prefix = prefix
        self._throttle = RedisThrottle(redis)
        self._warned_at = -1e9

    async def take(self, key: int) -> tuple[bool, bool]:
        """Spend one token. Returns (allowed, notify): notify is True once per overflow."""
        try:
            return await self._throttle.take(f"{self.prefix}:{key}", self.rate, self.burst)
        except LimiterUnavailableError as exc:
            now = time.monotonic()
            if now - self._warned_at > 60:
                self._warned_at = now
                log.warning("per-user throttling unavailable, letting updates through: %s", exc)
            return True, False


class UserBuckets(Protocol):
    """What ``ThrottlingMiddleware`` asks: ``TokenBuckets`` (answers at once) or
    ``RedisTokenBuckets`` (awaited)."""

    def take(self, key: int) -> tuple[bool, bool] | Awaitable[tuple[bool, bool]]: ...


def build_user_buckets(settings: Settings, redis: Redis | None = None) -> UserBuckets:
    """Shared buckets with Redis, this process's without."""
    if redis is None:
        return TokenBuckets(settings.throttle_rate, settings.throttle_burst)
    return RedisTokenBuckets(redis, settings.throttle_rate, settings.throttle_burst)


class ThrottlingMiddleware(BaseMiddleware):
    def __init__(self, buckets: UserBuckets, i18n: I18n) -> None:
        self._buckets = buckets
        self._i18n = i18n

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        sender: TelegramUser | None = data.get("event_from_user")
        if sender is None:
            return await handler(event, data)
        inner = event.event if isinstance(event, Update) else event
        if not isinstance(inner, Message | CallbackQuery) or is_payment(inner):
            # Money that moved (a successful or refunded payment arrives as a Message),
            # pre-checkout queries and subscription changes are never dropped or delayed.
            return await handler(event, data)
        taken = self._buckets.take(sender.id)
        if not isinstance(taken, tuple):
            taken = await taken
        allowed, notify = taken
        if allowed:
            return await handler(event, data)
        locale = pick_language(sender.language_code, self._i18n.default_locale)
        with self._i18n.context(), self._i18n.use_locale(locale):
            text = render.throttled()
        if isinstance(inner, CallbackQuery):
            # A callback query must be answered anyway, or the button spins.
            await inner.answer(text if notify else None)
        elif notify:
            await inner.answer(text)
        return None
