"""Replicate client: official-model predictions with a synchronous wait, polling and cancel.

A prediction is created with ``POST /v1/models/{owner}/{name}/predictions`` and
``Prefer: wait=<n>``; Replicate holds the request open up to ``n`` seconds, so
fast models come back finished and slow ones come back running, to be polled
with ``GET /v1/predictions/{id}``. A prediction that ran and failed is reported
as a FAILED ``TaskStatus`` carrying a classified ``ProviderError`` (it is a job
outcome, not a transport failure); HTTP-level failures raise ``ProviderError``.

With a ``webhook_url`` each prediction is created with ``"webhook"`` and
``"webhook_events_filter": ["completed"]``: Replicate POSTs the finished prediction
there, signed with the account's secret (``webhook_secret()``, from
``GET /v1/webhooks/default/secret``). It only wakes the job sooner; polling goes on.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from lumigram.domain.generation import (
    Capabilities,
    ErrorKind,
    GenerationRequest,
    ProviderError,
    ReferenceImage,
    ResultRef,
    TaskState,
    TaskStatus,
)
from lumigram.domain.media import sniff_media_type
from lumigram.providers.http import (
    ProviderHTTP,
    RetryPolicy,
    check_media,
    default_classification,
)

NAME = "replicate"

SAFETY_USER_REASON = (
    "The model's safety filter blocked this request. Try a different prompt or other images."
)


@dataclass(frozen=True, slots=True)
class ReplicateModel:
    """How one official model's input is built; the fake validates against the same table."""

    capabilities: Capabilities
    # Inputs sent unless the request overrides them (the model's own defaults differ).
    defaults: Mapping[str, Any] = field(default_factory=dict)
    # Model-specific inputs accepted from ``GenerationRequest.extra``, with their allowed values.
    extras: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    # Whether the model takes an ``output_format`` input (seedream-4 always answers JPEG).
    output_format_input: bool = True
    # seedream-4: outputs via sequential_image_generation/max_images; output is always a list.
    multi_output: bool = False
    # seedream-4: reference images plus generated images may not exceed this.
    max_total_images: int | None = None
    # Input that carries ``prompt_upsampling`` (flux: prompt_upsampling, seedream: enhance_prompt).
    upsampling_input: str | None = None
    # Our generic ``extra`` names that this model calls otherwise (seedream: resolution -> size).
    extra_inputs: Mapping[str, str] = field(default_factory=dict)


FLUX_ASPECT_RATIOS = ("1:1", "16:9", "3:2", "2:3", "4:5", "5:4", "9:16", "3:4", "4:3")
# "match_input_image" comes last: the first entry is what a UI offers by default.
SEEDREAM_ASPECT_RATIOS = (
    "1:1", "4:3", "3:4", "16:9", "9:16", "3:2", "2:3", "21:9", "match_input_image",
)  # fmt: skip
NANO_BANANA_ASPECT_RATIOS = (
    "1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9", "match_input_image",
)  # fmt: skip
MATCH_INPUT_IMAGE = "match_input_image"

MODELS: Mapping[str, ReplicateModel] = MappingProxyType(
    {
        "black-forest-labs/flux-1.1-pro": ReplicateModel(
            capabilities=Capabilities(
                aspect_ratios=FLUX_ASPECT_RATIOS,
                output_formats=("webp", "jpg", "png"),
                max_outputs=1,
                seed=True,
                prompt_upsampling=True,
                safety_levels=(1, 2, 3, 4, 5, 6),
            ),
            defaults={
                "aspect_ratio": "1:1",
                "output_format": "webp",
                "safety_tolerance": 2,
                "prompt_upsampling": True,
            },
            extras={"output_quality": tuple(range(101))},
            upsampling_input="prompt_upsampling",
        ),
        "bytedance/seedream-4": ReplicateModel(
            capabilities=Capabilities(
                max_reference_images=10,
                aspect_ratios=SEEDREAM_ASPECT_RATIOS,
                output_formats=("jpg",),
                max_outputs=15,
                prompt_upsampling=True,
            ),
            extras={"size": ("1K", "2K", "4K")},
            extra_inputs={"resolution": "size"},
            output_format_input=False,
            multi_output=True,
            max_total_images=15,
            upsampling_input="enhance_prompt",
        ),
        "google/nano-banana": ReplicateModel(
            capabilities=Capabilities(
                max_reference_images=10,
                aspect_ratios=NANO_BANANA_ASPECT_RATIOS,
                output_formats=("jpg", "png"),
            ),
        ),
        "google/nano-banana-pro": ReplicateModel(
            capabilities=Capabilities(
                max_reference_images=14,
                aspect_ratios=NANO_BANANA_ASPECT_RATIOS,
                output_formats=("jpg", "png"),
            ),
            extras={
                "resolution": ("1K", "2K", "4K"),
                "safety_filter_level": (
                    "block_low_and_above",
                    "block_medium_and_above",
                    "block_only_high",
                ),
            },
        ),
    }
)

