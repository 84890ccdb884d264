"""Generation jobs: states, steps and the rules for moving between them.

A job is the durable record of one generation request; the jobs table is the
source of truth, queues only carry job ids. Work is split into short steps so
no step holds a worker for long and a crash loses at most one step:

    SUBMIT  -> send the request to the provider (asynchronous providers give a job id)
    POLL    -> ask the provider how it is going, with back-off, until it is finished
    DELIVER -> the results are stored; send them to the user in chat
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
    """One delivered output: where it is stored, and Telegram's ids once sent."""

    key: str
    mime_type: str
    width: int | None = None
    height: int | None = None
    photo_file_id: str | None = None
    document_file_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "mime_type": self.mime_type,
            "width": self.width,
            "height": self.height,
            "photo_file_id": self.photo_file_id,
            "document_file_id": self.document_file_id,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ResultFile:
        return cls(
            key=str(data["key"]),
            mime_type=str(data["mime_type"]),
            width=data.get("width"),
            height=data.get("height"),
            photo_file_id=data.get("photo_file_id"),
            document_file_id=data.get("document_file_id"),
        )


@dataclass(eq=False)
class Job:
    user_id: int
    chat_id: int
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
    status: str = JobStatus.QUEUED.value
    step: str = JobStep.SUBMIT.value
    priority: int = 0
    provider_job_id: str | None = None
    progress: float | None = None
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
    status_message_id: int | None = None
    status_text: str | None = None
    result_files: list[dict[str, Any]] = field(default_factory=list)
    id: int | None = None

    @property
    def job_status(self) -> JobStatus:
        return JobStatus(self.status)

    @property
    def results(self) -> list[ResultFile]:
        return [ResultFile.from_json(item) for item in self.result_files]

    def past_deadline(self, now: datetime, rules: RetryRules) -> bool:
        start = self.started_at or self.created_at
        return now - start > rules.deadline
