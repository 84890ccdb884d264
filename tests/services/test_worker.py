"""JobRunner and GenerationService against the real database, repositories and providers.

The demo provider and the real ReplicateProvider (talking HTTP to a FakeReplicate on
127.0.0.1) do the generating; results go to a LocalStorage in tmp_path. The notifier
and the dispatcher only record what they are given: the tests pop dispatched job ids
and call ``runner.run_step`` themselves, moving a clock they control, so every step
happens exactly when the test says. Runs on SQLite, or on PostgreSQL when
LUMIGRAM_TEST_DATABASE_URL is set.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import logging
from collections import deque
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from lumigram.catalog import Catalog, load_catalog
from lumigram.db.repositories.audit import AuditRepository
from lumigram.db.repositories.jobs import JobRepository
from lumigram.db.repositories.users import UserRepository
from lumigram.db.uow import SqlUnitOfWork, unit_of_work_factory
from lumigram.domain.generation import TaskState
from lumigram.domain.jobs import (
    Channel,
    ErrorClass,
    Job,
    JobEvent,
    JobEventKind,
    JobStatus,
    JobStep,
    Origin,
    ResultFile,
    RetryRules,
)
from lumigram.domain.users import User
from lumigram.fakes import replicate as fake_replicate
from lumigram.fakes.base import Fault
from lumigram.fakes.replicate import FakeReplicate
from lumigram.imaging import PillowImages
from lumigram.providers.demo import DemoProvider
from lumigram.providers.http import RetryPolicy
from lumigram.providers.replicate import ReplicateProvider
from lumigram.services.generation import (
    ActiveJobLimitError,
    Draft,
    GenerationPolicy,
    GenerationService,
)
from lumigram.services.ports import ImageProvider, Price
from lumigram.services.users import Contact, UserPolicy, UserService
from lumigram.services.worker import JobRunner, WorkerPolicy
from lumigram.storage.local import LocalStorage

Sessions = async_sessionmaker[AsyncSession]

KEY = "r8_TEST_worker_token_0123456789"
START = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
USER_ID = 4242
CHAT_ID = 4242
ORIGIN = Origin(Channel.TELEGRAM, str(CHAT_ID))
FAST_RULES = RetryRules(
    max_attempts=4,
    base_backoff=0.5,
    max_backoff=8.0,
    first_poll=0.25,
    max_poll_interval=2.0,
    deadline=timedelta(minutes=15),
)
LEASE = timedelta(seconds=60)
DEMO_DRAFT = Draft(model_id="demo", template_slug="custom", prompt="a red fox in the snow")
# google/nano-banana on Replicate: no seed, defaults 1:1 and jpeg (sent as "jpg").
REPLICATE_DRAFT = Draft(model_id="nano-banana", template_slug="custom", prompt="a lighthouse")


# --- recording doubles -----------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class RecordingBilling:
    """Implements ports.Billing; one instance shared by every unit of work of a test."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int | None, int | None]] = []

    async def reserve(self, job: Job, price: Price) -> bool:
        self.calls.append(("reserve", job.id, price.credits))
        return True

    async def capture(self, job: Job, delivered_outputs: int) -> None:
        self.calls.append(("capture", job.id, delivered_outputs))

    async def release(self, job: Job) -> None:
        self.calls.append(("release", job.id, None))

    def of(self, kind: str) -> list[tuple[str, int | None, int | None]]:
        return [call for call in self.calls if call[0] == kind]


class RecordingNotifier:
    """Implements ports.JobEvents (a channel) by remembering every event."""

    def __init__(self) -> None:
        self.shown: list[tuple[int | None, float | None]] = []
        self.deliveries: list[tuple[int | None, list[tuple[ResultFile, bytes]]]] = []
        self.failures: list[tuple[int | None, str | None, str | None]] = []
        self.cancellations: list[int | None] = []
        self.events: list[tuple[JobEventKind, int | None]] = []

    async def publish(self, event: JobEvent) -> None:
        job = event.job
        self.events.append((event.kind, job.id))
        match event.kind:
            case JobEventKind.PROGRESSED:
                self.shown.append((job.id, job.progress))
            case JobEventKind.SUCCEEDED:
                self.deliveries.append((job.id, list(event.outputs)))
            case JobEventKind.FAILED:
                self.failures.append((job.id, job.error_class, job.user_error))
            case JobEventKind.CANCELLED:
                self.cancellations.append(job.id)