# Replicate's documented prediction statuses ("aborted": cancelled before it started).
_STATES = MappingProxyType(
    {
        "starting": TaskState.QUEUED,
        "processing": TaskState.RUNNING,
        "succeeded": TaskState.SUCCEEDED,
        "failed": TaskState.FAILED,
        "canceled": TaskState.CANCELLED,
        "aborted": TaskState.CANCELLED,
    }
)

# Safety wording seen in Replicate prediction errors (flux "flagged as sensitive (E005)",
# SD-style "NSFW content detected", Gemini "blocked by safety filter").
_SAFETY_ERROR = re.compile(
    r"nsfw|sensitive|safety (?:checker|filter|system)|content (?:policy|moderation|filter)"
    r"|\bE005\b|prohibited content|blocked by",
    re.IGNORECASE,
)
_INVALID_ERROR = re.compile(
    r"invalid|validation|not supported|unsupported|too (?:large|many|long|big)", re.IGNORECASE
)
# tqdm progress bars in logs: "  45%|████▌     | 9/20 [00:02<00:02,  4.1it/s]".
_PROGRESS = re.compile(r"(\d{1,3})%\|")
_THROTTLED = re.compile(r"available in (\d+(?:\.\d+)?) seconds?", re.IGNORECASE)
_MIME_BY_EXTENSION = MappingProxyType(
    {
        ".png": "image/png",
        ".jpg": "image/jpeg",
        ".jpeg": "image/jpeg",
        ".webp": "image/webp",
        ".gif": "image/gif",
    }
)


