"""Generation jobs: states, steps and the rules for moving between them.

A job is the durable record of one generation request; the jobs table is the
source of truth, queues only carry job ids. Work is split into short steps so
no step holds a worker for long and a crash loses at most one step:

    SUBMIT  -> send the request to the provider (asynchronous providers give a job id)
    POLL    -> ask the provider how it is going, with back-off, until it is finished
    DELIVER -> the results are stored; hand them to the job's channel

A job knows who asked and through which channel (a Telegram chat, an API key, the
admin panel), never a channel's own ids: progress and results go out as ``JobEvent``s
and each channel's adapter keeps its own message and file ids.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from lumigram.domain.generation import ErrorKind

# Job setting (not a model setting): post-process the output into a colouring page.
COLORING = "coloring"


class JobStatus(StrEnum):
    AWAITING_PAYMENT = "awaiting_payment"  # an invoice was sent; nothing runs until it is paid
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def active(self) -> bool:
        return self in ACTIVE_STATUSES


ACTIVE_STATUSES = frozenset({JobStatus.QUEUED, JobStatus.RUNNING})


class Channel(StrEnum):
    """Through which way in a job was asked for, and so where its events go."""

    TELEGRAM = "telegram"
    API = "api"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Origin:
    """Who asked, where to: the channel and its address (a chat, an API key's id)."""

    channel: Channel
    reply_to: str
    api_key_id: int | None = None
    callback_url: str | None = None  # API: the result is POSTed here, signed
    idempotency_key: str | None = None  # API: a retry with the same key gets the same job
    request_hash: str | None = None  # what the idempotency key was first used for


class JobStep(StrEnum):
    SUBMIT = "submit"
    POLL = "poll"
    DELIVER = "deliver"
    DONE = "done"


class ErrorClass(StrEnum):
    """Why a job failed; the first four mirror the providers' ErrorKind."""

    TRANSIENT = "transient"
    SAFETY = "safety"
    INVALID_INPUT = "invalid_input"
    UNAVAILABLE = "unavailable"
    TIMEOUT = "timeout"  # it took longer than the job deadline
    INTERNAL = "internal"  # our own bug; logged with a traceback

    @classmethod
    def from_kind(cls, kind: ErrorKind) -> ErrorClass:
        return cls(kind.value)


@dataclass(frozen=True, slots=True)
class RetryRules:
    """How often and how patiently a job is retried and polled."""

    max_attempts: int = 4  # transient failures of one job before it fails for good
    base_backoff: float = 2.0
    max_backoff: float = 60.0
    first_poll: float = 1.0
    max_poll_interval: float = 10.0
    deadline: timedelta = timedelta(minutes=15)  # from the first submit to a result

    def backoff(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_backoff)
        return min(self.base_backoff * float(2 ** (attempt - 1)), self.max_backoff)

    def poll_interval(self, polls_so_far: int) -> float:
        """Polls start fast (most images take seconds) and slow down (videos take minutes)."""
        return min(self.first_poll * float(1.5**polls_so_far), self.max_poll_interval)


@dataclass(frozen=True, slots=True)
class ResultFile:
    """One output: where it is stored and what it is (channels keep their own ids)."""

    key: str
    mime_type: str
    width: int | None = None
    height: int | None = None
    # Videos: seconds, the stored first frame (a JPEG) and the file's size in bytes.
    duration: float | None = None
    thumbnail_key: str | None = None
    size: int | None = None

    @property
    def is_video(self) -> bool:
        return self.mime_type.startswith("video/")

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "key": self.key,
            "mime_type": self.mime_type,
            "width": self.width,
            "height": self.height,
        }
        if self.duration is not None:
            data["duration"] = self.duration
        if self.thumbnail_key is not None:
            data["thumbnail_key"] = self.thumbnail_key
        if self.size is not None:
            data["size"] = self.size
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ResultFile:
        duration = data.get("duration")
        return cls(
            key=str(data["key"]),
            mime_type=str(data["mime_type"]),
            width=data.get("width"),
            height=data.get("height"),
            duration=float(duration) if duration is not None else None,
            thumbnail_key=data.get("thumbnail_key"),
            size=data.get("size"),
        )


