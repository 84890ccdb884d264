"""What a generation asks of a provider and what comes back: pure values and rules.

A generation is submit -> (poll ...) -> fetch. Providers whose API answers
synchronously return a finished ``TaskStatus`` from ``submit``; asynchronous
ones return a provider job id that the job service stores, so a job can be
re-attached after a restart instead of being paid for twice. The interface a
provider client implements is ``lumigram.services.ports.ImageProvider``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class OutputKind(StrEnum):
    IMAGE = "image"
    VIDEO = "video"


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What one provider model accepts; the UI offers only these settings."""

    outputs: frozenset[OutputKind] = frozenset({OutputKind.IMAGE})
    max_reference_images: int = 0
    aspect_ratios: tuple[str, ...] = ("1:1",)
    output_formats: tuple[str, ...] = ("png",)
    max_outputs: int = 1
    seed: bool = False
    negative_prompt: bool = False
    prompt_upsampling: bool = False
    safety_levels: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class ReferenceImage:
    data: bytes
    mime_type: str  # image/jpeg, image/png or image/webp


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    model: str  # the provider's own model name, e.g. "black-forest-labs/flux-1.1-pro"
    prompt: str
    negative_prompt: str | None = None
    aspect_ratio: str | None = None
    output_format: str | None = None
    num_outputs: int = 1
    seed: int | None = None
    prompt_upsampling: bool | None = None
    safety_level: int | None = None
    references: tuple[ReferenceImage, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)


class TaskState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in (TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELLED)


@dataclass(frozen=True, slots=True)
class ResultRef:
    """One output: either a URL to download or bytes the provider returned inline."""

    url: str | None = None
    data: bytes | None = None
    mime_type: str | None = None


class ErrorKind(StrEnum):
    TRANSIENT = "transient"  # network, 429, 5xx, timeouts: retry later
    SAFETY = "safety"  # the model's safety filter refused the prompt or the output
    INVALID_INPUT = "invalid_input"  # the request itself is wrong; retrying will not help
    UNAVAILABLE = "unavailable"  # out of credit, bad key, misconfiguration: alert the operator


# What ``ProviderError.user_code`` may name (each channel has a text for each).
USER_CODES = frozenset({"image_fetch", "generation_failed", "result_expired", "invalid_request"})


class ProviderError(Exception):
    """A classified provider failure.

    ``user_reason`` is safe to show to the user (for SAFETY it carries the
    provider's reason where that reason is fit to show); ``str(error)`` is for
    the operator's log and never contains a key.
    """

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        user_reason: str | None = None,
        retry_after: float | None = None,
        status_code: int | None = None,
        user_code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.user_reason = user_reason
        # A stable name of what the user should be told, translated by the channel
        # (USER_CODES); the generic text of the error's kind where None.
        self.user_code = user_code
        self.retry_after = retry_after
        self.status_code = status_code


@dataclass(frozen=True, slots=True)
class TaskStatus:
    state: TaskState
    provider_job_id: str | None = None
    progress: float | None = None  # 0.0 .. 1.0 where the provider reports it
    outputs: tuple[ResultRef, ...] = ()
    error: ProviderError | None = None
    # The provider's own word for the state, where it has one worth showing (KIE:
    # "waiting", "queuing", "generating"); the user sees it beside the elapsed time.
    phase: str | None = None