class ReplicateProvider:
    """``ImageProvider`` for Replicate's official image models (see ``MODELS``).

    ``timeout`` should exceed ``wait_seconds``: the create request is held open
    that long by design. ``poll_interval`` is the pause ``wait()`` makes between
    polls, and a hint for callers that poll on their own.
    """

    name = NAME

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = "https://api.replicate.com",
        timeout: float = 60.0,
        retry: RetryPolicy | None = None,
        wait_seconds: int = 5,
        poll_interval: float = 1.0,
        webhook_url: str | None = None,
    ) -> None:
        if not api_key:
            raise ValueError("replicate: an API token is required")
        if not 1 <= wait_seconds <= 60:  # the Prefer header allows wait=1..60
            raise ValueError("replicate: wait_seconds must be between 1 and 60")
        self._api_key = api_key
        self.wait_seconds = wait_seconds
        self.poll_interval = poll_interval
        self.webhook_url = webhook_url or None
        self._webhook_secret: str | None = None
        self._secret_lock = asyncio.Lock()
        self._http = ProviderHTTP(
            NAME,
            base_url=base_url,
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=timeout,
            retry=retry,
        )

    # --- ImageProvider ----------------------------------------------------
    def capabilities(self, model: str) -> Capabilities:
        return MODELS[model].capabilities

    def models(self) -> Mapping[str, Capabilities]:
        return {name: spec.capabilities for name, spec in MODELS.items()}

    async def submit(self, request: GenerationRequest) -> TaskStatus:
        model_input = await build_input(request)
        body: dict[str, Any] = {"input": model_input}
        if self.webhook_url is not None:
            # Only the end matters: the job is woken to poll once, at once.
            body.update(webhook=self.webhook_url, webhook_events_filter=["completed"])
        response = await self._http.request(
            "POST",
            f"/v1/models/{request.model}/predictions",
            json=body,
            headers={"Prefer": f"wait={self.wait_seconds}"},
            classify=self._classify,
            # A retried create could start (and bill) a second prediction.
            idempotent=False,
        )
        status = to_status(parse_prediction(_json(response)))
        if not status.state.terminal:
            # Accepted and in progress; the job service polls by provider_job_id from here.
            status = dataclasses.replace(status, state=TaskState.RUNNING)
        return status

    async def poll(self, provider_job_id: str) -> TaskStatus:
        """Current state; an unknown id raises INVALID_INPUT (HTTP 404)."""
        response = await self._http.request(
            "GET", f"/v1/predictions/{_job_path(provider_job_id)}", classify=self._classify
        )
        return to_status(parse_prediction(_json(response)))

    async def wait(self, provider_job_id: str, *, timeout: float) -> TaskStatus:
        """Poll every ``poll_interval`` until terminal or ``timeout``; the last status seen."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            status = await self.poll(provider_job_id)
            remaining = deadline - loop.time()
            if status.state.terminal or remaining <= 0:
                return status
            await asyncio.sleep(min(self.poll_interval, remaining))

    async def fetch(self, ref: ResultRef) -> bytes:
        if ref.data is not None:
            check_media(NAME, ref.data)
            return ref.data
        if ref.url is None:
            raise ProviderError(ErrorKind.INVALID_INPUT, f"{NAME}: result has neither URL nor data")
        # Replicate's file URLs want the Authorization header, which the client sends.
        return await self._http.download(ref.url)

    async def cancel(self, provider_job_id: str) -> None:
        """Best effort: finished predictions answer 200 unchanged; unknown ids are ignored."""
        try:
            await self._http.request(
                "POST",
                f"/v1/predictions/{_job_path(provider_job_id)}/cancel",
                classify=self._classify,
            )
        except ProviderError as error:
            if error.status_code != 404:
                raise

    async def webhook_secret(self, *, refresh: bool = False) -> str:
        """The account's webhook signing secret (``whsec_…``), fetched once and kept;
        ``refresh`` fetches it again (it was rotated). Raises ProviderError."""
        async with self._secret_lock:
            if self._webhook_secret is None or refresh:
                response = await self._http.request(
                    "GET", "/v1/webhooks/default/secret", classify=self._classify
                )
                key = _json(response)
                secret = key.get("key") if isinstance(key, dict) else None
                if not isinstance(secret, str) or not secret.startswith("whsec_"):
                    raise _malformed("the webhook secret is not a whsec_ key")
                self._webhook_secret = secret
            return self._webhook_secret

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> ReplicateProvider:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # --- internals ----------------------------------------------------------
    def _classify(self, response: httpx.Response) -> ProviderError:
        """Replicate's problem+json errors (``title``, ``detail``, ``invalid_fields``)."""
        status = response.status_code
        kind_source = default_classification(NAME, response)
        problem = _json_object(response)
        detail = problem.get("detail")
        text = detail if isinstance(detail, str) else response.text
        retry_after = kind_source.retry_after
        if status == 429 and retry_after is None:
            # "Request was throttled. Expected available in 2 seconds."
            match = _THROTTLED.search(text)
            retry_after = float(match.group(1)) if match else None
        kind = kind_source.kind
        if status == 422:
            kind = ErrorKind.INVALID_INPUT
            fields = _invalid_fields(problem.get("invalid_fields"))
            if fields:
                text = f"{text} (fields: {', '.join(fields)})"
        hint = {401: " (check the API token)", 402: " (out of credit)", 403: " (forbidden)"}
        message = f"{NAME}: HTTP {status}: {text[:300]}{hint.get(status, '')}"
        return ProviderError(
            kind, self._redact(message), retry_after=retry_after, status_code=status
        )

    def _redact(self, text: str) -> str:
        return text.replace(self._api_key, "[redacted]")


# --- request building --------------------------------------------------------


def model_spec(model: str) -> ReplicateModel:
    spec = MODELS.get(model)
    if spec is None:
        raise ProviderError(ErrorKind.INVALID_INPUT, f"{NAME}: unknown model {model!r}")
    return spec


