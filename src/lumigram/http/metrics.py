"""Prometheus metrics: update counters and latency (an aiogram middleware), and the
database's jobs, payments and pending refunds counted at scrape time."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject, Update
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from lumigram.db import tables
from lumigram.domain.jobs import JobStatus
from lumigram.domain.money import RefundState

# Handlers answer in milliseconds; a slow one waits on Telegram or the database.
HANDLER_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    """One application's metrics, in a registry of its own (not prometheus' global one)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.updates = Counter(
            "lumigram_updates",
            "Telegram updates received, by type",
            ["type"],
            registry=self.registry,
        )
        self.update_errors = Counter(
            "lumigram_update_errors",
            "Telegram updates whose handling raised, by type",
            ["type"],
            registry=self.registry,
        )
        self.handler_seconds = Histogram(
            "lumigram_handler_seconds",
            "Time spent handling one update (middlewares and handler), by type",
            ["type"],
            buckets=HANDLER_BUCKETS,
            registry=self.registry,
        )
        self.jobs = Gauge(
            "lumigram_jobs",
            "Generation jobs in the database, by status",
            ["status"],
            registry=self.registry,
        )
        self.refunds_pending = Gauge(
            "lumigram_refunds_pending",
            "Automatic Star refunds marked but not yet accepted by Telegram",
            registry=self.registry,
        )
        self.payments = Gauge(
            "lumigram_payments_total",
            "Star payments recorded in the database (refunded ones included)",
            registry=self.registry,
        )
        for status in JobStatus:
            self.jobs.labels(status=status.value)

    async def refresh(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        """The database gauges: a few COUNT queries, run at each scrape."""
        jobs, payments = tables.jobs.c, tables.payments.c
        async with sessionmaker() as session:
            rows = await session.execute(select(jobs.status, func.count()).group_by(jobs.status))
            by_status: dict[str, int] = {str(status): int(count) for status, count in rows}
            pending = await session.scalar(
                select(func.count())
                .select_from(tables.payments)
                .where(payments.refund_state == RefundState.PENDING.value)
            )
            total = await session.scalar(select(func.count()).select_from(tables.payments))
        for status in {*(s.value for s in JobStatus), *by_status}:
            self.jobs.labels(status=status).set(by_status.get(status, 0))
        self.refunds_pending.set(pending or 0)
        self.payments.set(total or 0)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class UpdateMetricsMiddleware(BaseMiddleware):
    """An outer middleware on ``update``: counts each update by type and times it."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        kind = _update_type(event)
        self.metrics.updates.labels(type=kind).inc()
        started = time.perf_counter()
        try:
            return await handler(event, data)
        except Exception:
            self.metrics.update_errors.labels(type=kind).inc()
            raise
        finally:
            self.metrics.handler_seconds.labels(type=kind).observe(time.perf_counter() - started)


def _update_type(event: TelegramObject) -> str:
    if isinstance(event, Update):
        try:
            return event.event_type
        except Exception:  # an update type aiogram does not know yet
            return "unknown"
    return type(event).__name__.lower()
