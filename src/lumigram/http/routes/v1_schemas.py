"""What the API under ``/v1`` answers: the generation object and the other bodies.

The generation object is the same in ``GET /v1/generations/{id}``, the answer to
``POST /v1/generations`` and the body POSTed to a ``callback_url`` (docs/api.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from lumigram.domain.jobs import COLORING, ErrorClass, Job, JobStatus, JobStep, ResultFile

# The mode (template slug) of a request that names none: the user's text as is.
DEFAULT_MODE = "custom"
# Settings a job keeps for itself, not ones a request chooses.
INTERNAL_SETTINGS = frozenset({COLORING, "reference_images"})
EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif"}

# What a failed generation says when the provider gave no reason fit to show.
ERROR_TEXTS: dict[str, str] = {
    ErrorClass.SAFETY.value: "the model's safety filter declined this request",
    ErrorClass.INVALID_INPUT.value: "the model could not process this request",
    ErrorClass.UNAVAILABLE.value: "this model is temporarily unavailable; try another one",
    ErrorClass.TRANSIENT.value: "the generation failed; nothing was charged",
    ErrorClass.TIMEOUT.value: "the generation took too long and was stopped; nothing was charged",
    ErrorClass.INTERNAL.value: "something went wrong on our side; nothing was charged",
}

Status = Literal["awaiting_payment", "queued", "running", "succeeded", "failed", "cancelled"]


class FileOut(BaseModel):
    index: int = Field(description="1, 2, …: the n of /v1/generations/{id}/files/{n}")
    url: str = Field(description="absolute with PUBLIC_BASE_URL set, else a path")
    mime_type: str
    width: int | None = None
    height: int | None = None


class ErrorOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    class_: str = Field(
        alias="class",
        description="safety, invalid_input, unavailable, transient, timeout or internal",
    )
    message: str


class GenerationOut(BaseModel):
    """A generation (a job) as the API shows it."""

    id: int
    status: Status
    model: str
    mode: str
    prompt: str
    settings: dict[str, Any] = Field(description="the settings used, defaults filled in")
    references: int = Field(description="how many reference images came with the request")
    queue_position: int | None = Field(description="1 = next; only while queued")
    progress: float | None = Field(description="0 to 1 where the provider reports it")
    error: ErrorOut | None = Field(description="only when failed")
    files: list[FileOut] = Field(description="the results, once stored")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class ModeOut(BaseModel):
    slug: str = Field(description="the value of `mode` in a request")
    title: str
    kind: str = Field(description="preset (wraps your text), custom or coloring")


class ModelOut(BaseModel):
    id: str = Field(description="the value of `model` in a request")
    name: str
    description: str
    premium: bool = Field(description="needs a subscription tier with premium models")
    available: bool = Field(description="the key's user may use it now")
    price_credits: int = Field(description="credits for one image at the default settings")
    capabilities: dict[str, Any] = Field(description="what `settings` may choose")
    defaults: dict[str, Any] = Field(description="the settings used where none are chosen")


class ModelsOut(BaseModel):
    models: list[ModelOut]
    modes: list[ModeOut]


class PerksOut(BaseModel):
    max_outputs: int = Field(description="images per request")
    max_active_jobs: int = Field(description="generations at once")
    premium_models: bool


class SubscriptionOut(BaseModel):
    active: bool
    tier: str | None = Field(description="the tier's id (basic, pro, …) while active")
    name: str | None
    images_left: int = Field(description="what is left of this period's allowance")
    renews_at: datetime | None = Field(description="set while it renews")
    ends_at: datetime | None = Field(description="set when renewal is cancelled or failed")
    perks: PerksOut


class MeOut(BaseModel):
    user_id: int = Field(description="the Telegram user id")
    language: str
    credits: int
    free_images_left: int
    stars: int = Field(description="Stars left over from paid generations")
    subscription: SubscriptionOut


class ProblemOut(BaseModel):
    """An error (RFC 9457); some problems have more members (docs/api.md)."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str


def utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def file_path(job_id: int, index: int) -> str:
    return f"/v1/generations/{job_id}/files/{index}"


def absolute(path: str, base_url: str | None) -> str:
    return f"{base_url.rstrip('/')}{path}" if base_url else path


def file_extension(result: ResultFile) -> str:
    extension = EXTENSIONS.get(result.mime_type)
    if extension is None:
        suffix = result.key.rsplit("/", 1)[-1]
        extension = suffix.rsplit(".", 1)[-1] if "." in suffix else "bin"
    return extension


def files_ready(job: Job) -> bool:
    """The results may be shown and served: stored, and the job not failed or cancelled
    (they are stored just before the job is marked succeeded)."""
    status = JobStatus(job.status)
    if status is JobStatus.SUCCEEDED:
        return True
    return status is JobStatus.RUNNING and JobStep(job.step) in (JobStep.DELIVER, JobStep.DONE)


def error_of(job: Job) -> ErrorOut | None:
    if JobStatus(job.status) is not JobStatus.FAILED:
        return None
    error_class = job.error_class or ErrorClass.INTERNAL.value
    default = ERROR_TEXTS.get(error_class, ERROR_TEXTS[ErrorClass.INTERNAL.value])
    message = default
    if job.user_error:
        message = f"{default}: {job.user_error}" if error_class == "safety" else job.user_error
    return ErrorOut(class_=error_class, message=message)


def generation_object(
    job: Job,
    *,
    base_url: str | None,
    position: int | None = None,
    status: Status | None = None,
    results: Sequence[ResultFile] | None = None,
) -> GenerationOut:
    """``job`` as the API shows it. ``status`` and ``results`` override the job's (a
    callback's event says what happened before the job row does)."""
    assert job.id is not None
    shown: Status = status or JobStatus(job.status).value
    if results is None:
        results = job.results if files_ready(job) else []
    progress = job.progress
    if shown == "succeeded":
        progress = 1.0
    elif shown == "queued":
        progress = None
    return GenerationOut(
        id=job.id,
        status=shown,
        model=job.model_id,
        mode=job.mode,
        prompt=job.prompt,
        settings={k: v for k, v in job.settings.items() if k not in INTERNAL_SETTINGS},
        references=len(job.reference_files),
        queue_position=position if shown == "queued" else None,
        progress=progress,
        error=error_of(job) if shown == "failed" else None,
        files=[
            FileOut(
                index=index,
                url=absolute(file_path(job.id, index), base_url),
                mime_type=result.mime_type,
                width=result.width,
                height=result.height,
            )
            for index, result in enumerate(results, start=1)
        ],
        created_at=utc(job.created_at) or job.created_at,
        started_at=utc(job.started_at),
        finished_at=utc(job.finished_at),
    )