async def build_input(request: GenerationRequest) -> dict[str, Any]:
    """The model's ``input`` object; INVALID_INPUT before any HTTP call if it cannot be valid."""
    spec = model_spec(request.model)
    caps = spec.capabilities
    _check_request(caps, request)
    model_input: dict[str, Any] = {**spec.defaults, "prompt": request.prompt}

    if request.aspect_ratio is not None:
        model_input["aspect_ratio"] = request.aspect_ratio
    elif "aspect_ratio" not in model_input:
        # The models' own default is match_input_image, which means nothing without references.
        model_input["aspect_ratio"] = MATCH_INPUT_IMAGE if request.references else "1:1"
    if model_input["aspect_ratio"] == MATCH_INPUT_IMAGE and not request.references:
        raise ProviderError(
            ErrorKind.INVALID_INPUT, f"{NAME}: {MATCH_INPUT_IMAGE} needs a reference image"
        )
    if request.output_format is not None and spec.output_format_input:
        model_input["output_format"] = request.output_format
    if request.seed is not None:
        model_input["seed"] = request.seed
    if request.safety_level is not None:
        model_input["safety_tolerance"] = request.safety_level
    if request.prompt_upsampling is not None and spec.upsampling_input is not None:
        model_input[spec.upsampling_input] = request.prompt_upsampling
    if spec.multi_output and request.num_outputs > 1:
        model_input["sequential_image_generation"] = "auto"
        model_input["max_images"] = request.num_outputs
    if spec.max_total_images is not None and (
        len(request.references) + request.num_outputs > spec.max_total_images
    ):
        raise ProviderError(
            ErrorKind.INVALID_INPUT,
            f"{NAME}: reference and output images together exceed {spec.max_total_images}",
        )
    for generic, value in request.extra.items():
        key = spec.extra_inputs.get(generic, generic)
        allowed = spec.extras.get(key)
        if allowed is None or not _one_of(value, allowed):
            raise ProviderError(
                ErrorKind.INVALID_INPUT, f"{NAME}: {request.model} does not accept {key}={value!r}"
            )
        model_input[key] = value
    if request.references:
        # No public URL to give, so references travel inline as data URIs.
        model_input["image_input"] = await asyncio.to_thread(
            lambda: [data_uri(ref) for ref in request.references]
        )
    return model_input


def _check_request(caps: Capabilities, request: GenerationRequest) -> None:
    """Reject what the model's declared capabilities rule out (the UI should never send it)."""
    problems: list[str] = []
    if not request.prompt.strip():
        problems.append("the prompt is empty")
    if request.aspect_ratio is not None and request.aspect_ratio not in caps.aspect_ratios:
        problems.append(f"aspect ratio {request.aspect_ratio!r} is not supported")
    if request.output_format is not None and request.output_format not in caps.output_formats:
        problems.append(f"output format {request.output_format!r} is not supported")
    if not 1 <= request.num_outputs <= caps.max_outputs:
        problems.append(f"{request.num_outputs} outputs requested, at most {caps.max_outputs}")
    if len(request.references) > caps.max_reference_images:
        problems.append(
            f"{len(request.references)} reference images, at most {caps.max_reference_images}"
        )
    if request.seed is not None and not caps.seed:
        problems.append("a seed is not supported")
    if request.negative_prompt and not caps.negative_prompt:
        problems.append("a negative prompt is not supported")
    if request.prompt_upsampling and not caps.prompt_upsampling:
        problems.append("prompt upsampling is not supported")
    if request.safety_level is not None and request.safety_level not in caps.safety_levels:
        problems.append(f"safety level {request.safety_level} is not supported")
    if problems:
        raise ProviderError(
            ErrorKind.INVALID_INPUT, f"{NAME}: {request.model}: {'; '.join(problems)}"
        )


def data_uri(ref: ReferenceImage) -> str:
    """``data:<type>;base64,...`` with the type taken from the bytes, not the label."""
    kind = sniff_media_type(ref.data)
    if kind is None or not kind.startswith("image/"):
        raise ProviderError(ErrorKind.INVALID_INPUT, f"{NAME}: a reference is not an image")
    return f"data:{kind};base64,{base64.b64encode(ref.data).decode('ascii')}"


def _one_of(value: object, allowed: tuple[Any, ...]) -> bool:
    # Compare types too: True == 1 must not pass as an integer setting.
    return any(type(value) is type(choice) and value == choice for choice in allowed)


def _job_path(provider_job_id: str) -> str:
    if not provider_job_id:
        raise ProviderError(ErrorKind.INVALID_INPUT, f"{NAME}: empty prediction id")
    return quote(provider_job_id, safe="")