@dataclass(eq=False)
class Job:
    user_id: int
    language: str
    model_id: str
    provider: str
    provider_model: str
    mode: str
    prompt: str
    final_prompt: str
    created_at: datetime
    updated_at: datetime
    next_attempt_at: datetime
    settings: dict[str, Any] = field(default_factory=dict)
    reference_files: list[str] = field(default_factory=list)
    template_id: int | None = None
    channel: Channel = Channel.TELEGRAM
    reply_to: str = ""  # the channel's address: a Telegram chat id, an API key id
    api_key_id: int | None = None
    callback_url: str | None = None
    idempotency_key: str | None = None
    request_hash: str | None = None
    status: JobStatus = JobStatus.QUEUED
    step: JobStep = JobStep.SUBMIT
    priority: int = 0
    provider_job_id: str | None = None
    progress: float | None = None
    # The provider's own word for where the job is ("waiting", "queuing", "generating").
    provider_state: str | None = None
    attempts: int = 0
    polls: int = 0
    lease_expires_at: datetime | None = None
    lease_token: str | None = None
    error_class: str | None = None
    error_message: str | None = None
    user_error: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    delivered_at: datetime | None = None
    result_files: list[dict[str, Any]] = field(default_factory=list)
    id: int | None = None

    @property
    def results(self) -> list[ResultFile]:
        return [ResultFile.from_json(item) for item in self.result_files]

    def past_deadline(self, now: datetime, rules: RetryRules) -> bool:
        start = self.started_at or self.created_at
        return now - start > rules.deadline

    # --- state changes of a claimed job; saved with the lease check (fields below) ---
    def _release(self, now: datetime, delay: float) -> None:
        self.lease_token = None
        self.lease_expires_at = None
        self.next_attempt_at = now + timedelta(seconds=delay)
        self.updated_at = now

    def wait_for_provider(
        self,
        now: datetime,
        *,
        provider_job_id: str | None,
        progress: float | None,
        delay: float,
        provider_state: str | None = None,
    ) -> None:
        """The provider is working on it: poll again after ``delay`` seconds."""
        self.step = JobStep.POLL
        self.provider_job_id = provider_job_id or self.provider_job_id
        self.progress = progress
        self.provider_state = provider_state
        self.polls += 1
        self._release(now, delay)

    def retry(self, now: datetime, *, delay: float, resubmit: bool) -> None:
        """A transient failure: try again after ``delay`` (a new provider job if
        ``resubmit`` or the submit itself failed)."""
        self.attempts += 1
        if resubmit or self.step == JobStep.SUBMIT:
            self.step, self.provider_job_id, self.polls = JobStep.SUBMIT, None, 0
        self._release(now, delay)

    def collected(self, now: datetime, results: list[ResultFile]) -> None:
        """The outputs are stored: next, deliver them (the lease is kept)."""
        self.step = JobStep.DELIVER
        self.progress = 1.0
        self.result_files = [result.to_json() for result in results]
        self.updated_at = now

    def succeed(self, now: datetime) -> None:
        self.status, self.step = JobStatus.SUCCEEDED, JobStep.DONE
        self.delivered_at = self.finished_at = now
        self.lease_token = self.lease_expires_at = None
        self.updated_at = now

    def fail(
        self, now: datetime, error_class: ErrorClass, message: str, user_error: str | None
    ) -> None:
        self.status = JobStatus.FAILED
        self.error_class, self.error_message = error_class.value, message[:2000]
        self.user_error = user_error
        self.finished_at = now
        self.lease_token = self.lease_expires_at = None
        self.updated_at = now


# What a worker's step may change: written together, only while its lease holds.
STEP_FIELDS = (
    "status",
    "step",
    "provider_job_id",
    "progress",
    "provider_state",
    "attempts",
    "polls",
    "next_attempt_at",
    "lease_expires_at",
    "lease_token",
    "error_class",
    "error_message",
    "user_error",
    "finished_at",
    "delivered_at",
    "result_files",
    "updated_at",
)


class JobEventKind(StrEnum):
    QUEUED = "queued"
    PROGRESSED = "progressed"
    SUCCEEDED = "succeeded"  # published before the job is marked succeeded (at least once)
    FAILED = "failed"
    CANCELLED = "cancelled"
    REFUNDED = "refunded"


@dataclass(frozen=True, slots=True)
class JobEvent:
    """What happened to a job, for whichever channel it came through."""

    kind: JobEventKind
    job: Job
    outputs: tuple[tuple[ResultFile, bytes], ...] = ()  # SUCCEEDED: the stored results
    position: int = 0  # QUEUED: place in the queue