class RecordingDispatcher:
    """Implements ports.JobDispatcher; the test pops ``pending`` and runs the steps itself."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, float]] = []
        self.pending: deque[tuple[int, float]] = deque()

    async def dispatch(self, job_id: int, *, delay: float = 0.0, priority: int = 0) -> None:
        self.sent.append((job_id, delay))
        self.pending.append((job_id, delay))

    def delays(self) -> list[float]:
        return [delay for _, delay in self.sent]


# --- steps and rows, for this world and the video one (test_worker_video) ------------------


async def register_user(sessionmaker: Sessions, clock: FakeClock, user_id: int = USER_ID) -> User:
    async with sessionmaker() as session:
        service = UserService(
            UserRepository(session),
            AuditRepository(session),
            session,
            UserPolicy(),
            clock=clock,
        )
        registration = await service.register_contact(
            Contact(user_id=user_id, first_name="Test", language_code="en")
        )
    return registration.user


async def load_job(sessionmaker: Sessions, job_id: int | None) -> Job:
    assert job_id is not None
    async with sessionmaker() as session:
        job = await JobRepository(session).get(job_id)
        await session.commit()
    assert job is not None
    return job


async def next_step(runner: JobRunner, dispatcher: RecordingDispatcher, clock: FakeClock) -> int:
    """Run the oldest dispatched step once its delay has passed on the clock."""
    job_id, delay = dispatcher.pending.popleft()
    clock.advance(delay)
    await runner.run_step(job_id)
    return job_id


async def drive(
    runner: JobRunner, dispatcher: RecordingDispatcher, clock: FakeClock, *, max_steps: int = 20
) -> int:
    """Run dispatched steps until nothing more is dispatched; how many ran."""
    steps = 0
    while dispatcher.pending:
        await next_step(runner, dispatcher, clock)
        steps += 1
        assert steps <= max_steps, "the job never settled"
    return steps


# --- the world a test runs in ------------------------------------------------------------


@dataclasses.dataclass
class World:
    sessionmaker: Sessions
    clock: FakeClock
    billing: RecordingBilling
    notifier: RecordingNotifier
    dispatcher: RecordingDispatcher
    storage: LocalStorage
    catalog: Catalog
    demo: DemoProvider
    fake: FakeReplicate
    replicate: ReplicateProvider
    clients: list[ReplicateProvider]
    monkeypatch: pytest.MonkeyPatch

    @property
    def providers(self) -> dict[str, ImageProvider]:
        return {"demo": self.demo, "replicate": self.replicate}

    def long_running_predictions(self, *, hold: bool = False) -> None:
        """Predictions run for a minute unless the test finishes them (by setting their
        ``run_seconds`` to 0). Without ``hold`` the fake answers a create at once, as
        Replicate does once ``Prefer: wait`` runs out, which saves the second it holds."""
        self.fake.run_seconds = 60
        if not hold:
            self.monkeypatch.setattr(fake_replicate, "_prefer_wait", lambda _header: 0)

    def new_replicate_client(self) -> ReplicateProvider:
        """Another client for the same fake server (what a restarted process would build)."""
        client = ReplicateProvider(
            KEY,
            base_url=self.fake.base_url,
            timeout=5.0,
            retry=RetryPolicy(attempts=1),  # the worker's own retries are under test
            wait_seconds=1,
            poll_interval=0.05,
        )
        self.clients.append(client)
        return client

    def runner(
        self,
        *,
        providers: dict[str, ImageProvider] | None = None,
        rules: RetryRules = FAST_RULES,
    ) -> JobRunner:
        return JobRunner(
            unit_of_work_factory(self.sessionmaker, lambda _session: self.billing),
            providers if providers is not None else self.providers,
            self.storage,
            self.notifier,
            self.dispatcher,
            WorkerPolicy(lease=LEASE, rules=rules, provider_concurrency=4),
            clock=self.clock,
            images=PillowImages(),
        )

    def generation(self, session: AsyncSession, *, max_active_jobs: int = 1) -> GenerationService:
        return GenerationService(
            SqlUnitOfWork(session, self.billing),
            self.catalog,
            self.providers,
            self.storage,
            self.dispatcher,
            GenerationPolicy(max_active_jobs=max_active_jobs),
            clock=self.clock,
            images=PillowImages(),
            # These tests hand jobs to the dispatcher themselves (World.queue).
            schedule=lambda _followup: None,
        )

    async def register(self, user_id: int = USER_ID) -> User:
        return await register_user(self.sessionmaker, self.clock, user_id)

    async def queue(self, draft: Draft, *, user: User | None = None) -> Job:
        """Queue the draft for the user and hand it to the dispatcher, as the bot does."""
        user = user or await self.register()
        async with self.sessionmaker() as session:
            service = self.generation(session)
            queued = await service.queue(user, draft, ORIGIN)
            await service.start(queued.job)
        return queued.job

    async def job(self, job_id: int | None) -> Job:
        return await load_job(self.sessionmaker, job_id)

    async def next_step(self, runner: JobRunner) -> int:
        return await next_step(runner, self.dispatcher, self.clock)

    async def drive(self, runner: JobRunner, *, max_steps: int = 20) -> int:
        return await drive(runner, self.dispatcher, self.clock, max_steps=max_steps)

    async def dead_worker_claims(self, job_id: int | None) -> Job:
        """A worker claims the job's next step and dies before writing anything."""
        assert job_id is not None
        async with self.sessionmaker() as session:
            job = await JobRepository(session).claim(
                job_id,
                now=self.clock(),
                lease_until=self.clock() + LEASE,
                token="dead-worker",
            )
            await session.commit()
        assert job is not None
        return job

    def creates(self) -> list[str]:
        return [
            r.path
            for r in self.fake.requests
            if r.method == "POST" and r.path.endswith("/predictions")
        ]

    def polls_of(self, prediction_id: str) -> int:
        path = f"/v1/predictions/{prediction_id}"
        return sum(1 for r in self.fake.requests if r.method == "GET" and r.path == path)

    def cancels_of(self, prediction_id: str) -> int:
        path = f"/v1/predictions/{prediction_id}/cancel"
        return sum(1 for r in self.fake.requests if r.method == "POST" and r.path == path)