# --- answer parsing -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Prediction:
    """The parts of Replicate's prediction object this client relies on, validated."""

    id: str
    status: str
    output: tuple[str, ...]
    error: str | None
    logs: str


def parse_prediction(body: object) -> Prediction:
    """Validate a prediction object; anything off-shape is a TRANSIENT ProviderError."""
    if not isinstance(body, dict):
        raise _malformed("the prediction is not a JSON object")
    prediction_id = body.get("id")
    status = body.get("status")
    output = body.get("output")
    error = body.get("error")
    logs = body.get("logs")
    if not isinstance(prediction_id, str) or not prediction_id:
        raise _malformed("the prediction has no id")
    if not isinstance(status, str) or status not in _STATES:
        raise _malformed(f"prediction {prediction_id} has an unknown status")
    if error is not None and not isinstance(error, str):
        raise _malformed(f"prediction {prediction_id} has a non-text error")
    if logs is not None and not isinstance(logs, str):
        raise _malformed(f"prediction {prediction_id} has non-text logs")
    urls: tuple[str, ...]
    if output is None:
        urls = ()
    elif isinstance(output, str):
        urls = (output,)
    elif isinstance(output, list) and all(isinstance(item, str) for item in output):
        urls = tuple(output)
    else:
        raise _malformed(f"prediction {prediction_id} has an output that is not URLs")
    if any(urlsplit(url).scheme not in ("http", "https") for url in urls):
        raise _malformed(f"prediction {prediction_id} has an output that is not an http(s) URL")
    return Prediction(prediction_id, status, urls, error, logs or "")


def to_status(prediction: Prediction) -> TaskStatus:
    state = _STATES[prediction.status]
    job = prediction.id
    if state is TaskState.SUCCEEDED:
        if not prediction.output:
            # Outputs are deleted an hour after the run (data_removed); nothing left to fetch.
            error = ProviderError(
                ErrorKind.TRANSIENT, f"{NAME}: prediction {job} succeeded without outputs"
            )
            return TaskStatus(TaskState.FAILED, job, error=error)
        outputs = tuple(
            ResultRef(url=url, mime_type=_mime_from_url(url)) for url in prediction.output
        )
        return TaskStatus(state, job, progress=1.0, outputs=outputs)
    if state is TaskState.FAILED:
        return TaskStatus(state, job, error=classify_failure(job, prediction.error))
    if state is TaskState.CANCELLED:
        return TaskStatus(state, job)
    return TaskStatus(state, job, progress=progress_from_logs(prediction.logs))


def classify_failure(prediction_id: str, error: str | None) -> ProviderError:
    """A failed prediction's ``error`` string mapped to an ErrorKind."""
    text = (error or "no error given").strip()
    message = f"{NAME}: prediction {prediction_id} failed: {text[:300]}"
    if _SAFETY_ERROR.search(text):
        return ProviderError(ErrorKind.SAFETY, message, user_reason=SAFETY_USER_REASON)
    if _INVALID_ERROR.search(text):
        return ProviderError(ErrorKind.INVALID_INPUT, message)
    # Model crashes and capacity problems: worth another try later.
    return ProviderError(ErrorKind.TRANSIENT, message)


def progress_from_logs(logs: str) -> float | None:
    """The last tqdm percentage in the logs as 0.0..1.0, or None when there is none."""
    matches = _PROGRESS.findall(logs)
    if not matches:
        return None
    return min(int(matches[-1]), 100) / 100


def _mime_from_url(url: str) -> str | None:
    path = urlsplit(url).path.lower()
    for extension, mime in _MIME_BY_EXTENSION.items():
        if path.endswith(extension):
            return mime
    return None


def _json(response: httpx.Response) -> object:
    try:
        return response.json()
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError both are ValueErrors
        raise _malformed(f"HTTP {response.status_code} answer is not JSON") from exc


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _invalid_fields(value: object) -> list[str]:
    if not isinstance(value, list):
        return []
    return [str(item["field"]) for item in value if isinstance(item, dict) and "field" in item][:10]


def _malformed(what: str) -> ProviderError:
    # An answer that is not the documented shape (proxy page, API change): retry later,
    # and the message tells the operator what was wrong.
    return ProviderError(ErrorKind.TRANSIENT, f"{NAME}: unexpected answer: {what}")
