"""Hugging Face Inference Providers client (text-to-image through the router).

Follows ``huggingface_hub``'s text-to-image task on the ``hf-inference``
provider: ``POST {base}/hf-inference/models/{model}`` with
``{"inputs": prompt, "parameters": {...}}``; the answer is the image itself.
It is synchronous, so ``submit`` returns a finished TaskStatus with the bytes
inline and there is no job to poll: ``poll`` raises INVALID_INPUT for any id
(the caller should resubmit) and ``cancel`` does nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import httpx

from lumigram.domain.generation import (
    Capabilities,
    ErrorKind,
    GenerationRequest,
    ProviderError,
    ResultRef,
    TaskState,
    TaskStatus,
)
from lumigram.providers.http import ProviderHTTP, RetryPolicy, check_media, default_classification

NAME = "huggingface"
INFERENCE_PROVIDER = "hf-inference"

SAFETY_USER_REASON = "The model's safety filter blocked this request. Try a different prompt."

# FLUX wants sides that are multiples of 16; these are ~1 megapixel, multiples of 64.
ASPECT_SIZES: Mapping[str, tuple[int, int]] = MappingProxyType(
    {
        "1:1": (1024, 1024),
        "16:9": (1344, 768),
        "9:16": (768, 1344),
        "4:3": (1152, 896),
        "3:4": (896, 1152),
        "3:2": (1216, 832),
        "2:3": (832, 1216),
        "21:9": (1536, 640),
        "9:21": (640, 1536),
    }
)


@dataclass(frozen=True, slots=True)
class HuggingFaceModel:
    capabilities: Capabilities
    # Sent unless the request's ``extra`` overrides them.
    defaults: Mapping[str, Any] = field(default_factory=dict)
    # ``extra`` keys accepted as text-to-image parameters, with their allowed values.
    extras: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)


MODELS: Mapping[str, HuggingFaceModel] = MappingProxyType(
    {
        "black-forest-labs/FLUX.1-schnell": HuggingFaceModel(
            capabilities=Capabilities(
                aspect_ratios=tuple(ASPECT_SIZES),
                # The image comes back as the server encodes it (JPEG for this model).
                output_formats=("jpg",),
                max_outputs=1,
                seed=True,
            ),
            # schnell is distilled for 1-4 steps; the diffusers default (28) would waste time.
            defaults={"num_inference_steps": 4},
            extras={"num_inference_steps": tuple(range(1, 51))},
        ),
    }
)

_SAFETY_ERROR = re.compile(
    r"nsfw|unsafe|inappropriate|sensitive|safety (?:checker|filter)"
    r"|content (?:policy|filter|moderation)|flagged",
    re.IGNORECASE,
)


class HuggingFaceProvider:
    """``ImageProvider`` for FLUX.1-schnell on Hugging Face's ``hf-inference`` provider."""

    name = NAME

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = "https://router.huggingface.co",
        timeout: float = 120.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        if not api_key:
            raise ValueError("huggingface: an access token is required")
        self._api_key = api_key
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
        payload = build_payload(request)
        response = await self._http.request(
            "POST",
            f"/{INFERENCE_PROVIDER}/models/{request.model}",
            json=payload,
            classify=self._classify,
        )
        data = response.content
        if len(data) > self._http.max_download_bytes:
            raise ProviderError(
                ErrorKind.INVALID_INPUT,
                f"{NAME}: result of {len(data)} bytes is over the "
                f"{self._http.max_download_bytes} byte limit",
            )
        try:
            mime_type = check_media(NAME, data)
        except ProviderError as exc:
            # A 200 that is not an image (a JSON or HTML page): the answer, not the request,
            # is wrong, so it is worth another try.
            content_type = response.headers.get("Content-Type", "none")
            raise ProviderError(
                ErrorKind.TRANSIENT,
                f"{NAME}: unexpected answer: HTTP 200 with {content_type[:60]} is not an image",
            ) from exc
        output = ResultRef(data=data, mime_type=mime_type)
        return TaskStatus(TaskState.SUCCEEDED, progress=1.0, outputs=(output,))

    async def poll(self, provider_job_id: str) -> TaskStatus:
        """There are no asynchronous jobs here: every id is unknown (INVALID_INPUT)."""
        raise ProviderError(
            ErrorKind.INVALID_INPUT,
            f"{NAME}: generations are synchronous; there is no job {provider_job_id[:64]!r}",
        )

    async def fetch(self, ref: ResultRef) -> bytes:
        if ref.data is not None:
            check_media(NAME, ref.data)
            return ref.data
        if ref.url is None:
            raise ProviderError(ErrorKind.INVALID_INPUT, f"{NAME}: result has neither URL nor data")
        return await self._http.download(ref.url)

    async def cancel(self, provider_job_id: str) -> None:
        """Nothing to cancel: a generation finishes within ``submit``."""

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> HuggingFaceProvider:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # --- internals ----------------------------------------------------------
    def _classify(self, response: httpx.Response) -> ProviderError:
        """``{"error": ...}`` bodies; 503 + ``estimated_time`` while the model loads."""
        status = response.status_code
        fallback = default_classification(NAME, response)
        body = _json_object(response)
        text = _error_text(body.get("error")) or response.text
        message = self._redact(f"{NAME}: HTTP {status}: {text[:300]}")
        if _SAFETY_ERROR.search(text) and status not in (401, 402, 403, 429):
            return ProviderError(
                ErrorKind.SAFETY, message, user_reason=SAFETY_USER_REASON, status_code=status
            )
        retry_after = fallback.retry_after
        estimated = body.get("estimated_time")
        if status == 503 and isinstance(estimated, int | float) and not isinstance(estimated, bool):
            retry_after = max(0.0, float(estimated))
            message = f"{message} (model loading, about {retry_after:.0f} s)"
        hint = {401: " (check the access token)", 402: " (out of credit)", 403: " (forbidden)"}
        return ProviderError(
            fallback.kind,
            message + hint.get(status, ""),
            retry_after=retry_after,
            status_code=status,
        )

    def _redact(self, text: str) -> str:
        return text.replace(self._api_key, "[redacted]")


