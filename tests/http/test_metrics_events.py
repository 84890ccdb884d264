"""The job metrics: ``MetricsJobEvents`` observes job events; ``/metrics`` shows them."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from lumigram.db import tables
from lumigram.domain.jobs import ErrorClass, Job, JobEvent, JobEventKind, JobStatus, JobStep
from lumigram.http.metrics import Metrics, MetricsJobEvents
from tests.http.conftest import HttpRunner
from tests.http.test_routes import sample

START = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def job(job_id: int, *, model: str = "flux-pro", provider: str = "replicate") -> Job:
    return Job(
        user_id=1,
        language="en",
        model_id=model,
        provider=provider,
        provider_model="black-forest-labs/flux-1.1-pro",
        mode="custom",
        prompt="a fox",
        final_prompt="a fox",
        created_at=START,
        updated_at=START,
        next_attempt_at=START,
        id=job_id,
    )


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


async def test_outcomes_durations_and_provider_errors_are_recorded() -> None:
    metrics = Metrics()
    clock = Clock()
    events = MetricsJobEvents(metrics, clock=clock)
    value = metrics.registry.get_sample_value

    assert value("lumigram_job_outcomes_total", {"outcome": "succeeded"}) == 0
    clock.now = START + timedelta(seconds=7)
    await events.publish(JobEvent(JobEventKind.SUCCEEDED, job(1)))
    clock.now = START + timedelta(seconds=200)
    await events.publish(JobEvent(JobEventKind.SUCCEEDED, job(2, model="video")))
    # SUCCEEDED comes at least once: a repeat is not counted again.
    await events.publish(JobEvent(JobEventKind.SUCCEEDED, job(1)))

    assert value("lumigram_job_outcomes_total", {"outcome": "succeeded"}) == 2
    assert value("lumigram_job_duration_seconds_count", {"model": "flux-pro"}) == 1
    assert value("lumigram_job_duration_seconds_sum", {"model": "flux-pro"}) == 7
    assert value("lumigram_job_duration_seconds_bucket", {"model": "flux-pro", "le": "5.0"}) == 0
    assert value("lumigram_job_duration_seconds_bucket", {"model": "flux-pro", "le": "10.0"}) == 1
    assert value("lumigram_job_duration_seconds_bucket", {"model": "video", "le": "180.0"}) == 0
    assert value("lumigram_job_duration_seconds_bucket", {"model": "video", "le": "300.0"}) == 1
    assert value("lumigram_job_duration_seconds_bucket", {"model": "video", "le": "600.0"}) == 1

    failed = job(3)
    failed.status, failed.error_class = JobStatus.FAILED, ErrorClass.SAFETY.value
    await events.publish(JobEvent(JobEventKind.FAILED, failed))
    await events.publish(JobEvent(JobEventKind.FAILED, failed))
    unavailable = job(4, provider="openai")
    unavailable.error_class = ErrorClass.UNAVAILABLE.value
    await events.publish(JobEvent(JobEventKind.FAILED, unavailable))
    await events.publish(JobEvent(JobEventKind.CANCELLED, job(5)))

    assert value("lumigram_job_outcomes_total", {"outcome": "failed"}) == 2
    assert value("lumigram_job_outcomes_total", {"outcome": "cancelled"}) == 1
    assert (
        value("lumigram_provider_errors_total", {"provider": "replicate", "error_class": "safety"})
        == 1
    )
    assert (
        value(
            "lumigram_provider_errors_total", {"provider": "openai", "error_class": "unavailable"}
        )
        == 1
    )
    # Failed and cancelled jobs have no duration sample; other events change nothing.
    await events.publish(JobEvent(JobEventKind.QUEUED, job(6), position=3))
    await events.publish(JobEvent(JobEventKind.PROGRESSED, job(6)))
    assert value("lumigram_job_duration_seconds_count", {"model": "flux-pro"}) == 1
    assert (
        sum(
            value("lumigram_job_outcomes_total", {"outcome": outcome}) or 0
            for outcome in ("succeeded", "failed", "cancelled")
        )
        == 5
    )


async def test_an_observer_never_raises() -> None:
    metrics = Metrics()
    broken = job(7)
    broken.created_at = None  # type: ignore[assignment]  # a job the observer cannot measure
    await MetricsJobEvents(metrics).publish(JobEvent(JobEventKind.SUCCEEDED, broken))


async def test_dispatch_queue_size_is_read_at_scrape() -> None:
    waiting = [3]
    metrics = Metrics(queue_size=lambda: waiting[0])
    assert metrics.registry.get_sample_value("lumigram_dispatch_queue_size") == 3
    waiting[0] = 0
    assert "lumigram_dispatch_queue_size 0.0" in metrics.render().decode()
    assert "lumigram_dispatch_queue_size" not in Metrics().render().decode()


async def test_metrics_route_exposes_the_job_metrics(runner: HttpRunner) -> None:
    client = await runner.start()
    text = (await client.get("/metrics")).text
    for name, kind in (
        ("lumigram_job_duration_seconds", "histogram"),
        ("lumigram_job_outcomes_total", "counter"),
        ("lumigram_provider_errors_total", "counter"),
        ("lumigram_queue_depth", "gauge"),
    ):
        assert re.search(f"^# TYPE {name} {kind}$", text, re.M), name
    assert sample(text, "lumigram_queue_depth") == 0
    assert sample(text, "lumigram_job_outcomes_total", outcome="succeeded") == 0


async def test_queue_depth_counts_the_jobs_due_and_waiting(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    now = datetime.now(UTC)
    later, earlier = now + timedelta(minutes=5), now - timedelta(minutes=5)
    async with sessionmaker() as session:
        await session.execute(
            insert(tables.users).values(
                id=1, language="en", referral_code="ref1", created_at=now, last_seen_at=now
            )
        )
        for status, next_attempt_at, lease in (
            (JobStatus.QUEUED, earlier, None),  # waiting
            (JobStatus.RUNNING, earlier, None),  # its next poll is due: waiting
            (JobStatus.RUNNING, earlier, earlier),  # its worker died: waiting
            (JobStatus.RUNNING, earlier, later),  # a worker has it
            (JobStatus.RUNNING, later, None),  # polled again in 5 minutes
            (JobStatus.SUCCEEDED, earlier, None),
            (JobStatus.AWAITING_PAYMENT, earlier, None),
        ):
            await session.execute(
                insert(tables.jobs).values(
                    user_id=1,
                    language="en",
                    model_id="demo",
                    provider="demo",
                    provider_model="demo",
                    mode="custom",
                    prompt="p",
                    final_prompt="p",
                    settings={},
                    reference_files=[],
                    result_files=[],
                    status=status.value,
                    step=JobStep.POLL.value,
                    next_attempt_at=next_attempt_at,
                    lease_expires_at=lease,
                    lease_token=None if lease is None else "t",
                    created_at=earlier,
                    updated_at=earlier,
                )
            )
        await session.commit()
    metrics = Metrics()
    await metrics.refresh(sessionmaker)
    assert metrics.registry.get_sample_value("lumigram_queue_depth") == 3
    assert metrics.registry.get_sample_value("lumigram_jobs", {"status": "running"}) == 4
