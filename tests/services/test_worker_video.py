"""Video jobs through the real JobRunner, KieProvider and a FakeKie over real HTTP.

The same world as ``test_worker``: the real database and repositories, a LocalStorage,
recording doubles for billing, the channel and the dispatcher, a clock the test moves.
The provider is the real KIE client talking to the fake; videos are real MP4s (PyAV).
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from lumigram.catalog import load_catalog
from lumigram.db.uow import SqlUnitOfWork, unit_of_work_factory
from lumigram.domain.jobs import ErrorClass, Job, JobStatus
from lumigram.domain.users import User
from lumigram.fakes.base import sample_image
from lumigram.fakes.kie import FakeKie, make_sample_mp4
from lumigram.imaging import PillowImages
from lumigram.providers.demo import DemoProvider
from lumigram.providers.http import RetryPolicy
from lumigram.providers.kie import KieProvider
from lumigram.services.generation import (
    Draft,
    GenerationPolicy,
    GenerationService,
    InvalidReferenceError,
)
from lumigram.services.ports import ImageProvider
from lumigram.services.worker import JobRunner, WorkerPolicy
from lumigram.storage.local import LocalStorage
from lumigram.video import PyAVVideos, probe_video
from tests.services.test_worker import (
    FAST_RULES,
    LEASE,
    ORIGIN,
    USER_ID,
    FakeClock,
    RecordingBilling,
    RecordingDispatcher,
    RecordingNotifier,
    drive,
    load_job,
    register_user,
)

Sessions = async_sessionmaker[AsyncSession]
KEY = "kie-test-key-0123456789"
VIDEO = make_sample_mp4(1.0, 96, 54)


def photo(width: int = 640, height: int = 480) -> bytes:
    return sample_image(width, height)


@dataclasses.dataclass
class VideoWorld:
    sessionmaker: Sessions
    clock: FakeClock
    billing: RecordingBilling
    notifier: RecordingNotifier
    dispatcher: RecordingDispatcher
    storage: LocalStorage
    fake: FakeKie
    kie: KieProvider
    clients: list[KieProvider]

    def new_client(self) -> KieProvider:
        client = KieProvider(
            KEY,
            base_url=self.fake.base_url,
            upload_base_url=self.fake.base_url,
            timeout=5.0,
            retry=RetryPolicy(attempts=1),  # the worker's own retries are under test
        )
        self.clients.append(client)
        return client

    @property
    def providers(self) -> dict[str, ImageProvider]:
        return {"demo": DemoProvider(long_side=64, steps=0), "kie": self.kie}

    def runner(self, kie: KieProvider | None = None) -> JobRunner:
        providers = {**self.providers, "kie": kie or self.kie}
        return JobRunner(
            unit_of_work_factory(self.sessionmaker, lambda _session: self.billing),
            providers,
            self.storage,
            self.notifier,
            self.dispatcher,
            WorkerPolicy(lease=LEASE, rules=FAST_RULES, provider_concurrency=4),
            clock=self.clock,
            images=PillowImages(),
            videos=PyAVVideos(),
        )

    def generation(self, session: AsyncSession) -> GenerationService:
        return GenerationService(
            SqlUnitOfWork(session, self.billing),
            load_catalog(),
            self.providers,
            self.storage,
            self.dispatcher,
            GenerationPolicy(max_active_jobs=1),
            clock=self.clock,
            images=PillowImages(),
            schedule=lambda _followup: None,
        )

    async def register(self) -> User:
        return await register_user(self.sessionmaker, self.clock)

    async def queue(self, draft: Draft, *, photos: int = 0) -> Job:
        user = await self.register()
        async with self.sessionmaker() as session:
            service = self.generation(session)
            keys = [
                await service.add_reference(USER_ID, photo(), draft.model_id, index)
                for index in range(photos)
            ]
            queued = await service.queue(
                user, dataclasses.replace(draft, reference_keys=tuple(keys)), ORIGIN
            )
            await service.start(queued.job)
        return queued.job

    async def job(self, job_id: int | None) -> Job:
        return await load_job(self.sessionmaker, job_id)

    async def drive(self, runner: JobRunner) -> int:
        return await drive(runner, self.dispatcher, self.clock, max_steps=30)

    def creates(self) -> list[dict[str, object]]:
        return [task.body for task in self.fake.tasks.values()]


@pytest.fixture
async def world(sessionmaker: Sessions, tmp_path: Path) -> AsyncIterator[VideoWorld]:
    fake = FakeKie(api_key=KEY, video=VIDEO, run_seconds=0.0)
    await fake.start()
    world = VideoWorld(
        sessionmaker=sessionmaker,
        clock=FakeClock(),
        billing=RecordingBilling(),
        notifier=RecordingNotifier(),
        dispatcher=RecordingDispatcher(),
        storage=LocalStorage(tmp_path / "storage"),
        fake=fake,
        kie=None,  # type: ignore[arg-type]  # set just below
        clients=[],
    )
    world.kie = world.new_client()
    try:
        yield world
    finally:
        for client in world.clients:
            await client.aclose()
        await fake.stop()


# (catalog id, photos sent, what the create carries)
MODELS = [
    ("veo3-fast", 0, {"model": "veo3_fast", "generationType": "TEXT_2_VIDEO"}),
    ("veo3-fast", 1, {"model": "veo3_fast", "generationType": "FIRST_AND_LAST_FRAMES_2_VIDEO"}),
    ("runway-gen3", 0, {"duration": 5, "quality": "720p", "aspectRatio": "16:9"}),
    ("runway-gen3", 1, {"duration": 5, "quality": "720p"}),
    ("wan-2.2-t2v", 0, {"model": "wan/2-2-a14b-text-to-video-turbo"}),
    ("wan-2.2-i2v", 1, {"model": "wan/2-2-a14b-image-to-video-turbo"}),
    ("kling-2.1", 1, {"model": "kling/v2-1-standard"}),
]


@pytest.mark.parametrize(
    ("model_id", "photos", "carried"), MODELS, ids=[f"{m}-{p}photo" for m, p, _ in MODELS]
)
async def test_each_video_model_is_generated_stored_and_delivered(
    world: VideoWorld, model_id: str, photos: int, carried: dict[str, object]
) -> None:
    job = await world.queue(Draft(model_id, "custom", "a fox running in snow"), photos=photos)
    assert await world.drive(world.runner()) >= 2  # submit, then the poll that finds it done

    stored = await world.job(job.id)
    assert stored.status == JobStatus.SUCCEEDED.value, stored.error_message
    [result] = stored.results
    assert result.is_video
    assert result.key == f"results/{job.id}/0.mp4"
    assert (result.width, result.height) == (96, 54)
    assert result.duration == pytest.approx(1.0, abs=0.1)
    assert result.size == len(VIDEO)
    assert await world.storage.get(result.key) == VIDEO
    assert result.thumbnail_key is not None
    with Image.open(io.BytesIO(await world.storage.get(result.thumbnail_key))) as thumb:
        assert thumb.format == "JPEG"
        assert max(thumb.size) <= 320
    [(delivered_id, outputs)] = world.notifier.deliveries
    assert delivered_id == job.id
    assert outputs[0][1] == VIDEO
    assert world.billing.of("capture") == [("capture", job.id, 1)]
    assert world.billing.of("release") == []

    [body] = world.creates()
    for key, value in carried.items():
        model_input = body.get("input")
        found = body.get(key, model_input.get(key) if isinstance(model_input, dict) else None)
        assert found == value, (key, body)
    if photos:
        # The user's photo went to KIE's upload API and only its URL to the create.
        [upload] = world.fake.uploads.values()
        assert upload.data == photo()
        text = str(body)
        assert world.fake.base_url in text
        assert "api.telegram.org" not in text


async def test_a_video_job_shows_the_providers_state_while_it_waits(world: VideoWorld) -> None:
    world.fake.run_seconds = 60.0
    job = await world.queue(Draft("runway-gen3", "custom", "waves at night"))
    runner = world.runner()
    job_id, _ = world.dispatcher.pending.popleft()
    await runner.run_step(job_id)  # submit: KIE has the task
    job_id, delay = world.dispatcher.pending.popleft()
    world.clock.advance(delay)
    await runner.run_step(job_id)  # the first poll: Runway says "wait"
    stored = await world.job(job.id)
    assert stored.provider_job_id in world.fake.tasks
    assert stored.provider_state == "waiting"
    assert stored.status == JobStatus.RUNNING.value or stored.status == "running"


async def test_a_restarted_worker_reattaches_by_task_id_and_delivers_once(
    world: VideoWorld,
) -> None:
    world.fake.run_seconds = 60.0
    job = await world.queue(Draft("kling-2.1", "custom", "a cat turns its head"), photos=1)
    first = world.runner()
    job_id, _ = world.dispatcher.pending.popleft()
    await first.run_step(job_id)  # submitted; then the process dies
    stored = await world.job(job.id)
    task_id = stored.provider_job_id
    assert task_id is not None
    world.fake.tasks[task_id].run_seconds = 0.0  # it finishes while nobody looks

    # A new process: a new client that never saw the task (it finds its family).
    restarted = world.runner(world.new_client())
    await world.drive(restarted)
    stored = await world.job(job.id)
    assert stored.status == JobStatus.SUCCEEDED.value
    assert len(world.fake.tasks) == 1  # never created twice
    assert len(world.notifier.deliveries) == 1
    assert world.billing.of("capture") == [("capture", job.id, 1)]


FAILURES = [
    # (code, where, error class, what the user is told)
    (400, "task", ErrorClass.SAFETY, None),
    (401, "create", ErrorClass.UNAVAILABLE, None),
    (402, "create", ErrorClass.UNAVAILABLE, None),
    (505, "create", ErrorClass.UNAVAILABLE, None),
    (451, "task", ErrorClass.INVALID_INPUT, "image_fetch"),
    (501, "task", ErrorClass.INVALID_INPUT, "generation_failed"),
    (422, "create", ErrorClass.INVALID_INPUT, "invalid_request"),
]


@pytest.mark.parametrize(("code", "where", "error_class", "told"), FAILURES)
async def test_each_failure_is_classified_released_and_explained(
    world: VideoWorld, code: int, where: str, error_class: ErrorClass, told: str | None
) -> None:
    if where == "task":
        world.fake.fail_next_task(code)
    else:
        world.fake.fail_next(code, on="create", in_body=True)  # KIE's errors in a 200 body
    job = await world.queue(Draft("kling-2.1", "custom", "a dancing robot"), photos=1)
    await world.drive(world.runner())
    stored = await world.job(job.id)
    assert stored.status == JobStatus.FAILED.value
    assert stored.error_class == error_class.value
    if error_class is ErrorClass.SAFETY:
        assert stored.user_error  # the provider's reason, shown with the safety text
    else:
        assert stored.user_error == told
    assert world.billing.of("release") == [("release", job.id, None)]
    assert world.billing.of("capture") == []
    assert world.notifier.failures == [(job.id, error_class.value, stored.user_error)]
    assert world.notifier.deliveries == []


@pytest.mark.parametrize("code", [408, 429, 455, 500])
async def test_transient_codes_are_retried_and_then_succeed(world: VideoWorld, code: int) -> None:
    world.fake.fail_next(code, on="create", in_body=code != 429)
    job = await world.queue(Draft("wan-2.2-t2v", "custom", "a windmill at dawn"))
    await world.drive(world.runner())
    stored = await world.job(job.id)
    assert stored.status == JobStatus.SUCCEEDED.value, stored.error_message
    assert stored.attempts == 1
    assert world.billing.of("capture") == [("capture", job.id, 1)]


async def test_an_expired_result_link_fails_the_job_and_releases(world: VideoWorld) -> None:
    world.fake.run_seconds = 60.0
    job = await world.queue(Draft("wan-2.2-t2v", "custom", "a quiet lake"))
    runner = world.runner()
    job_id, _ = world.dispatcher.pending.popleft()
    await runner.run_step(job_id)
    for task in world.fake.tasks.values():
        task.run_seconds = 0.0
    world.fake.expire_results()
    await world.drive(runner)
    stored = await world.job(job.id)
    assert stored.status == JobStatus.FAILED.value
    assert stored.user_error == "result_expired"
    assert world.billing.of("release") == [("release", job.id, None)]


async def test_an_image_to_video_model_needs_its_photo_and_a_fit_one(world: VideoWorld) -> None:
    user = await world.register()
    async with world.sessionmaker() as session:
        service = world.generation(session)
        with pytest.raises(InvalidReferenceError) as missing:
            await service.queue(user, Draft("kling-2.1", "custom", "a cat"), ORIGIN)
        assert missing.value.reason == "missing"
        with pytest.raises(InvalidReferenceError) as small:
            await service.add_reference(USER_ID, photo(200, 200), "kling-2.1", 0)
        assert small.value.reason == "dimensions"
        with pytest.raises(InvalidReferenceError) as narrow:
            await service.add_reference(USER_ID, photo(1500, 400), "kling-2.1", 0)
        assert narrow.value.reason == "aspect"
    assert world.fake.tasks == {}
    assert world.billing.calls == []  # nothing held, nothing sent


def test_the_probe_reads_a_real_mp4() -> None:
    info = probe_video(VIDEO)
    assert (info.container, info.mime_type, info.width, info.height) == (
        "mp4",
        "video/mp4",
        96,
        54,
    )
    assert info.duration == pytest.approx(1.0, abs=0.1)
