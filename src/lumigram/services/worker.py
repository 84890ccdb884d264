"""Running jobs: one short step per dispatch, and a sweeper for what fell through.

A step is: claim the job (one conditional UPDATE, so a duplicate dispatch does
nothing), call the provider with no transaction open, then write the outcome
only if the lease is still ours. Asynchronous provider jobs are re-attached by
their provider job id after a restart; a job that never reached the provider
is simply submitted again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TypeVar

from lumigram.domain.generation import (
    ErrorKind,
    GenerationRequest,
    ProviderError,
    ReferenceImage,
    TaskState,
    TaskStatus,
)
from lumigram.domain.jobs import (
    COLORING,
    ErrorClass,
    Job,
    JobEvent,
    JobEventKind,
    JobStep,
    ResultFile,
    RetryRules,
)
from lumigram.domain.media import InvalidImage, InvalidVideo, sniff_media_type
from lumigram.services.clock import Clock, utc_now
from lumigram.services.ports import (
    FileStorage,
    ImageProcessor,
    ImageProvider,
    JobDispatcher,
    JobEvents,
    ProviderSlots,
    UnitOfWorkFactory,
    VideoProcessor,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

FORMAT_ALIASES = {"jpeg": ("jpeg", "jpg"), "jpg": ("jpg", "jpeg")}
EXTENSIONS = {
    "image/png": "png",
    "image/jpeg": "jpg",
    "image/webp": "webp",
    "image/gif": "gif",
    "video/mp4": "mp4",
    "video/webm": "webm",
}
THUMBNAIL_SIDE = 320  # Telegram's limit for a video's thumbnail


@dataclass(frozen=True, slots=True)
class WorkerPolicy:
    # A worker's hold on a step; renewed every third of it while the step runs, so a
    # dead worker's job is taken over by another about this long after it died.
    lease: timedelta = timedelta(seconds=30)
    rules: RetryRules = field(default_factory=RetryRules)
    provider_concurrency: int = 8  # provider calls at once, per provider
    progress_interval: float = 3.0  # seconds between two progress events of a job
    sweep_batch: int = 200


class LocalProviderSlots:
    """``ProviderSlots`` of one process: a semaphore per provider."""

    def __init__(self, concurrency: int) -> None:
        self.concurrency = concurrency
        self._semaphores: dict[str, asyncio.Semaphore] = {}

    @contextlib.asynccontextmanager
    async def hold(self, provider: str) -> AsyncIterator[None]:
        semaphore = self._semaphores.get(provider)
        if semaphore is None:
            semaphore = self._semaphores[provider] = asyncio.Semaphore(self.concurrency)
        async with semaphore:
            yield


class JobRunner:
    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        providers: Mapping[str, ImageProvider],
        storage: FileStorage,
        events: JobEvents,
        dispatcher: JobDispatcher,
        policy: WorkerPolicy | None = None,
        clock: Clock = utc_now,
        after_failure: Callable[[], Awaitable[None]] | None = None,
        *,
        images: ImageProcessor,
        videos: VideoProcessor | None = None,
        slots: ProviderSlots | None = None,
    ) -> None:
        self._images = images  # Pillow work, run in a thread
        self._videos = videos  # PyAV work, run in a thread; None: no video results
        self._after_failure = after_failure  # e.g. send the refund of a paid job now
        self._uow = uow_factory
        self._providers = providers
        self._storage = storage
        self._events = events  # to the job's channel (and observers such as metrics)
        self._dispatcher = dispatcher
        self.policy = policy or WorkerPolicy()
        self._clock = clock
        self._last_progress: dict[int, float] = {}  # job id -> monotonic time of last edit
        self._running: dict[int, str] = {}  # job id -> lease token of the steps running here
        # At most ``provider_concurrency`` calls to a provider at once: in this process,
        # or across every worker process when the slots are shared (Redis).
        self._slots = slots or LocalProviderSlots(self.policy.provider_concurrency)

    # --- entry points -------------------------------------------------------
    async def run_step(self, job_id: int) -> None:
        """Do whatever the job needs next. Safe to call twice: the claim decides."""
        token = secrets.token_hex(16)
        now = self._clock()
        async with self._uow() as uow:
            job = await uow.jobs.claim(
                job_id, now=now, lease_until=now + self.policy.lease, token=token
            )
        if job is None:
            return
        self._running[job_id] = token
        renewal = asyncio.create_task(self._renew(job_id, token), name=f"lease-{job_id}")
        stopped = False
        try:
            await self._step(job, token)
        except ProviderError as error:
            await self._provider_failed(job, token, error, resubmit=False)
        except asyncio.CancelledError:  # shutting down: ``hand_back`` releases the lease
            stopped = True
            raise
        except Exception:
            log.exception("job %s: step %s crashed", job.id, job.step)
            await self._fail(job, token, ErrorClass.INTERNAL, "internal error", None)
        finally:
            renewal.cancel()
            if not stopped and self._running.get(job_id) == token:
                del self._running[job_id]

    async def _renew(self, job_id: int, token: str) -> None:
        """Keep the lease while the step runs (a long provider call, a big download)."""
        lease = self.policy.lease
        while True:
            await asyncio.sleep(lease.total_seconds() / 3)
            try:
                async with self._uow() as uow:
                    kept = await uow.jobs.renew_lease(job_id, token, self._clock() + lease)
            except Exception as error:  # try again; the lease still has two thirds left
                log.warning("job %s: renewing its lease failed (%s)", job_id, error)
                continue
            if not kept:
                return  # cancelled or taken over: the step's own write will notice

    async def hand_back(self) -> int:
        """At shutdown, after the running steps were stopped: release their leases, so
        another worker takes the jobs over now instead of after the lease expires."""
        running, self._running = dict(self._running), {}
        handed = 0
        for job_id, token in running.items():
            try:
                async with self._uow() as uow:
                    handed += await uow.jobs.release_lease(job_id, token)
            except Exception as error:  # the lease expires by itself
                log.warning("job %s: could not hand it back (%s)", job_id, error)
        if handed:
            log.info("handed %s running job(s) back to the other workers", handed)
        return handed

    async def sweep(self) -> int:
        """Dispatch every active job that is due and not leased; returns how many."""
        # Forget progress timestamps of jobs that ended elsewhere (e.g. cancelled by the user).
        cutoff = time.monotonic() - 3600
        for job_id in [k for k, v in self._last_progress.items() if v < cutoff]:
            del self._last_progress[job_id]
        async with self._uow() as uow:
            due = await uow.jobs.due(self._clock(), self.policy.sweep_batch)
        for job_id in due:
            await self._dispatcher.dispatch(job_id)
        return len(due)

    async def recover(self) -> int:
        """At start-up of a single-process deployment (``lumigram run`` on SQLite): no
        lease can be alive, drop them all. Everywhere else leases expire by themselves."""
        async with self._uow() as uow:
            released = await uow.jobs.release_all_leases()
        if released:
            log.info("re-attaching %s interrupted job(s)", released)
        return await self.sweep()

    # --- steps --------------------------------------------------------------
    async def _step(self, job: Job, token: str) -> None:
        if job.past_deadline(self._clock(), self.policy.rules) and job.step != JobStep.DELIVER:
            await self._cancel_at_provider(job)
            await self._fail(job, token, ErrorClass.TIMEOUT, "deadline passed", None)
            return
        match JobStep(job.step):
            case JobStep.SUBMIT:
                await self._notify_progress(job)
                status = await self._with_provider(job, self._submit(job))
                await self._after_status(job, token, status)
            case JobStep.POLL:
                assert job.provider_job_id is not None
                provider = self._provider(job)
                status = await self._with_provider(job, provider.poll(job.provider_job_id))
                await self._after_status(job, token, status)
            case JobStep.DELIVER:
                await self._deliver(job, token)
            case JobStep.DONE:  # delivered, but the final write was interrupted
                job.succeed(self._clock())
                await self._save(job, token)

    async def _submit(self, job: Job) -> TaskStatus:
        provider = self._provider(job)
        references = [
            ReferenceImage(data=data, mime_type=_sniff(data))
            for data in await asyncio.gather(*(self._storage.get(k) for k in job.reference_files))
        ]
        return await provider.submit(self._request(job, provider, tuple(references)))

    async def _after_status(self, job: Job, token: str, status: TaskStatus) -> None:
        if status.state is TaskState.SUCCEEDED:
            await self._collect(job, token, status)
        elif status.state is TaskState.FAILED:
            error = status.error or ProviderError(ErrorKind.TRANSIENT, "provider job failed")
            # The provider's job is dead: a retry has to submit a new one.
            await self._provider_failed(job, token, error, resubmit=True)
        elif status.state is TaskState.CANCELLED:
            await self._fail(job, token, ErrorClass.TRANSIENT, "cancelled at the provider", None)
        else:
            submitted = job.step == JobStep.SUBMIT
            delay = self.policy.rules.poll_interval(job.polls)
            job.progress = status.progress
            job.provider_state = status.phase
            await self._notify_progress(job)
            job.wait_for_provider(
                self._clock(),
                provider_job_id=status.provider_job_id,
                progress=status.progress,
                delay=delay,
                provider_state=status.phase,
            )
            kept = await self._release(job, token, delay)
            if not kept and submitted:
                # Cancelled while the submit was in flight: nobody else knows this
                # provider job, so stop it here or it runs (and bills) for nothing.
                await self._cancel_at_provider(job)

    async def _collect(self, job: Job, token: str, status: TaskStatus) -> None:
        """Download, post-process and store the outputs, then deliver them."""
        provider = self._provider(job)
        coloring = job.settings.get(COLORING) is True
        stored: list[tuple[ResultFile, bytes]] = []
        for index, ref in enumerate(status.outputs):
            data = await self._with_provider(job, provider.fetch(ref))
            if (sniff_media_type(data) or "").startswith("video/"):
                stored.append((await self._store_video(job, index, data), data))
                continue
            if coloring:
                data = await asyncio.to_thread(self._images.to_coloring_page, data)
            try:
                info = await asyncio.to_thread(self._images.probe, data)
            except InvalidImage as error:
                raise ProviderError(ErrorKind.TRANSIENT, f"unusable output: {error}") from None
            key = f"results/{job.id}/{index}.{EXTENSIONS.get(info.mime_type, 'bin')}"
            await self._storage.put(key, data, info.mime_type)
            stored.append((ResultFile(key, info.mime_type, info.width, info.height), data))
        if not stored:
            raise ProviderError(ErrorKind.TRANSIENT, "the provider returned no output")
        job.collected(self._clock(), [result for result, _ in stored])
        if await self._save(job, token):
            await self._deliver(job, token, stored)

    async def _store_video(self, job: Job, index: int, data: bytes) -> ResultFile:
        """Probe a video (container, size, duration) and keep it with its first frame."""
        if self._videos is None:
            raise ProviderError(ErrorKind.UNAVAILABLE, "a video result, but no video support")
        try:
            info = await asyncio.to_thread(self._videos.probe, data)
            thumbnail = await asyncio.to_thread(self._videos.first_frame, data, THUMBNAIL_SIDE)
        except InvalidVideo as error:
            raise ProviderError(ErrorKind.TRANSIENT, f"unusable video: {error}") from None
        base = f"results/{job.id}/{index}"
        key = f"{base}.{EXTENSIONS.get(info.mime_type, 'bin')}"
        thumbnail_key = f"{base}.thumb.jpg"
        await self._storage.put(thumbnail_key, thumbnail, "image/jpeg")
        await self._storage.put(key, data, info.mime_type)
        return ResultFile(
            key,
            info.mime_type,
            info.width,
            info.height,
            duration=info.duration,
            thumbnail_key=thumbnail_key,
            size=len(data),
        )

    async def _deliver(
        self, job: Job, token: str, outputs: list[tuple[ResultFile, bytes]] | None = None
    ) -> None:
        """The channel gets the results, then the job is marked succeeded and its hold
        captured in one transaction (a crash in between delivers again: at least once)."""
        if outputs is None:
            outputs = [(r, await self._storage.get(r.key)) for r in job.results]
        self._last_progress.pop(job.id or 0, None)
        await self._events.publish(JobEvent(JobEventKind.SUCCEEDED, job, tuple(outputs)))
        job.succeed(self._clock())
        async with self._uow() as uow:
            if await uow.jobs.save_leased(job, token):
                await uow.billing.capture(job, len(outputs))

    # --- failures -------------------------------------------------------------
    async def _provider_failed(
        self, job: Job, token: str, error: ProviderError, *, resubmit: bool
    ) -> None:
        rules = self.policy.rules
        if error.kind is ErrorKind.UNAVAILABLE:
            # The operator must act (key, credit, configuration): say so loudly.
            log.error("OPERATOR ALERT: provider %s unavailable: %s", job.provider, error)
        if error.kind is ErrorKind.TRANSIENT and job.attempts + 1 < rules.max_attempts:
            delay = rules.backoff(job.attempts + 1, error.retry_after)
            log.warning("job %s: transient failure (%s), retry in %.1fs", job.id, error, delay)
            job.retry(self._clock(), delay=delay, resubmit=resubmit)
            await self._release(job, token, delay)
            return
        error_class = ErrorClass.from_kind(error.kind)
        # The provider's own words only for a safety refusal; otherwise the name of a
        # text each channel translates (``USER_CODES``), if the provider gave one.
        user_reason = error.user_reason if error.kind is ErrorKind.SAFETY else error.user_code
        await self._fail(job, token, error_class, str(error), user_reason)

    async def _fail(
        self,
        job: Job,
        token: str,
        error_class: ErrorClass,
        message: str,
        user_reason: str | None,
    ) -> None:
        job.fail(self._clock(), error_class, message, user_reason)
        async with self._uow() as uow:
            failed = await uow.jobs.save_leased(job, token)
            if failed:
                await uow.billing.release(job)
        self._last_progress.pop(job.id or 0, None)
        if failed:
            await self._events.publish(JobEvent(JobEventKind.FAILED, job))
            if self._after_failure is not None:
                try:
                    await self._after_failure()
                except Exception:  # the sweeper tries again; the job has failed either way
                    log.exception("job %s: settling money after the failure failed", job.id)

    # --- helpers ----------------------------------------------------------------
    async def _release(self, job: Job, token: str, delay: float) -> bool:
        """Save the step's outcome (the job's state change, which freed the lease) and
        schedule the next step. False if the lease was lost (cancelled or taken over)."""
        wrote = await self._save(job, token)
        if wrote:
            await self._dispatcher.dispatch(job.id or 0, delay=delay, priority=job.priority)
        return wrote

    async def _save(self, job: Job, token: str) -> bool:
        async with self._uow() as uow:
            wrote = await uow.jobs.save_leased(job, token)
        if not wrote:
            log.info("job %s: lease lost (cancelled or taken over); dropping this step", job.id)
        return wrote

    async def _notify_progress(self, job: Job) -> None:
        """A progress event, at most one per ``progress_interval`` per job."""
        now = time.monotonic()
        last = self._last_progress.get(job.id or 0)
        if last is not None and now - last < self.policy.progress_interval:
            return
        self._last_progress[job.id or 0] = now
        await self._events.publish(JobEvent(JobEventKind.PROGRESSED, job))

    async def _with_provider(self, job: Job, call: Awaitable[T]) -> T:
        """At most ``provider_concurrency`` calls to one provider at a time."""
        async with self._slots.hold(job.provider):
            return await call

    def _provider(self, job: Job) -> ImageProvider:
        provider = self._providers.get(job.provider)
        if provider is None:
            raise ProviderError(
                ErrorKind.UNAVAILABLE, f"provider {job.provider} is not configured any more"
            )
        return provider

    async def _cancel_at_provider(self, job: Job) -> None:
        provider = self._providers.get(job.provider)
        if provider is not None and job.provider_job_id:
            try:
                await provider.cancel(job.provider_job_id)
            except ProviderError as error:
                log.warning("job %s: cancel at provider failed: %s", job.id, error)

    @staticmethod
    def _request(
        job: Job, provider: ImageProvider, references: tuple[ReferenceImage, ...]
    ) -> GenerationRequest:
        settings = job.settings
        output_format = settings.get("output_format")
        if output_format:
            offered = provider.capabilities(job.provider_model).output_formats
            for candidate in FORMAT_ALIASES.get(output_format, (output_format,)):
                if candidate in offered:
                    output_format = candidate
                    break
        extra: dict[str, object] = {
            k: settings[k] for k in ("resolution", "quality") if settings.get(k)
        }
        if settings.get("duration_seconds"):
            extra["duration"] = int(settings["duration_seconds"])
        return GenerationRequest(
            model=job.provider_model,
            prompt=job.final_prompt,
            negative_prompt=settings.get("negative_prompt"),
            aspect_ratio=settings.get("aspect_ratio"),
            output_format=output_format,
            num_outputs=int(settings.get("num_outputs", 1)),
            seed=settings.get("seed"),
            prompt_upsampling=settings.get("prompt_upsampling"),
            safety_level=settings.get("safety_level"),
            references=references,
            extra=extra,
        )


def _sniff(data: bytes) -> str:
    return sniff_media_type(data) or "application/octet-stream"