def build_payload(request: GenerationRequest) -> dict[str, Any]:
    """The JSON body; INVALID_INPUT before any HTTP call for what the model cannot do."""
    spec = MODELS.get(request.model)
    if spec is None:
        raise ProviderError(ErrorKind.INVALID_INPUT, f"{NAME}: unknown model {request.model!r}")
    caps = spec.capabilities
    problems: list[str] = []
    if not request.prompt.strip():
        problems.append("the prompt is empty")
    aspect_ratio = request.aspect_ratio or caps.aspect_ratios[0]
    if aspect_ratio not in ASPECT_SIZES or aspect_ratio not in caps.aspect_ratios:
        problems.append(f"aspect ratio {aspect_ratio!r} is not supported")
    if request.output_format is not None and request.output_format not in caps.output_formats:
        problems.append(f"output format {request.output_format!r} is not supported")
    if request.num_outputs != 1:
        problems.append("exactly one output per request")
    if request.references:
        problems.append("reference images are not supported")
    if request.negative_prompt:
        problems.append("a negative prompt is not supported")
    if request.prompt_upsampling:
        problems.append("prompt upsampling is not supported")
    if request.safety_level is not None:
        problems.append("safety levels are not supported")
    parameters: dict[str, Any] = dict(spec.defaults)
    for key, value in request.extra.items():
        allowed = spec.extras.get(key)
        if allowed is None or not any(type(value) is type(a) and value == a for a in allowed):
            problems.append(f"{key}={value!r} is not accepted")
        else:
            parameters[key] = value
    if problems:
        raise ProviderError(
            ErrorKind.INVALID_INPUT, f"{NAME}: {request.model}: {'; '.join(problems)}"
        )
    parameters["width"], parameters["height"] = ASPECT_SIZES[aspect_ratio]
    if request.seed is not None:
        parameters["seed"] = request.seed
    return {"inputs": request.prompt, "parameters": parameters}


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _error_text(value: object) -> str:
    # HF answers {"error": "..."} and, for some validation errors, {"error": ["...", ...]}.
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "; ".join(str(item) for item in value[:5])
    return ""