@pytest.fixture
async def world(
    sessionmaker: Sessions, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[World]:
    fake = FakeReplicate(api_key=KEY, run_seconds=0.0, slow_seconds=0.3)
    await fake.start()
    world = World(
        sessionmaker=sessionmaker,
        clock=FakeClock(),
        billing=RecordingBilling(),
        notifier=RecordingNotifier(),
        dispatcher=RecordingDispatcher(),
        storage=LocalStorage(tmp_path / "storage"),
        catalog=load_catalog(),
        demo=DemoProvider(long_side=64, steps=0),
        fake=fake,
        replicate=None,  # type: ignore[arg-type]  # set just below
        clients=[],
        monkeypatch=monkeypatch,
    )
    world.replicate = world.new_replicate_client()
    try:
        yield world
    finally:
        for client in world.clients:
            await client.aclose()
        await fake.stop()


def only_prediction(world: World) -> str:
    assert len(world.fake.predictions) == 1
    return next(iter(world.fake.predictions))


async def wait_for(condition: Any, *, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "timed out waiting"
        await asyncio.sleep(0.01)


# --- the happy path ------------------------------------------------------------------------


async def test_demo_job_succeeds_stores_delivers_once_and_captures(world: World) -> None:
    draft = dataclasses.replace(DEMO_DRAFT, settings={"num_outputs": 2})
    job = await world.queue(draft)
    assert job.status == JobStatus.QUEUED.value
    assert world.dispatcher.sent == [(job.id, 0.0)]
    # demo: 1 credit for the first output, 1 for each further one
    assert world.billing.calls == [("reserve", job.id, 2)]

    runner = world.runner()
    assert await world.drive(runner) == 1  # submit finishes at once: one step does it all

    stored = await world.job(job.id)
    assert stored.status == JobStatus.SUCCEEDED.value
    assert stored.step == JobStep.DONE.value
    assert stored.lease_token is None
    assert stored.lease_expires_at is None
    assert stored.delivered_at == world.clock()
    assert stored.finished_at == world.clock()
    assert stored.started_at == START
    assert stored.attempts == 0
    assert stored.error_class is None

    assert len(world.notifier.deliveries) == 1
    delivered_id, outputs = world.notifier.deliveries[0]
    assert delivered_id == job.id
    assert len(outputs) == 2
    results = stored.results
    assert [r.key for r in results] == [f"results/{job.id}/0.png", f"results/{job.id}/1.png"]
    for result, (sent, data) in zip(results, outputs, strict=True):
        assert result.mime_type == "image/png"
        assert (result.width, result.height) == (64, 64)
        assert sent.key == result.key
        assert await world.storage.get(result.key) == data
        with Image.open(io.BytesIO(data)) as image:
            assert image.format == "PNG"
            assert image.size == (64, 64)
    assert outputs[0][1] != outputs[1][1]  # output i uses seed + i

    assert world.billing.calls == [("reserve", job.id, 2), ("capture", job.id, 2)]
    assert world.notifier.failures == []
    # Progress went out once (the status message is the channel's business), then the
    # result, and the job's events came in order.
    assert len(world.notifier.shown) == 1
    assert [kind for kind, _ in world.notifier.events] == [
        JobEventKind.PROGRESSED,
        JobEventKind.SUCCEEDED,
    ]

    async with world.sessionmaker() as session:
        service = world.generation(session)
        history = await service.history(USER_ID)
        delivered = await service.delivered(USER_ID, job.id or 0)
        assert await service.active_jobs(USER_ID) == []
    assert [j.id for j in history] == [job.id]
    assert delivered is not None
    assert delivered.id == job.id

    # Nothing is left for a sweeper, and a late duplicate dispatch does nothing.
    assert await runner.sweep() == 0
    await runner.run_step(job.id or 0)
    assert len(world.notifier.deliveries) == 1
    assert len(world.billing.of("capture")) == 1


async def test_duplicate_dispatch_submits_once_and_delivers_once(world: World) -> None:
    job = await world.queue(REPLICATE_DRAFT)  # the fake finishes predictions at once
    world.dispatcher.pending.clear()
    runner = world.runner()

    await asyncio.gather(runner.run_step(job.id or 0), runner.run_step(job.id or 0))

    assert len(world.creates()) == 1
    assert len(world.notifier.deliveries) == 1
    assert len(world.billing.of("capture")) == 1
    stored = await world.job(job.id)
    assert stored.status == JobStatus.SUCCEEDED.value
    assert stored.results[0].key == f"results/{job.id}/0.jpg"
    assert await world.storage.exists(stored.results[0].key)
    # A second runner (another worker process) given the same id later does nothing either.
    await world.runner().run_step(job.id or 0)
    assert len(world.creates()) == 1
    assert len(world.notifier.deliveries) == 1


# --- asynchronous providers -----------------------------------------------------------------


async def test_asynchronous_replicate_job_is_polled_until_done(world: World) -> None:
    world.long_running_predictions(hold=True)  # still running when Prefer: wait=1 runs out
    job = await world.queue(REPLICATE_DRAFT)
    runner = world.runner()

    await world.next_step(runner)  # submit
    prediction_id = only_prediction(world)
    stored = await world.job(job.id)
    assert stored.status == JobStatus.RUNNING.value
    assert stored.step == JobStep.POLL.value
    assert stored.provider_job_id == prediction_id
    assert stored.polls == 1
    assert stored.lease_token is None
    assert stored.next_attempt_at == world.clock() + timedelta(seconds=FAST_RULES.poll_interval(0))
    assert world.dispatcher.sent[-1] == (job.id, FAST_RULES.poll_interval(0))

    await world.next_step(runner)  # poll: still running
    assert world.polls_of(prediction_id) == 1
    assert world.dispatcher.sent[-1] == (job.id, FAST_RULES.poll_interval(1))
    assert (await world.job(job.id)).polls == 2
    assert world.notifier.deliveries == []

    world.fake.predictions[prediction_id].run_seconds = 0  # the model finishes
    assert await world.drive(runner) == 1

    stored = await world.job(job.id)
    assert stored.status == JobStatus.SUCCEEDED.value
    assert stored.provider_job_id == prediction_id
    assert stored.progress == 1.0
    assert world.polls_of(prediction_id) == 2
    assert len(world.creates()) == 1
    assert len(world.notifier.deliveries) == 1
    data = await world.storage.get(stored.results[0].key)
    assert data.startswith(b"\xff\xd8\xff")  # the fake's JPEG, as downloaded
    assert world.billing.of("capture") == [("capture", job.id, 1)]
    # Requests carried what the catalog resolved: jpeg became Replicate's "jpg".
    assert world.fake.predictions[prediction_id].input["output_format"] == "jpg"


async def test_restart_reattaches_to_the_same_prediction(world: World) -> None:
    world.long_running_predictions()
    job = await world.queue(REPLICATE_DRAFT)
    first = world.runner()
    await world.next_step(first)  # submit: the prediction id is stored
    prediction_id = only_prediction(world)
    await world.next_step(first)  # one poll

    # The process dies in the middle of the next poll: its lease stays, its queue is lost.
    _, delay = world.dispatcher.pending.popleft()
    world.clock.advance(delay)
    await world.dead_worker_claims(job.id)
    assert not world.dispatcher.pending
    await world.replicate.aclose()
    world.fake.predictions[prediction_id].run_seconds = 0  # finished meanwhile

    # A new process: new provider client, same fake server, same database.
    client = world.new_replicate_client()
    second = world.runner(providers={"demo": DemoProvider(long_side=64), "replicate": client})
    assert await second.recover() == 1
    assert [job_id for job_id, _ in world.dispatcher.pending] == [job.id]
    await world.drive(second)

    stored = await world.job(job.id)
    assert stored.status == JobStatus.SUCCEEDED.value
    assert stored.provider_job_id == prediction_id
    assert len(world.creates()) == 1  # re-attached, never paid for twice
    assert world.polls_of(prediction_id) == 2
    assert len(world.notifier.deliveries) == 1
    assert world.billing.of("capture") == [("capture", job.id, 1)]
    # A second restart finds nothing to do.
    assert await second.recover() == 0
    assert len(world.notifier.deliveries) == 1


async def test_job_that_never_reached_the_provider_is_requeued_by_recover(world: World) -> None:
    job = await world.queue(REPLICATE_DRAFT)
    claimed = await world.dead_worker_claims(job.id)  # claimed, then died before submit
    assert claimed.step == JobStep.SUBMIT.value
    assert claimed.provider_job_id is None
    world.dispatcher.pending.clear()

    runner = world.runner()
    assert await runner.sweep() == 0  # the dead worker's lease is still running
    assert await runner.recover() == 1  # single process at start-up: no lease is alive
    await world.drive(runner)

    stored = await world.job(job.id)
    assert stored.status == JobStatus.SUCCEEDED.value
    assert len(world.creates()) == 1
    assert len(world.notifier.deliveries) == 1
    assert world.billing.of("capture") == [("capture", job.id, 1)]


async def test_lease_of_a_dead_worker_expires_and_sweep_dispatches_the_job(world: World) -> None:
    job = await world.queue(DEMO_DRAFT)
    world.dispatcher.pending.clear()
    claimed = await world.dead_worker_claims(job.id)
    assert claimed.lease_expires_at == START + LEASE
    runner = world.runner()

    assert await runner.sweep() == 0
    await runner.run_step(job.id or 0)  # a duplicate dispatch while leased does nothing
    stored = await world.job(job.id)
    assert stored.lease_token == "dead-worker"
    assert stored.step == JobStep.SUBMIT.value
    assert world.notifier.shown == []
    assert world.notifier.deliveries == []

    world.clock.now = START + LEASE  # the lease ends at this instant, but has not expired yet
    assert await runner.sweep() == 0
    world.clock.advance(1)
    assert await runner.sweep() == 1
    assert list(world.dispatcher.pending) == [(job.id, 0.0)]
    await world.drive(runner)

    stored = await world.job(job.id)
    assert stored.status == JobStatus.SUCCEEDED.value
    assert stored.started_at == START  # the first claim's time stays
    assert len(world.notifier.deliveries) == 1
    assert world.billing.of("capture") == [("capture", job.id, 1)]


# --- the one-active-job rule ------------------------------------------------------------------


async def _queue_concurrently(world: World, count: int, max_active_jobs: int) -> list[Any]:
    user = await world.register()
    sessions = [world.sessionmaker() for _ in range(count)]
    try:
        services = [world.generation(s, max_active_jobs=max_active_jobs) for s in sessions]
        return await asyncio.gather(
            *(service.queue(user, DEMO_DRAFT, ORIGIN) for service in services),
            return_exceptions=True,
        )
    finally:
        for session in sessions:
            await session.close()


@pytest.mark.parametrize("callers", [2, 5])
async def test_concurrent_queue_calls_create_one_job(world: World, callers: int) -> None:
    outcomes = await _queue_concurrently(world, callers, max_active_jobs=1)

    errors = [o for o in outcomes if isinstance(o, BaseException)]
    queued = [o for o in outcomes if not isinstance(o, BaseException)]
    assert (len(queued), len(errors)) == (1, callers - 1), outcomes
    for error in errors:
        assert isinstance(error, ActiveJobLimitError)
        assert [j.id for j in error.active] == [queued[0].job.id]
    async with world.sessionmaker() as session:
        active = await JobRepository(session).active_for_user(USER_ID)
        everything = await JobRepository(session).recent_for_user(USER_ID, 10)
    assert len(active) == 1
    assert len(everything) == 1
    assert world.billing.of("reserve") == [("reserve", queued[0].job.id, 1)]


async def test_concurrent_queue_calls_respect_a_limit_of_two(world: World) -> None:
    outcomes = await _queue_concurrently(world, 3, max_active_jobs=2)

    errors = [o for o in outcomes if isinstance(o, BaseException)]
    queued = [o for o in outcomes if not isinstance(o, BaseException)]
    assert (len(queued), len(errors)) == (2, 1), outcomes
    assert isinstance(errors[0], ActiveJobLimitError)
    assert len(errors[0].active) == 2
    async with world.sessionmaker() as session:
        everything = await JobRepository(session).recent_for_user(USER_ID, 10)
    assert len(everything) == 2
    assert len(world.billing.of("reserve")) == 2


async def test_a_finished_job_frees_the_slot(world: World) -> None:
    user = await world.register()
    first = await world.queue(DEMO_DRAFT, user=user)
    with pytest.raises(ActiveJobLimitError):
        await world.queue(DEMO_DRAFT, user=user)
    await world.drive(world.runner())
    assert (await world.job(first.id)).status == JobStatus.SUCCEEDED.value
    second = await world.queue(DEMO_DRAFT, user=user)
    assert second.id != first.id


# --- cancel --------------------------------------------------------------------------------


async def test_cancel_while_polling_releases_the_hold_and_cancels_at_the_provider(
    world: World,
) -> None:
    world.long_running_predictions()
    job = await world.queue(REPLICATE_DRAFT)
    runner = world.runner()
    await world.next_step(runner)  # submit: running at the provider
    prediction_id = only_prediction(world)

    async with world.sessionmaker() as session:
        cancelled = await world.generation(session).cancel(USER_ID)  # the active one
    assert cancelled is not None
    assert cancelled.id == job.id
    assert cancelled.status == JobStatus.CANCELLED.value

    assert world.cancels_of(prediction_id) == 1
    assert world.fake.predictions[prediction_id].status() == "canceled"
    assert world.billing.of("release") == [("release", job.id, None)]

    await world.drive(runner)  # the poll already dispatched finds nothing to do
    stored = await world.job(job.id)
    assert stored.status == JobStatus.CANCELLED.value
    assert stored.finished_at == world.clock() - timedelta(seconds=FAST_RULES.poll_interval(0))
    assert world.polls_of(prediction_id) == 0
    assert world.notifier.deliveries == []
    assert world.notifier.failures == []
    assert world.billing.of("capture") == []
    assert len(world.billing.of("release")) == 1
    # Cancelling again is a no-op: nothing active.
    async with world.sessionmaker() as session:
        assert await world.generation(session).cancel(USER_ID, job.id) is None
    assert len(world.billing.of("release")) == 1


async def test_in_flight_poll_cannot_overwrite_a_cancellation(world: World) -> None:
    world.long_running_predictions()
    job = await world.queue(REPLICATE_DRAFT)
    runner = world.runner()
    await world.next_step(runner)  # submit
    prediction_id = only_prediction(world)

    # The model finishes, and the worker's next poll is slow to answer: it is in flight
    # (lease held, no transaction open) when the user cancels.
    world.fake.predictions[prediction_id].run_seconds = 0
    world.fake.inject(Fault.SLOW)
    job_id, delay = world.dispatcher.pending.popleft()
    world.clock.advance(delay)
    step = asyncio.create_task(runner.run_step(job_id))
    await wait_for(lambda: world.polls_of(prediction_id) == 1)

    async with world.sessionmaker() as session:
        cancelled = await world.generation(session).cancel(USER_ID, job.id)
    assert cancelled is not None
    await step  # the poll comes back "succeeded"; its conditional write must lose

    stored = await world.job(job.id)
    assert stored.status == JobStatus.CANCELLED.value
    assert stored.step == JobStep.POLL.value
    assert stored.result_files == []
    assert world.notifier.deliveries == []
    assert world.notifier.failures == []
    assert world.billing.of("capture") == []
    assert world.billing.of("release") == [("release", job.id, None)]
    assert world.cancels_of(prediction_id) == 1
    assert world.dispatcher.pending == deque()


async def test_cancel_during_submit_cancels_the_orphaned_prediction(world: World) -> None:
    """The user cancels while the submit request is on its way: no provider job id is
    stored yet, so GenerationService.cancel cannot cancel at the provider. The worker's
    submit then creates a prediction whose outcome it may no longer record; that
    prediction must not be left running (and billed to the operator) with nobody to
    collect it."""
    world.long_running_predictions(hold=True)  # the create is held open: in flight
    job = await world.queue(REPLICATE_DRAFT)
    runner = world.runner()
    job_id, _ = world.dispatcher.pending.popleft()
    step = asyncio.create_task(runner.run_step(job_id))
    await wait_for(lambda: len(world.fake.predictions) == 1)  # created; Prefer: wait holds it
    prediction_id = only_prediction(world)

    async with world.sessionmaker() as session:
        cancelled = await world.generation(session).cancel(USER_ID, job.id)
    assert cancelled is not None
    assert cancelled.provider_job_id is None
    await step

    stored = await world.job(job.id)
    assert stored.status == JobStatus.CANCELLED.value
    assert world.dispatcher.pending == deque()  # no poll was scheduled for it
    assert world.billing.of("release") == [("release", job.id, None)]
    assert world.cancels_of(prediction_id) == 1, "the orphaned prediction was left running"
    assert world.fake.predictions[prediction_id].status() == "canceled"


# --- failures ---------------------------------------------------------------------------------


async def test_transient_failures_are_retried_with_backoff_then_succeed(world: World) -> None:
    world.fake.inject(Fault.SERVER_ERROR, Fault.SERVER_ERROR)  # the first two creates: HTTP 500
    job = await world.queue(REPLICATE_DRAFT)
    runner = world.runner()

    await world.next_step(runner)  # attempt 1: 500
    stored = await world.job(job.id)
    assert stored.status == JobStatus.RUNNING.value
    assert stored.step == JobStep.SUBMIT.value
    assert stored.attempts == 1
    assert stored.lease_token is None
    assert stored.next_attempt_at == world.clock() + timedelta(seconds=0.5)
    assert world.dispatcher.sent[-1] == (job.id, 0.5)

    await runner.run_step(job.id or 0)  # too early: not due, nothing is sent
    assert len(world.creates()) == 1
    world.clock.advance(0.4)
    assert await runner.sweep() == 0  # still backing off

    await world.next_step(runner)  # attempt 2: 500 again, the back-off doubles
    assert world.dispatcher.sent[-1] == (job.id, 1.0)
    assert (await world.job(job.id)).attempts == 2

    await world.drive(runner)  # attempt 3 succeeds
    stored = await world.job(job.id)
    assert stored.status == JobStatus.SUCCEEDED.value
    assert stored.attempts == 2
    assert stored.error_class is None
    assert world.dispatcher.delays() == [0.0, 0.5, 1.0]
    assert len(world.creates()) == 3
    assert len(world.notifier.deliveries) == 1
    assert world.notifier.failures == []
    assert world.billing.calls == [("reserve", job.id, 8), ("capture", job.id, 1)]


async def test_exhausted_transient_attempts_fail_the_job_and_release_the_hold(
    world: World,
) -> None:
    rules = dataclasses.replace(FAST_RULES, max_attempts=3)
    draft = dataclasses.replace(DEMO_DRAFT, prompt="a fox [demo:fail=transient@submit]")
    job = await world.queue(draft)
    runner = world.runner(rules=rules)

    assert await world.drive(runner) == 3

    stored = await world.job(job.id)
    assert stored.status == JobStatus.FAILED.value
    assert stored.error_class == ErrorClass.TRANSIENT.value
    assert "simulated transient failure" in (stored.error_message or "")
    assert stored.user_error is None
    assert stored.attempts == 2
    assert stored.lease_token is None
    assert stored.finished_at == world.clock()
    # The demo says retry_after=1, which the back-off honours.
    assert world.dispatcher.delays() == [0.0, 1.0, 1.0]
    assert world.billing.calls == [("reserve", job.id, 1), ("release", job.id, None)]
    assert world.notifier.failures == [(job.id, ErrorClass.TRANSIENT.value, None)]
    assert world.notifier.deliveries == []


async def test_safety_refusal_fails_at_once_with_the_users_reason(world: World) -> None:
    draft = dataclasses.replace(DEMO_DRAFT, prompt="a fox [demo:reject]")
    job = await world.queue(draft)

    assert await world.drive(world.runner()) == 1  # no retry

    stored = await world.job(job.id)
    assert stored.status == JobStatus.FAILED.value
    assert stored.error_class == ErrorClass.SAFETY.value
    assert stored.user_error == "The demo safety filter was asked to refuse this prompt."
    assert stored.attempts == 0
    assert world.billing.of("release") == [("release", job.id, None)]
    assert world.billing.of("capture") == []
    assert world.notifier.failures == [(job.id, ErrorClass.SAFETY.value, stored.user_error)]


async def test_replicate_nsfw_failure_is_a_safety_failure(world: World) -> None:
    draft = dataclasses.replace(REPLICATE_DRAFT, prompt="something nsfw")
    job = await world.queue(draft)

    assert await world.drive(world.runner()) == 1

    stored = await world.job(job.id)
    assert stored.status == JobStatus.FAILED.value
    assert stored.error_class == ErrorClass.SAFETY.value
    assert stored.user_error
    assert "safety filter" in stored.user_error
    assert len(world.creates()) == 1
    assert world.billing.of("release") == [("release", job.id, None)]


async def test_invalid_input_fails_at_once(world: World) -> None:
    draft = dataclasses.replace(DEMO_DRAFT, prompt="a fox [demo:fail=invalid@submit]")
    job = await world.queue(draft)

    assert await world.drive(world.runner()) == 1

    stored = await world.job(job.id)
    assert stored.status == JobStatus.FAILED.value
    assert stored.error_class == ErrorClass.INVALID_INPUT.value
    assert stored.attempts == 0
    assert world.billing.of("release") == [("release", job.id, None)]


async def test_unavailable_provider_fails_and_alerts_the_operator(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    draft = dataclasses.replace(DEMO_DRAFT, prompt="a fox [demo:fail=unavailable@submit]")
    job = await world.queue(draft)

    with caplog.at_level(logging.ERROR, logger="lumigram.services.worker"):
        assert await world.drive(world.runner()) == 1

    stored = await world.job(job.id)
    assert stored.status == JobStatus.FAILED.value
    assert stored.error_class == ErrorClass.UNAVAILABLE.value
    assert stored.attempts == 0
    alerts = [r for r in caplog.records if "OPERATOR ALERT" in r.getMessage()]
    assert len(alerts) == 1
    assert alerts[0].levelno == logging.ERROR
    assert "demo" in alerts[0].getMessage()
    assert world.billing.of("release") == [("release", job.id, None)]
    assert world.notifier.failures == [(job.id, ErrorClass.UNAVAILABLE.value, None)]


async def test_replicate_out_of_credit_is_unavailable(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    world.fake.inject(Fault.PAYMENT_REQUIRED)
    job = await world.queue(REPLICATE_DRAFT)

    with caplog.at_level(logging.ERROR, logger="lumigram.services.worker"):
        assert await world.drive(world.runner()) == 1

    stored = await world.job(job.id)
    assert stored.status == JobStatus.FAILED.value
    assert stored.error_class == ErrorClass.UNAVAILABLE.value
    assert KEY not in (stored.error_message or "")
    assert any("OPERATOR ALERT" in r.getMessage() for r in caplog.records)


async def test_deadline_passed_fails_with_timeout_and_cancels_at_the_provider(
    world: World,
) -> None:
    rules = dataclasses.replace(FAST_RULES, deadline=timedelta(seconds=30))
    demo = DemoProvider(long_side=64, steps=5)  # asynchronous: five polls to finish
    job = await world.queue(DEMO_DRAFT)
    runner = world.runner(providers={"demo": demo}, rules=rules)

    await world.next_step(runner)  # submit
    stored = await world.job(job.id)
    assert stored.step == JobStep.POLL.value
    provider_job_id = stored.provider_job_id
    assert provider_job_id is not None
    assert provider_job_id.startswith("demo-")

    world.clock.advance(31)  # longer than the deadline since the first claim
    await world.drive(runner)

    stored = await world.job(job.id)
    assert stored.status == JobStatus.FAILED.value
    assert stored.error_class == ErrorClass.TIMEOUT.value
    assert stored.error_message == "deadline passed"
    assert (await demo.poll(provider_job_id)).state is TaskState.CANCELLED
    assert world.billing.of("release") == [("release", job.id, None)]
    assert world.notifier.failures == [(job.id, ErrorClass.TIMEOUT.value, None)]
    assert world.notifier.deliveries == []


async def test_deadline_on_replicate_cancels_the_prediction(world: World) -> None:
    rules = dataclasses.replace(FAST_RULES, deadline=timedelta(seconds=30))
    world.long_running_predictions()
    job = await world.queue(REPLICATE_DRAFT)
    runner = world.runner(rules=rules)
    await world.next_step(runner)
    prediction_id = only_prediction(world)

    world.clock.advance(31)
    await world.drive(runner)

    stored = await world.job(job.id)
    assert stored.status == JobStatus.FAILED.value
    assert stored.error_class == ErrorClass.TIMEOUT.value
    assert world.cancels_of(prediction_id) == 1
    assert world.fake.predictions[prediction_id].status() == "canceled"


# --- coloring ------------------------------------------------------------------------------


async def test_coloring_mode_stores_a_black_and_white_png(world: World) -> None:
    draft = Draft(model_id="demo", template_slug="coloring", prompt="a cat", settings={})
    job = await world.queue(draft)
    assert "colouring book page of a cat" in job.final_prompt

    await world.drive(world.runner())

    stored = await world.job(job.id)
    assert stored.status == JobStatus.SUCCEEDED.value
    (result,) = stored.results
    assert result.mime_type == "image/png"
    assert result.key.endswith(".png")
    data = await world.storage.get(result.key)
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG"
        assert image.mode in ("L", "1")
        assert (result.width, result.height) == image.size
        values = {value for _, value in image.getcolors(maxcolors=256) or []}
    if image.mode == "1":
        assert values <= {0, 1, 255}
    else:
        assert values <= {0, 255}
    assert 255 in values  # there is paper
    assert world.notifier.deliveries[0][1][0][1] == data


# --- leases of many processes ----------------------------------------------------------------


class GatedProvider:
    """The demo provider, whose submit waits until the test opens the gate."""

    def __init__(self, inner: DemoProvider) -> None:
        self.inner = inner
        self.entered = asyncio.Event()
        self.gate = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def submit(self, request: Any) -> Any:
        self.entered.set()
        await self.gate.wait()
        return await self.inner.submit(request)


def gated_runner(world: World, lease: timedelta) -> tuple[JobRunner, GatedProvider]:
    gated = GatedProvider(world.demo)
    runner = JobRunner(
        unit_of_work_factory(world.sessionmaker, lambda _session: world.billing),
        {"demo": gated, "replicate": world.replicate},  # type: ignore[dict-item]
        world.storage,
        world.notifier,
        world.dispatcher,
        WorkerPolicy(lease=lease, rules=FAST_RULES, provider_concurrency=4),
        clock=world.clock,
        images=PillowImages(),
    )
    return runner, gated


async def test_a_long_step_renews_its_lease_and_keeps_the_job(world: World) -> None:
    job = await world.queue(DEMO_DRAFT)
    world.dispatcher.pending.clear()
    runner, gated = gated_runner(world, timedelta(seconds=0.6))  # renewed every 0.2 s
    step = asyncio.create_task(runner.run_step(job.id or 0))
    await asyncio.wait_for(gated.entered.wait(), 5)
    world.clock.advance(30)  # far past the first lease: only a renewal keeps it

    async def lease_end() -> datetime | None:
        return (await world.job(job.id)).lease_expires_at

    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while (await lease_end() or START) < START + timedelta(seconds=30):
        assert loop.time() < deadline, "the lease was never renewed"
        await asyncio.sleep(0.05)
    # Another worker's sweep and claim find the lease alive: the job stays with us.
    assert await runner.sweep() == 0
    gated.gate.set()
    await asyncio.wait_for(step, 10)
    await world.drive(runner)
    assert (await world.job(job.id)).status == JobStatus.SUCCEEDED.value
    assert len(world.notifier.deliveries) == 1


async def test_a_step_stopped_at_shutdown_is_handed_back_at_once(world: World) -> None:
    job = await world.queue(DEMO_DRAFT)
    world.dispatcher.pending.clear()
    runner, gated = gated_runner(world, timedelta(seconds=30))
    step = asyncio.create_task(runner.run_step(job.id or 0))
    await asyncio.wait_for(gated.entered.wait(), 5)
    assert (await world.job(job.id)).lease_token is not None
    assert await runner.sweep() == 0  # leased: nobody else may take it

    step.cancel()  # the shutdown grace ran out
    with pytest.raises(asyncio.CancelledError):
        await step
    assert await runner.hand_back() == 1
    stored = await world.job(job.id)
    assert stored.lease_token is None
    assert stored.status == JobStatus.RUNNING.value
    # Due now for any worker, not in 30 s: a sweep finds it and another runner finishes it.
    assert await runner.sweep() == 1
    gated.gate.set()
    await world.drive(runner)
    assert (await world.job(job.id)).status == JobStatus.SUCCEEDED.value
    assert len(world.notifier.deliveries) == 1
    assert await runner.hand_back() == 0


async def test_status_writes_of_the_bot_and_a_worker_at_once_do_not_collide(world: World) -> None:
    """The bot remembers the status message while a worker (another process) records the
    text it shows: both may create the job's row at the same moment (seen on PostgreSQL,
    where it failed the job)."""
    from lumigram.bot.job_messages import TelegramJobMessages

    job = await world.queue(DEMO_DRAFT)
    assert job.id is not None
    messages = TelegramJobMessages(world.sessionmaker)
    await asyncio.gather(
        *(
            messages.remember(job.id, CHAT_ID, 100 + i)
            if i % 2
            else messages.record_text(job.id, CHAT_ID, f"text {i}")
            for i in range(12)
        )
    )
    status = await messages.status(job.id)
    assert status is not None
    assert status.chat_id == CHAT_ID
    assert status.message_id is not None
    assert status.text is not None
