"""Prometheus metrics: update counters and latency (an aiogram middleware), job outcomes,
durations and provider errors (``MetricsJobEvents``, an observer of the job events), and
the database's jobs, queue depth, payments and pending refunds counted at scrape time."""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject, Update
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from lumigram.db import tables
from lumigram.domain.jobs import JobEvent, JobEventKind, JobStatus
from lumigram.domain.money import RefundState

log = logging.getLogger(__name__)

# Handlers answer in milliseconds; a slow one waits on Telegram or the database.
HANDLER_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Images take seconds, videos minutes; the job deadline is 15 minutes by default.
JOB_BUCKETS = (1.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 300.0, 600.0)
OUTCOMES = {
    JobEventKind.SUCCEEDED: "succeeded",
    JobEventKind.FAILED: "failed",
    JobEventKind.CANCELLED: "cancelled",
}


class Metrics:
    """One application's metrics, in a registry of its own (not prometheus' global one)."""

    def __init__(self, *, queue_size: Callable[[], int] | None = None) -> None:
        """``queue_size``: job ids waiting in the in-process dispatch queue (read at scrape)."""
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
        self.queue_depth = Gauge(
            "lumigram_queue_depth",
            "Jobs due and waiting for a worker: queued, or running with no live lease and "
            "their next step due",
            registry=self.registry,
        )
        self.job_duration = Histogram(
            "lumigram_job_duration_seconds",
            "Time from a job's creation to its results, by catalog model (succeeded jobs)",
            ["model"],
            buckets=JOB_BUCKETS,
            registry=self.registry,
        )
        self.job_outcomes = Counter(
            "lumigram_job_outcomes",
            "Jobs that ended, by outcome (succeeded, failed, cancelled)",
            ["outcome"],
            registry=self.registry,
        )
        self.provider_errors = Counter(
            "lumigram_provider_errors",
            "Failed jobs by provider and error class (transient, safety, invalid_input, "
            "unavailable, timeout, internal)",
            ["provider", "error_class"],
            registry=self.registry,
        )
        for status in JobStatus:
            self.jobs.labels(status=status.value)
        for outcome in OUTCOMES.values():
            self.job_outcomes.labels(outcome=outcome)
        if queue_size is not None:
            self.dispatch_queue_size = Gauge(
                "lumigram_dispatch_queue_size",
                "Job ids waiting in the in-process dispatch queue for a free worker",
                registry=self.registry,
            )
            self.dispatch_queue_size.set_function(lambda: float(queue_size()))

    async def refresh(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        """The database gauges: a few COUNT queries, run at each scrape."""
        jobs, payments = tables.jobs.c, tables.payments.c
        now = datetime.now(UTC)
        async with sessionmaker() as session:
            rows = await session.execute(select(jobs.status, func.count()).group_by(jobs.status))
            by_status: dict[str, int] = {str(status): int(count) for status, count in rows}
            waiting = await session.scalar(
                select(func.count())
                .select_from(tables.jobs)
                .where(
                    or_(
                        jobs.status == JobStatus.QUEUED.value,
                        and_(
                            jobs.status == JobStatus.RUNNING.value,
                            jobs.next_attempt_at <= now,
                            or_(jobs.lease_expires_at.is_(None), jobs.lease_expires_at < now),
                        ),
                    )
                )
            )
            pending = await session.scalar(
                select(func.count())
                .select_from(tables.payments)
                .where(payments.refund_state == RefundState.PENDING.value)
            )
            total = await session.scalar(select(func.count()).select_from(tables.payments))
        for status in {*(s.value for s in JobStatus), *by_status}:
            self.jobs.labels(status=status).set(by_status.get(status, 0))
        self.queue_depth.set(waiting or 0)
        self.refunds_pending.set(pending or 0)
        self.payments.set(total or 0)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsJobEvents:
    """An observer of the job events (the ``JobEvents`` port): outcomes, durations and
    provider errors. It never raises, and counts a job's end once even when the event
    comes again (SUCCEEDED is published at least once)."""

    REMEMBERED = 10_000  # ended jobs kept to recognise a repeated event

    def __init__(
        self, metrics: Metrics, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self.metrics = metrics
        self._clock = clock
        self._ended: OrderedDict[int, None] = OrderedDict()

    async def publish(self, event: JobEvent) -> None:
        try:
            self._record(event)
        except Exception:  # an observer never fails the job
            log.exception("metrics: job event %s not recorded", event.kind)

    def _record(self, event: JobEvent) -> None:
        outcome = OUTCOMES.get(event.kind)
        if outcome is None:
            return
        job = event.job
        if job.id is not None:
            if job.id in self._ended:
                return
            self._ended[job.id] = None
            if len(self._ended) > self.REMEMBERED:
                self._ended.popitem(last=False)
        self.metrics.job_outcomes.labels(outcome=outcome).inc()
        if event.kind is JobEventKind.SUCCEEDED:
            seconds = (self._clock() - job.created_at).total_seconds()
            self.metrics.job_duration.labels(model=job.model_id).observe(max(seconds, 0.0))
        elif event.kind is JobEventKind.FAILED:
            self.metrics.provider_errors.labels(
                provider=job.provider, error_class=str(job.error_class or "unknown")
            ).inc()


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
